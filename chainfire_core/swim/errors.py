"""The typed errors of the SWIM core.

Theory of operation
-------------------
Two kinds of expected failure, split like h11 by whose fault they are:

* `InvalidSwimConfig` (a `RequestError`): the caller built a `SwimConfig`
  with a field of the wrong type or out of its documented range. It names
  the field, so a config file loader can point at the offending line.
* `MalformedDatagram` (a `DataError`): bytes handed to the codec are not a
  SWIM message (wrong version, unknown kind, truncated, trailing bytes,
  invalid ids). A datagram from the network is untrusted input, so decoding
  it never raises anything else.

A broken internal invariant is neither: it is an `assert`.
"""

from __future__ import annotations

from chainfire_core.errors import DataError, InvalidRequest


class InvalidSwimConfig(InvalidRequest):
    """A `SwimConfig` field has the wrong type or is out of range."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"swim config: {field} {reason}")
        self.field = field
        self.reason = reason


class MalformedDatagram(DataError):
    """Bytes that do not decode to exactly one valid SWIM message."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"swim codec: malformed datagram: {reason}")
        self.reason = reason


__all__ = ["InvalidSwimConfig", "MalformedDatagram"]
