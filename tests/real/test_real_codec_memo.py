"""MemoCodec: a decode of bytes it encoded returns an equal value, once;
the memo is bounded; other bytes decode as NODE_CODEC decodes them."""

from __future__ import annotations

from chainfire_core import PutRequest
from chainfire_core.node_codec import NODE_CODEC
from chainfire_core.node_messages import Proposal
from chainfire_core.types import NodeId
from real.codec_memo import MemoCodec


def proposal(i: int) -> Proposal:
    return Proposal(origin=NodeId(1), request_id=i,
                    command=PutRequest(key=b"k%d" % i, value=b"v"))


def test_real_codec_memo_round_trip_and_bound() -> None:
    codec = MemoCodec(max_entries=4)
    encoded = [codec.encode(proposal(i)) for i in range(6)]
    assert encoded == [NODE_CODEC.encode(proposal(i)) for i in range(6)]
    # The two oldest were dropped; all six still decode to equal values.
    for i, data in enumerate(encoded):
        assert codec.decode(bytes(data)) == NODE_CODEC.decode(data) == proposal(i)
    assert codec.hits == 4
    assert codec.decode(encoded[5]) == proposal(5)  # handed out once, then decoded
    assert codec.hits == 4
    put = PutRequest(key=b"x")
    assert codec.decode(codec.encode(put)) == put  # not a proposal: not remembered
    assert codec.hits == 4
