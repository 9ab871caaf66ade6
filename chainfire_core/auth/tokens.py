"""Simple tokens: per-member, in-memory, with a TTL refreshed on every use.

Theory of operation (etcd's simple tokens, as etcd 3.4 has them)
-----------------------------------------------------------------
A client authenticates on some member. That member checks the password
against its own copy of the auth state, draws a random prefix, and proposes
an Authenticate command through Raft. When the command applies, every
member (not only the one that took the request) assigns the token
`<prefix>.<log index>` to the user in its own token store, so the client
may use the token on any member. The token store itself is not replicated
state: it is not in snapshots, a restarted member has forgotten every token
(clients authenticate again on InvalidAuthToken), and expiry runs on each
member's own clock: a token lives `ttl_ms` after it was assigned or last
used on that member (etcd's simpleTokenTTL, default 5 minutes), so
whether a token has expired is a local, not a replicated, decision.
A member that has not yet applied the Authenticate entry does not know the
token; etcd waits for the index in the token before looking it up, and so
can a driver (`simple_token_index`).

The token remembers the auth revision it was issued at. etcd's simple tokens
are checked at the store's current revision, so an auth change only takes
effect through the permission check itself; etcd's JWT tokens carry their
issuing revision and are refused with ErrAuthOldRevision once the auth store
has moved past it. Chainfire does the latter by default
(`StateMachineConfig.auth_token_binds_revision`): after any auth change
(a role revoked, a password changed, ...) an old token is refused with
AuthOldRevision and the client authenticates again, as etcd's own clients
do on that error; with the option off the token works until it expires, at
the current revision.

Tokens go on auth disable, and a user's tokens on its deletion or password
change. At most `max_tokens` are held; assigning one more first drops the
expired ones, then the one closest to expiry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Token:
    user: str
    revision: int
    deadline_ms: int


def simple_token_index(token: str) -> int | None:
    """The log index a simple token was assigned at, or None if `token` is
    not shaped like one."""
    prefix, dot, index = token.rpartition(".")
    if not dot or not prefix.isalpha() or not index.isdigit():
        return None
    return int(index)


class SimpleTokenStore:
    """Token -> (user, auth revision at issue, deadline) on one member."""

    def __init__(self, ttl_ms: int, max_tokens: int) -> None:
        assert ttl_ms > 0 and max_tokens > 0, (ttl_ms, max_tokens)
        self.ttl_ms = ttl_ms
        self.max_tokens = max_tokens
        self._tokens: dict[str, _Token] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def assign(self, token: str, user: str, revision: int, now_ms: int) -> None:
        self._tokens.pop(token, None)
        if len(self._tokens) >= self.max_tokens:
            self.expire(now_ms)
        if len(self._tokens) >= self.max_tokens:
            oldest = min(self._tokens, key=lambda t: (self._tokens[t].deadline_ms, t))
            del self._tokens[oldest]
        self._tokens[token] = _Token(user=user, revision=revision,
                                     deadline_ms=now_ms + self.ttl_ms)

    def lookup(self, token: str, now_ms: int) -> tuple[str, int] | None:
        """(user, revision at issue) of a live token, whose TTL starts over;
        None if the token is unknown or has expired (and is dropped)."""
        found = self._tokens.get(token)
        if found is None:
            return None
        if found.deadline_ms <= now_ms:
            del self._tokens[token]
            return None
        found.deadline_ms = now_ms + self.ttl_ms
        return found.user, found.revision

    def expire(self, now_ms: int) -> None:
        for token in [t for t, found in self._tokens.items() if found.deadline_ms <= now_ms]:
            del self._tokens[token]

    def invalidate_user(self, user: str) -> None:
        for token in [t for t, found in self._tokens.items() if found.user == user]:
            del self._tokens[token]

    def keep_users(self, users: frozenset[str]) -> None:
        """Drop the tokens of users not in `users` (after a snapshot restore)."""
        for token in [t for t, found in self._tokens.items() if found.user not in users]:
            del self._tokens[token]

    def clear(self) -> None:
        self._tokens.clear()

    def check_invariants(self) -> None:
        assert len(self._tokens) <= self.max_tokens
        for token, found in self._tokens.items():
            assert simple_token_index(token) is not None, token
            assert found.user and found.revision > 0, (token, found)


__all__ = ["SimpleTokenStore", "simple_token_index"]
