"""SwimConfig: defaults are valid; every malformed field is a typed error naming it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainfire_core.errors import ChainfireError, InvalidRequest
from chainfire_core.swim import InvalidSwimConfig, SwimConfig
from chainfire_core.swim.config import CONFIG_FIELDS
from chainfire_core.types import NodeId


def build(**changes: Any) -> SwimConfig:
    return SwimConfig(**{"member_id": NodeId(1), **changes})


def test_defaults_are_valid_and_lifeguard_is_on() -> None:
    config = build()
    assert config.lifeguard and not config.swim_only().lifeguard
    assert config.swim_only().protocol_period_ms == config.protocol_period_ms
    assert config.with_member(NodeId(7), "h:7").member_id == 7


@pytest.mark.parametrize(("field", "value"), [
    ("member_id", 0), ("member_id", -3), ("member_id", "1"), ("member_id", True),
    ("protocol_period_ms", 0), ("protocol_period_ms", 1.5), ("probe_timeout_ms", -1),
    ("indirect_probes", -1), ("indirect_probes", 33), ("retransmit_mult", 0),
    ("max_piggyback", 0), ("max_piggyback", 65), ("suspicion_mult", 0),
    ("suspicion_confirmations", 0), ("local_health_max", -1), ("local_health", 1),
    ("nacks", "yes"), ("buddy_system", None), ("dynamic_suspicion", 0),
    ("max_members", 0), ("max_pending_relays", 0), ("max_join_ack_members", 513),
    ("join_attempts_max", 0), ("address", 12), ("address", "x" * 65),
])
def test_a_malformed_field_raises_invalid_swim_config_naming_it(field: str, value: object) -> None:
    with pytest.raises(InvalidSwimConfig) as raised:
        build(**{field: value})
    assert raised.value.field == field
    assert field in str(raised.value)
    # One error root: callers can catch InvalidRequest or ChainfireError.
    assert isinstance(raised.value, InvalidRequest) and isinstance(raised.value, ChainfireError)


def test_related_timeouts_are_checked_against_each_other() -> None:
    with pytest.raises(InvalidSwimConfig, match="probe_timeout_ms"):
        build(protocol_period_ms=500, probe_timeout_ms=500)
    with pytest.raises(InvalidSwimConfig, match="nack_timeout_ms"):
        build(probe_timeout_ms=300, nack_timeout_ms=300)


@given(field=st.sampled_from([f for f in CONFIG_FIELDS if f != "address"]),
       value=st.one_of(st.none(), st.sampled_from(["", "7", "x"]), st.floats(allow_nan=True),
                       st.integers(max_value=0)))
def test_garbage_is_either_accepted_as_valid_or_a_typed_error(field: str, value: object) -> None:
    try:
        config = build(**{field: value})
    except InvalidSwimConfig as error:
        assert error.field in CONFIG_FIELDS
    else:  # e.g. indirect_probes=0 is legal: then the value must be an int in range
        assert isinstance(getattr(config, field), int)
