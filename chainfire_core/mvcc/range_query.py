"""Shaping a Range response from the live key-values in a range.

etcd's order of work, which decides what `count` and `more` mean:
`count` is the number of live keys in the range at the read revision, before
any filter or limit; then the min/max mod and create revision filters drop
keys; then the result is sorted (a sort target other than KEY with order
NONE sorts ascending, since the store already yields keys in key order);
then `limit` cuts it, and `more` says whether the limit cut anything.
`count_only` returns no key-values; `keys_only` returns them without values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from chainfire_core.mvcc.messages import (
    KeyValue,
    RangeRequest,
    RangeResponse,
    ResponseHeader,
    SortOrder,
    SortTarget,
)
from chainfire_core.mvcc.revision import SHIFT_MAIN
from chainfire_core.types import Revision

_SORT_KEYS: dict[SortTarget, Callable[[KeyValue], int | bytes]] = {
    SortTarget.KEY: lambda kv: kv.key,
    SortTarget.VERSION: lambda kv: kv.version,
    SortTarget.CREATE: lambda kv: kv.create_revision,
    SortTarget.MOD: lambda kv: kv.mod_revision,
    SortTarget.VALUE: lambda kv: kv.value,
}


def _filtered(request: RangeRequest, kvs: Sequence[KeyValue]) -> Sequence[KeyValue]:
    checks: list[Callable[[KeyValue], bool]] = []
    if request.min_mod_revision:
        checks.append(lambda kv: kv.mod_revision >= request.min_mod_revision)
    if request.max_mod_revision:
        checks.append(lambda kv: kv.mod_revision <= request.max_mod_revision)
    if request.min_create_revision:
        checks.append(lambda kv: kv.create_revision >= request.min_create_revision)
    if request.max_create_revision:
        checks.append(lambda kv: kv.create_revision <= request.max_create_revision)
    if not checks:
        return kvs
    return [kv for kv in kvs if all(check(kv) for check in checks)]


def _sorted(request: RangeRequest, kvs: Sequence[KeyValue]) -> Sequence[KeyValue]:
    order = request.sort_order
    if order == SortOrder.NONE and request.sort_target != SortTarget.KEY:
        order = SortOrder.ASCEND
    if order == SortOrder.NONE:
        return kvs
    if order == SortOrder.ASCEND and request.sort_target == SortTarget.KEY:
        return kvs  # already in key order
    return sorted(kvs, key=_SORT_KEYS[request.sort_target], reverse=order == SortOrder.DESCEND)


def needs_all_records(request: RangeRequest) -> bool:
    """Whether shaping the response needs every record in the range read
    (a sort on something other than the key, or a create-revision filter);
    otherwise the index alone decides which keys are returned."""
    return bool(
        request.min_create_revision
        or request.max_create_revision
        or (request.sort_target != SortTarget.KEY)
    )


def select_in_key_order(
    request: RangeRequest, live: Sequence[tuple[bytes, int]]
) -> tuple[Sequence[tuple[bytes, int]], bool]:
    """For a request that `needs_all_records` says no to: the (key, packed
    revision) pairs to return, and `more`. Mod-revision filters use the
    packed revision; DESCEND on the key reverses; `limit` cuts."""
    if request.count_only:
        return (), False
    chosen = live
    low, high = request.min_mod_revision, request.max_mod_revision
    if low or high:
        chosen = [
            (key, packed) for key, packed in live
            if (not low or packed >> SHIFT_MAIN >= low)
            and (not high or packed >> SHIFT_MAIN <= high)
        ]
    if request.sort_order == SortOrder.DESCEND:
        chosen = chosen[::-1]
    if request.limit and len(chosen) > request.limit:
        return chosen[: request.limit], True
    return chosen, False


def select_kvs(
    request: RangeRequest,
    kvs: Sequence[KeyValue],
    revision: Revision,
    *,
    count: int | None = None,
    more: bool | None = None,
) -> RangeResponse:
    """The Range response for `request` given the live `kvs` in its range,
    in key order, read at `revision`. With `count` and `more` given, `kvs`
    were already chosen by `select_in_key_order` and are returned as they are
    (values dropped for keys_only)."""
    header = ResponseHeader(revision=revision)
    if count is not None:
        assert more is not None
        if request.count_only:
            return RangeResponse(header=header, kvs=(), more=False, count=count)
        if request.keys_only:
            kvs = [replace(kv, value=b"") for kv in kvs]
        return RangeResponse(header=header, kvs=tuple(kvs), more=more, count=count)
    count = len(kvs)
    if not (
        request.limit or request.count_only or request.keys_only or request.sort_order
        or request.sort_target or request.min_mod_revision or request.max_mod_revision
        or request.min_create_revision or request.max_create_revision
    ):
        # The plain read (most reads): nothing to filter, sort or cut.
        return RangeResponse(header=header, kvs=tuple(kvs), more=False, count=count)
    if request.count_only:
        return RangeResponse(header=header, kvs=(), more=False, count=count)
    shaped = _sorted(request, _filtered(request, kvs))
    more = False
    if request.limit and len(shaped) > request.limit:
        shaped, more = shaped[: request.limit], True
    if request.keys_only:
        shaped = [replace(kv, value=b"") for kv in shaped]
    return RangeResponse(header=header, kvs=tuple(shaped), more=more, count=count)


__all__ = ["select_kvs"]
