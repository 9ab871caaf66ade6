"""checker.readers: Porcupine's Jepsen and kv history formats (FORMATS.md)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from checker.history import UNKNOWN_RETURN, HistoryError
from checker.models import FAIL, OK
from checker.readers import (
    parse_porcupine_jepsen,
    parse_porcupine_kv,
    read_porcupine_jepsen,
    read_porcupine_kv,
)

SHARED = Path(__file__).parents[2].parent / "shared"
P = "INFO  jepsen.util - "


def jepsen(*lines: str) -> str:
    return "".join(P + line + "\n" for line in lines)


def test_jepsen_calls_and_returns_become_operations_timed_by_position() -> None:
    ops = parse_porcupine_jepsen(jepsen(
        "0\t:invoke\t:read\tnil",
        "3\t:invoke\t:write\t4",
        "0\t:ok\t:read\tnil",
        "1   :invoke :cas    [1 2]",
        "3\t:ok\t:write\t4",
        "1   :fail   :cas    [1 2]",
        "0\t:invoke\t:read\tnil",
        "0\t:ok\t:read\t4",
    ))
    summary = [(o.id, o.client, o.input, o.call, o.output, o.return_time) for o in ops]
    assert summary == [
        (0, 0, ("read",), 0, ("value", None), 2),
        (1, 3, ("write", 4), 1, OK, 4),
        (2, 1, ("cas", 1, 2), 3, FAIL, 5),
        (3, 0, ("read",), 6, ("value", 4), 7),
    ]


def test_jepsen_info_leaves_the_call_open_to_the_end() -> None:
    ops = parse_porcupine_jepsen(jepsen(
        "0\t:invoke\t:write\t1",
        "1\t:invoke\t:cas\t[1 2]",
        "0\t:info\t:write\t:timed-out",
        "1\t:ok\t:cas\t[1 2]",
        "5\t:invoke\t:read\tnil",
    ))
    write, cas, read = ops
    assert write.unknown and write.return_time == UNKNOWN_RETURN and write.output is None
    assert cas.output == OK and cas.return_time == 2
    assert read.unknown, "a call open at the end of the file is an unknown outcome"


def test_jepsen_timed_out_read_returns_at_its_position_with_unknown_output() -> None:
    ops = parse_porcupine_jepsen(jepsen(
        "2\t:invoke\t:read\tnil",
        "4\t:invoke\t:write\t0",
        "2\t:fail\t:read\t:timed-out",
        "4\t:ok\t:write\t0",
    ))
    read = ops[0]
    assert not read.unknown
    assert read.output is None and read.return_time == 2


@pytest.mark.parametrize(("text", "line"), [
    (jepsen("0\t:invoke\t:read\tnil", "0\t:ok\t:read\tmany"), 2),
    (jepsen("0\t:invoke\t:read\tnil") + "garbage\n", 2),
    (jepsen("0\t:ok\t:read\t1"), 1),
    (jepsen("0\t:invoke\t:read\tnil", "0\t:invoke\t:write\t1"), 2),
    (jepsen("0\t:invoke\t:write\t1", "0\t:ok\t:write\t2"), 2),
    (jepsen("0\t:invoke\t:cas\t[1 2]", "0\t:ok\t:cas\t[2 1]"), 2),
    (jepsen("0\t:invoke\t:write\t1", "0\t:ok\t:read\t1"), 2),
    (jepsen("0\t:invoke\t:write\t1", "0\t:fail\t:read\t:timed-out"), 2),
    (jepsen("0\t:info\t:write\t:timed-out"), 1),
    ("\n" + P + "x\t:invoke\t:read\tnil\n", 2),
])
def test_jepsen_malformed_input_names_the_line(text: str, line: int) -> None:
    with pytest.raises(HistoryError) as raised:
        parse_porcupine_jepsen(text)
    assert raised.value.line == line
    assert f"line {line}:" in str(raised.value)


def kv(process: int, kind: str, f: str, key: str, value: str | None) -> str:
    shown = "nil" if value is None else f'"{value}"'
    return f'{{:process {process}, :type :{kind}, :f :{f}, :key "{key}", :value {shown}}}\n'


def test_kv_lines_become_operations() -> None:
    ops = parse_porcupine_kv(
        kv(0, "invoke", "append", "1", "x 0 0 y")
        + kv(1, "invoke", "get", "1", None)
        + kv(0, "ok", "append", "1", "x 0 0 y")
        + kv(1, "ok", "get", "1", "")
        + kv(2, "invoke", "put", "2", "x 2 0 y"))
    summary = [(o.client, o.input, o.output, o.call, o.return_time, o.unknown) for o in ops]
    assert summary == [
        (0, ("append", "1", "x 0 0 y"), OK, 0, 2, False),
        (1, ("get", "1"), ("value", ""), 1, 3, False),
        (2, ("put", "2", "x 2 0 y"), None, 4, UNKNOWN_RETURN, True),
    ]


@pytest.mark.parametrize(("text", "line"), [
    (kv(0, "invoke", "get", "1", None) + "{:process 0, :type :ok}\n", 2),
    (kv(0, "ok", "get", "1", ""), 1),
    (kv(0, "invoke", "get", "1", "x"), 1),
    (kv(0, "invoke", "put", "1", None), 1),
    (kv(0, "invoke", "put", "1", "a") + kv(0, "ok", "put", "1", "b"), 2),
    (kv(0, "invoke", "put", "1", "a") + kv(0, "ok", "put", "2", "a"), 2),
    (kv(0, "invoke", "get", "1", None) + kv(0, "ok", "get", "1", None), 2),
    (kv(0, "invoke", "get", "1", None) + kv(0, "invoke", "get", "1", None), 2),
])
def test_kv_malformed_input_names_the_line(text: str, line: int) -> None:
    with pytest.raises(HistoryError) as raised:
        parse_porcupine_kv(text)
    assert raised.value.line == line


def test_readers_take_paths(tmp_path: Path) -> None:
    log = tmp_path / "h.log"
    log.write_text(jepsen("0\t:invoke\t:write\t1", "0\t:ok\t:write\t1"), encoding="ascii")
    assert read_porcupine_jepsen(log)[0].input == ("write", 1)
    txt = tmp_path / "h.txt"
    txt.write_text(kv(0, "invoke", "get", "k", None) + kv(0, "ok", "get", "k", "v"),
                   encoding="ascii")
    assert read_porcupine_kv(str(txt))[0].output == ("value", "v")


def test_non_ascii_file_names_the_line(tmp_path: Path) -> None:
    log = tmp_path / "h.log"
    log.write_bytes(jepsen("0\t:invoke\t:write\t1").encode() + "caf\u00e9\n".encode())
    with pytest.raises(HistoryError) as raised:
        read_porcupine_jepsen(log)
    assert raised.value.line == 2


def _rows(folder: str) -> list[dict[str, str]]:
    table = SHARED / folder / "EXPECTED.tsv"
    if not table.exists():
        return []
    with table.open(encoding="utf-8") as rows:
        return list(csv.DictReader(rows, delimiter="\t"))


@pytest.mark.skipif(not SHARED.exists(), reason=f"shared histories not found at {SHARED}")
@pytest.mark.parametrize("folder", ["porcupine", "etcd-histories"])
def test_shared_files_read_with_the_expected_operation_counts(folder: str) -> None:
    for row in _rows(folder):
        path = SHARED / folder / row["file"]
        reader = read_porcupine_jepsen if row["file"].startswith("jepsen/") else read_porcupine_kv
        ops = reader(path)
        assert len(ops) == int(row["n_operations"]), row["file"]
        assert [o.id for o in sorted(ops, key=lambda o: o.id)] == list(range(len(ops)))
