"""chainfire-check: verdicts, exit codes, JSON, pictures, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checker.cli import EXIT_BAD_INPUT, main

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared (test histories) absent")


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def register_op(op_id: int, call: int, ret: int, *, f: str, value: object, out: object) -> str:
    return json.dumps({"kind": "op", "id": op_id, "client": op_id, "call": call, "return": ret,
                       "input": {"f": f, "value": value}, "output": out})


def test_ok_history_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "ok.jsonl", [
        register_op(0, 0, 1, f="write", value=3, out={}),
        register_op(1, 2, 3, f="read", value=None, out={"value": 3}),
    ])
    assert main([str(path), "--model", "register"]) == 0
    assert "Ok" in capsys.readouterr().out


def test_illegal_history_exits_1_and_names_the_operations(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.jsonl", [
        register_op(0, 0, 1, f="write", value=3, out={}),
        register_op(1, 2, 3, f="read", value=None, out={"value": 4}),
    ])
    assert main([str(path), "--model", "register", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "Illegal"
    assert 1 in report["partitions"][0]["explanation"]


def test_malformed_line_exits_3_with_its_number(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "broken.jsonl", [
        register_op(0, 0, 1, f="write", value=3, out={}), "{not json"])
    assert main([str(path), "--model", "register"]) == EXIT_BAD_INPUT
    assert "line 2" in capsys.readouterr().err


def test_missing_file_exits_3(tmp_path: Path) -> None:
    assert main([str(tmp_path / "absent.jsonl"), "--model", "register"]) == EXIT_BAD_INPUT


@needs_shared
def test_porcupine_file_with_pictures(tmp_path: Path) -> None:
    html_path, png_path = tmp_path / "t.html", tmp_path / "t.png"
    history = SHARED / "porcupine" / "jepsen" / "etcd_000.log"
    assert main([str(history), "--html", str(html_path), "--png", str(png_path)]) == 1
    page = html_path.read_text()
    assert "<svg" in page and "Illegal" in page
    assert "<script" not in page and "src=" not in page, "the page must be self-contained"
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_shared
def test_zero_timeout_gives_unknown_exit_2() -> None:
    history = SHARED / "porcupine" / "kv" / "c50-ok.txt"
    assert main([str(history), "--timeout", "0"]) == 2
