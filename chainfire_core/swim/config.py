"""The frozen, validated configuration of one SWIM member.

Theory of operation
-------------------
Every duration is in integer milliseconds (the driver hands in `now_ms`),
every count and queue has a named bound, and related settings are checked
against each other when the config is built: a probe timeout must end
inside its protocol period (the indirect probes need the rest), and a relay's
nack must leave before the prober gives up. A bad field raises
`InvalidSwimConfig` naming it; a config that exists is a valid one.

The defaults follow memberlist's LAN profile and the papers, with one
exception:

* SWIM: one probe per `protocol_period_ms`, a direct ping answered within
  `probe_timeout_ms`, else `indirect_probes` (k) ping-reqs; each update is
  piggybacked `retransmit_mult * ceil(log10(n + 1))` times (lambda log n).
  `retransmit_mult` is 6, not memberlist's 4: memberlist also gossips on a
  timer of its own, while here updates only ride on probe traffic, and
  with 4 a 20-member group at 10% loss declared 45 healthy members dead in
  20 member-hours without Lifeguard (1 with it); with 6, none in 40
  (docs/benchmarks.md).
* Suspicion: a suspect is declared dead after
  `suspicion_mult * max(1, log10 n) * protocol_period_ms` (alpha log n
  periods) unless it refutes.
* Lifeguard: four switches, all on by default, all off in `swim_only()`:
  `local_health` (LHM, saturating at `local_health_max`, stretches one's
  own probe period and timeout by `LHM + 1`), `dynamic_suspicion` (start at
  `suspicion_max_mult` times the minimum and shrink, log-scaled, to the
  minimum as `suspicion_confirmations` (K) independent accusers agree),
  `nacks` (ping-req relays answer "no ack" after `nack_timeout_ms`; a
  missing nack counts against one's own health), and `buddy_system` (a
  ping to a suspect carries the suspicion, so the suspect hears it first).
* `refute_to_accuser` (not Lifeguard, on in both modes): a refutation is
  also sent straight to the member that made the accusation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from chainfire_core.swim.errors import InvalidSwimConfig
from chainfire_core.types import NodeId

# Encoded addresses are length-prefixed with one byte and must keep a full
# join answer inside one UDP datagram (see codec.py).
MAX_ADDRESS_BYTES = 64
# A join answer lists at most this many members (one datagram).
MAX_JOIN_ACK_MEMBERS = 512
# Piggybacked updates per message: bounded so a message stays small.
MAX_PIGGYBACK = 64

_BOUNDS: dict[str, tuple[int, int]] = {
    # field: (lowest, highest) allowed, inclusive
    "protocol_period_ms": (1, 3_600_000),
    "probe_timeout_ms": (1, 3_600_000),
    "indirect_probes": (0, 32),
    "retransmit_mult": (1, 64),
    "max_piggyback": (1, MAX_PIGGYBACK),
    "suspicion_mult": (1, 1_000),
    "suspicion_max_mult": (1, 1_000),
    "suspicion_confirmations": (1, 64),
    "local_health_max": (0, 64),
    "nack_timeout_ms": (1, 3_600_000),
    "max_members": (1, 1 << 20),
    "max_pending_relays": (1, 1 << 16),
    "max_join_ack_members": (1, MAX_JOIN_ACK_MEMBERS),
    "join_attempts_max": (1, 1_000),
}
_FLAGS = ("local_health", "dynamic_suspicion", "nacks", "buddy_system")
_OTHER_FLAGS = ("refute_to_accuser",)


@dataclass(frozen=True, slots=True, kw_only=True)
class SwimConfig:
    member_id: NodeId
    # Opaque to the core: what peers should send datagrams to ("host:port").
    address: str = ""
    protocol_period_ms: int = 1_000
    probe_timeout_ms: int = 500
    indirect_probes: int = 3
    retransmit_mult: int = 6
    max_piggyback: int = 8
    suspicion_mult: int = 4
    suspicion_max_mult: int = 6
    suspicion_confirmations: int = 3
    local_health: bool = True
    local_health_max: int = 8
    dynamic_suspicion: bool = True
    nacks: bool = True
    nack_timeout_ms: int = 400
    buddy_system: bool = True
    # Not Lifeguard: a refutation is also sent straight to the accuser.
    refute_to_accuser: bool = True
    max_members: int = 4_096
    max_pending_relays: int = 256
    max_join_ack_members: int = 256
    join_attempts_max: int = 10

    def __post_init__(self) -> None:
        _check_int("member_id", self.member_id, 1, (1 << 63) - 1)
        if not isinstance(self.address, str):
            raise InvalidSwimConfig("address", f"must be a str, got {type(self.address).__name__}")
        if len(self.address.encode("utf-8")) > MAX_ADDRESS_BYTES:
            raise InvalidSwimConfig("address", f"must be at most {MAX_ADDRESS_BYTES} bytes")
        for name, (low, high) in _BOUNDS.items():
            _check_int(name, getattr(self, name), low, high)
        for name in (*_FLAGS, *_OTHER_FLAGS):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise InvalidSwimConfig(name, f"must be a bool, got {type(value).__name__}")
        if self.probe_timeout_ms >= self.protocol_period_ms:
            raise InvalidSwimConfig(
                "probe_timeout_ms", "must be < protocol_period_ms (indirect probes need the rest)")
        if self.nack_timeout_ms >= self.probe_timeout_ms:
            raise InvalidSwimConfig(
                "nack_timeout_ms", "must be < probe_timeout_ms (a nack must arrive in time)")

    @property
    def lifeguard(self) -> bool:
        """Are all four Lifeguard extensions on?"""
        return all(getattr(self, name) for name in _FLAGS)

    def swim_only(self) -> SwimConfig:
        """The same config with every Lifeguard extension off (plain SWIM
        with the suspicion subprotocol and a fixed suspicion timeout)."""
        return replace(self, local_health=False, dynamic_suspicion=False, nacks=False,
                       buddy_system=False)

    def with_member(self, member_id: NodeId, address: str = "") -> SwimConfig:
        """The same settings for another member (a template config)."""
        return replace(self, member_id=member_id, address=address)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSwimConfig(name, f"must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidSwimConfig(name, f"must be in [{low}, {high}], got {value}")


CONFIG_FIELDS = tuple(field.name for field in fields(SwimConfig))

__all__ = ["CONFIG_FIELDS", "MAX_ADDRESS_BYTES", "MAX_JOIN_ACK_MEMBERS", "MAX_PIGGYBACK",
           "SwimConfig"]
