"""Salted password hashes (PBKDF2-HMAC-SHA256 from the standard library).

The salt is an argument: the core draws no randomness of its own. The node
that takes a UserAdd or UserChangePassword request draws the salt from the
entropy its driver handed in and proposes the hash, so every replica stores
the same bytes (etcd likewise hashes with bcrypt before proposing).
"""

from __future__ import annotations

import hashlib
import hmac

from chainfire_core.auth.messages import PASSWORD_ALGORITHM, PasswordHash

# About 0.1 s per hash on one core, the time etcd's bcrypt (cost 10) takes;
# the node hashes on UserAdd and checks on Authenticate, inside its event
# loop, so this is a latency per call. `NodeConfig.password_hash_iterations`
# changes it for new passwords (tests and the simulator use a small count).
DEFAULT_HASH_ITERATIONS = 100_000
SALT_BYTES = 16


def hash_password(password: str, *, salt: bytes,
                  iterations: int = DEFAULT_HASH_ITERATIONS) -> PasswordHash:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return PasswordHash(algorithm=PASSWORD_ALGORITHM, iterations=iterations, salt=salt,
                        digest=digest)


def verify_password(password: str, stored: PasswordHash) -> bool:
    """Whether `password` hashes to `stored` (compared in constant time)."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), stored.salt, stored.iterations)
    return hmac.compare_digest(digest, stored.digest)


__all__ = ["DEFAULT_HASH_ITERATIONS", "SALT_BYTES", "hash_password", "verify_password"]
