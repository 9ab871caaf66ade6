"""Core errors map to etcd's gRPC status codes and exact error strings."""

from __future__ import annotations

import grpc
import pytest

from chainfire_core.errors import (
    ChainfireError,
    Compacted,
    CorruptSnapshot,
    DuplicateKey,
    EmptyKey,
    FutureRevision,
    InvalidRequest,
    KeyNotFound,
    LearnerNotReady,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    MemberExists,
    MemberNotFound,
    MemberNotLearner,
    NotLeader,
    ProposalDropped,
    RequestTimeout,
    RequestTooLarge,
    TooManyOps,
    TooManyWatchers,
)
from real.api.errors import to_status

C = grpc.StatusCode
CASES: list[tuple[ChainfireError, grpc.StatusCode, str]] = [
    (EmptyKey(), C.INVALID_ARGUMENT, "etcdserver: key is not provided"),
    (KeyNotFound(b"k"), C.INVALID_ARGUMENT, "etcdserver: key not found"),
    (TooManyOps(200, 128), C.INVALID_ARGUMENT, "etcdserver: too many operations in txn request"),
    (DuplicateKey(b"k"), C.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"),
    (RequestTooLarge(10, 5), C.INVALID_ARGUMENT, "etcdserver: request is too large"),
    (Compacted(1, 5), C.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
    (FutureRevision(9, 5), C.OUT_OF_RANGE,
     "etcdserver: mvcc: required revision is a future revision"),
    (LeaseNotFound(7), C.NOT_FOUND, "etcdserver: requested lease not found"),
    (LeaseExists(7), C.FAILED_PRECONDITION, "etcdserver: lease already exists"),
    (LeaseTTLTooLarge(10**12, 10**9), C.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
    (MemberNotFound(3), C.NOT_FOUND, "etcdserver: member not found"),
    (MemberExists("ID"), C.FAILED_PRECONDITION, "etcdserver: member ID already exist"),
    (MemberExists("Peer URLs"), C.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"),
    (MemberNotLearner(), C.FAILED_PRECONDITION, "etcdserver: can only promote a learner member"),
    (LearnerNotReady(), C.FAILED_PRECONDITION,
     "etcdserver: can only promote a learner member which is in sync with leader"),
    (NotLeader(0), C.UNAVAILABLE, "etcdserver: no leader"),
    (NotLeader(2), C.FAILED_PRECONDITION, "etcdserver: not leader"),
    (RequestTimeout(), C.UNAVAILABLE, "etcdserver: request timed out"),
    (ProposalDropped("no leader"), C.UNAVAILABLE, "etcdserver: no leader"),
    (ProposalDropped("election in progress"), C.UNAVAILABLE, "etcdserver: no leader"),
    (ProposalDropped("lost to a leader change"), C.UNAVAILABLE, "etcdserver: leader changed"),
    (ProposalDropped("too many pending requests"), C.RESOURCE_EXHAUSTED,
     "etcdserver: too many requests"),
    (ProposalDropped("leadership transfer in progress"), C.UNAVAILABLE,
     "raft: proposal dropped: leadership transfer in progress"),
    (InvalidRequest("etcdserver: value is provided"), C.INVALID_ARGUMENT,
     "etcdserver: value is provided"),
    (TooManyWatchers(10), C.RESOURCE_EXHAUSTED, "etcdserver: too many watchers (limit 10)"),
    (CorruptSnapshot("bad"), C.DATA_LOSS, "bad"),
]


@pytest.mark.parametrize(("error", "code", "message"), CASES,
                         ids=[type(e).__name__ for e, _, _ in CASES])
def test_error_maps_to_etcd_status(error: ChainfireError, code: grpc.StatusCode,
                                   message: str) -> None:
    assert to_status(error) == (code, message)


def test_every_core_error_type_maps_to_a_real_status_code() -> None:
    class Odd(ChainfireError):
        grpc_code = "NOT_A_CODE"

    assert to_status(Odd("x")) == (C.UNKNOWN, "x")
    assert to_status(ChainfireError("plain")) == (C.UNKNOWN, "plain")
