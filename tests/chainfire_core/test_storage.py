"""MemoryBackend: the StorageBackend protocol on sorted dicts, and its snapshots."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainfire_core.errors import CorruptSnapshot, DataError
from chainfire_core.storage import BatchDelete, BatchOp, BatchPut, MemoryBackend, StorageBackend


def filled() -> MemoryBackend:
    backend = MemoryBackend()
    for key in (b"c", b"a", b"e", b"b", b"d"):
        backend.put("key", key, key.upper())
    backend.put("meta", b"compact_revision", (7).to_bytes(8, "big"))
    return backend


def content(backend: MemoryBackend) -> dict[str, list[tuple[bytes, bytes]]]:
    return {bucket: list(backend.range(bucket, b"")) for bucket in ("key", "meta", "other")}


def test_memory_backend_is_a_storage_backend() -> None:
    assert isinstance(MemoryBackend(), StorageBackend)


def test_get_put_delete() -> None:
    backend = MemoryBackend()
    assert backend.get("key", b"a") is None  # no such bucket
    backend.put("key", b"a", b"1")
    assert backend.get("key", b"a") == b"1"
    assert backend.get("key", b"b") is None
    assert backend.get("meta", b"a") is None  # buckets are separate
    backend.put("key", b"a", b"2")
    assert backend.get("key", b"a") == b"2"
    backend.put("key", b"empty", b"")
    assert backend.get("key", b"empty") == b""
    backend.delete("key", b"a")
    assert backend.get("key", b"a") is None
    backend.delete("key", b"a")  # missing key: no error
    backend.delete("nothing", b"a")  # missing bucket: no error
    assert backend.count("key") == 1


def test_get_many() -> None:
    backend = filled()
    assert backend.get_many("key", [b"b", b"x", b"a", b"b"]) == [b"B", None, b"A", b"B"]
    assert backend.get_many("nothing", [b"a", b"b"]) == [None, None]
    assert backend.get_many("key", []) == []


@pytest.mark.parametrize(
    ("start", "end", "limit", "expected"),
    [
        (b"", None, 0, [b"a", b"b", b"c", b"d", b"e"]),
        (b"b", None, 0, [b"b", b"c", b"d", b"e"]),  # start is inclusive
        (b"bb", None, 0, [b"c", b"d", b"e"]),
        (b"b", b"d", 0, [b"b", b"c"]),  # end is exclusive
        (b"b", b"dd", 0, [b"b", b"c", b"d"]),
        (b"a", b"a", 0, []),
        (b"d", b"b", 0, []),
        (b"", None, 2, [b"a", b"b"]),
        (b"c", b"z", 1, [b"c"]),
        (b"c", None, 5, [b"c", b"d", b"e"]),
        (b"f", None, 0, []),
    ],
)
def test_range(start: bytes, end: bytes | None, limit: int, expected: list[bytes]) -> None:
    found = list(filled().range("key", start, end, limit=limit))
    assert found == [(key, key.upper()) for key in expected]


def test_range_of_a_missing_bucket_is_empty() -> None:
    assert list(MemoryBackend().range("key", b"")) == []


def test_write_batch_applies_ops_in_order() -> None:
    backend = filled()
    ops: list[BatchOp] = [
        BatchPut(bucket="key", key=b"x", value=b"1"),
        BatchDelete(bucket="key", key=b"x"),  # put then delete: gone
        BatchDelete(bucket="key", key=b"a"),
        BatchPut(bucket="key", key=b"a", value=b"again"),  # delete then put: there
        BatchPut(bucket="other", key=b"k", value=b"v"),  # a new bucket
        BatchDelete(bucket="missing", key=b"k"),
        BatchPut(bucket="key", key=b"b", value=b"1"),
        BatchPut(bucket="key", key=b"b", value=b"2"),  # last write wins
    ]
    backend.write_batch(ops)
    assert backend.get("key", b"x") is None
    assert backend.get("key", b"a") == b"again"
    assert backend.get("key", b"b") == b"2"
    assert backend.get("other", b"k") == b"v"
    assert backend.count("key") == 5
    backend.write_batch([])
    assert backend.count("key") == 5


def test_count() -> None:
    backend = filled()
    assert (backend.count("key"), backend.count("meta"), backend.count("none")) == (5, 1, 0)


def test_snapshot_restore_round_trip() -> None:
    backend = filled()
    backend.put("key", b"\x00\xff", b"\x00" * 300)
    data = backend.snapshot()
    restored = MemoryBackend()
    restored.put("stale", b"x", b"y")  # restore replaces everything
    restored.restore(data)
    assert content(restored) == content(backend)
    assert restored.get("stale", b"x") is None
    assert restored.snapshot() == data


def test_snapshot_is_deterministic_whatever_the_insertion_order() -> None:
    ours, theirs = MemoryBackend(), MemoryBackend()
    for key in (b"a", b"b", b"c"):
        ours.put("one", key, key)
        ours.put("two", key, key)
    for key in (b"c", b"b", b"a"):
        theirs.put("two", key, key)
        theirs.put("one", key, key)
    assert ours.snapshot() == theirs.snapshot()


def test_an_empty_backend_round_trips() -> None:
    data = MemoryBackend().snapshot()
    restored = filled()
    restored.restore(data)
    assert restored.count("key") == 0
    assert restored.snapshot() == data


def _corruptions(data: bytes) -> dict[str, bytes]:
    def flip(position: int) -> bytes:
        return data[:position] + bytes((data[position] ^ 0x01,)) + data[position + 1 :]

    header = struct.Struct(">4sI").size
    return {
        "flip-magic": flip(0),
        "flip-version": flip(header - 1),
        "wrong-magic": b"CFSM" + data[4:],
        "bucket-count-too-high": data[:header] + (99).to_bytes(4, "big") + data[header + 4 :],
        "bucket-count-huge": data[:header] + b"\xff\xff\xff\xff" + data[header + 4 :],
        "bucket-name-not-utf8": _one_bucket(b"\xff\xfe", [(b"k", b"v")]),
        "item-count-too-high": _one_bucket(b"key", [(b"k", b"v")], item_count=2),
        # The last value says 9 bytes and has 1.
        "chunk-past-the-end": _one_bucket(b"key", [(b"k", b"v")])[:-5] + b"\0\0\0\x09v",
        "trailing-byte": data + b"\x00",
        "empty": b"",
    }


def _one_bucket(name: bytes, items: list[tuple[bytes, bytes]],
                item_count: int | None = None) -> bytes:
    parts = [b"CFMB", (1).to_bytes(4, "big"), (1).to_bytes(4, "big"),
             len(name).to_bytes(4, "big"), name,
             (len(items) if item_count is None else item_count).to_bytes(4, "big")]
    for key, value in items:
        parts += [len(key).to_bytes(4, "big"), key, len(value).to_bytes(4, "big"), value]
    return b"".join(parts)


def test_the_layout_helper_builds_a_valid_snapshot() -> None:
    backend = MemoryBackend()
    backend.put("key", b"k", b"v")
    assert _one_bucket(b"key", [(b"k", b"v")]) == backend.snapshot()


@pytest.mark.parametrize("kind", sorted(_corruptions(b"\0" * 64)))
def test_a_corrupt_snapshot_is_refused_and_changes_nothing(kind: str) -> None:
    corrupt = _corruptions(filled().snapshot())[kind]
    target = filled()
    target.put("other", b"mine", b"1")
    before = (content(target), target.snapshot())
    with pytest.raises(CorruptSnapshot) as caught:
        target.restore(corrupt)
    assert isinstance(caught.value, DataError)
    assert (content(target), target.snapshot()) == before


def test_every_truncation_is_refused_and_changes_nothing() -> None:
    data = filled().snapshot()
    target = MemoryBackend()
    target.put("key", b"mine", b"1")
    before = target.snapshot()
    for length in range(len(data)):
        with pytest.raises(CorruptSnapshot):
            target.restore(data[:length])
        assert target.snapshot() == before


# -- against a plain dict ---------------------------------------------------------------

buckets = st.sampled_from(("key", "meta"))
small_keys = st.binary(max_size=3)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), buckets, small_keys, st.binary(max_size=3)),
        st.tuples(st.just("delete"), buckets, small_keys, st.just(b"")),
        st.tuples(st.just("batch"), buckets, small_keys, st.binary(max_size=3)),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(ops=operations, start=small_keys, end=st.one_of(st.none(), small_keys),
       limit=st.integers(0, 4))
def test_behaves_like_a_dict_of_dicts(
    ops: list[tuple[str, str, bytes, bytes]], start: bytes, end: bytes | None, limit: int
) -> None:
    backend = MemoryBackend()
    model: dict[str, dict[bytes, bytes]] = {}
    for kind, bucket, key, value in ops:
        if kind == "put":
            backend.put(bucket, key, value)
            model.setdefault(bucket, {})[key] = value
        elif kind == "delete":
            backend.delete(bucket, key)
            model.get(bucket, {}).pop(key, None)
        else:  # a batch: put the key, and delete the key with its last byte dropped
            backend.write_batch([BatchPut(bucket=bucket, key=key, value=value),
                                 BatchDelete(bucket=bucket, key=key[:-1])])
            model.setdefault(bucket, {})[key] = value
            model[bucket].pop(key[:-1], None)
    for bucket in ("key", "meta"):
        items = model.get(bucket, {})
        assert backend.count(bucket) == len(items)
        expected = sorted(
            (k, v) for k, v in items.items() if k >= start and (end is None or k < end)
        )
        assert list(backend.range(bucket, start, end, limit=limit)) == (
            expected[:limit] if limit else expected
        )
        for key in {start, *items}:
            assert backend.get(bucket, key) == items.get(key)
    restored = MemoryBackend()
    restored.restore(backend.snapshot())
    assert restored.snapshot() == backend.snapshot()
    for bucket in ("key", "meta"):
        assert list(restored.range(bucket, b"")) == list(backend.range(bucket, b""))
