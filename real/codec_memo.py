"""MemoCodec: the node codec, remembering the proposals this node encoded.

Theory of operation
-------------------
A leader encodes every client write into a log entry (`codec.encode`) and,
a moment later, decodes the same bytes again to apply them
(`codec.decode`): in a single node that decode is about a fifth of the
core's CPU per put. `MemoCodec` keeps the values it encoded, keyed by their
bytes, and answers a `decode` of those bytes with the value itself (the
values are frozen dataclasses of tuples, so sharing them is safe, and the
codec is deterministic, so equal bytes mean an equal value). Each remembered
value is handed out once (the entry applies once); at most `max_entries`
are kept, oldest dropped first, so proposals that never apply (dropped,
failed, or applied on another leader) cost nothing for long. Anything not
remembered (entries from a leader, from disk, snapshots) is decoded as
usual.
"""

from __future__ import annotations

from chainfire_core.codec import Codec
from chainfire_core.node_codec import NODE_CODEC
from chainfire_core.node_messages import Proposal

DEFAULT_MAX_ENTRIES = 16_384


class MemoCodec(Codec):
    """NODE_CODEC with a bounded memo from encoded proposal bytes to value."""

    def __init__(self, base: Codec = NODE_CODEC,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        assert max_entries > 0, max_entries
        # Share the base codec's registered types and field tables.
        self.__dict__.update(base.__dict__)
        self.max_entries = max_entries
        self._memo: dict[bytes, object] = {}
        self.hits = 0

    def encode(self, value: object) -> bytes:
        data = super().encode(value)
        if isinstance(value, Proposal):
            memo = self._memo
            if len(memo) >= self.max_entries:
                del memo[next(iter(memo))]
            memo[data] = value
        return data

    def decode(self, data: bytes) -> object:
        value = self._memo.pop(data, None)
        if value is None:
            return super().decode(data)
        self.hits += 1
        return value


__all__ = ["DEFAULT_MAX_ENTRIES", "MemoCodec"]
