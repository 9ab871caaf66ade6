"""Every history in ../shared gets its expected verdict, each within 60 s.

- ../shared/porcupine/EXPECTED.tsv: Porcupine's own test histories, with
  the verdict Porcupine gives (`expected_verdict`);
- ../shared/etcd-histories/EXPECTED.tsv: histories recorded from etcd 3.4
  and Illegal variants of them, with their true verdict (`verdict`),
  four of which Porcupine cannot decide in 60 s.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from checker.history import Operation
from checker.linearizability import check_operations
from checker.models import KVModel, RegisterModel
from checker.readers import read_porcupine_jepsen, read_porcupine_kv
from checker.result import Verdict

SHARED = Path(__file__).parents[2].parent / "shared"
TIMEOUT_S = 60.0


def _cases(folder: str, verdict_column: str) -> list[tuple[str, str]]:
    table = SHARED / folder / "EXPECTED.tsv"
    if not table.exists():
        return []
    with table.open(encoding="utf-8") as rows:
        return [(f"{folder}/{row['file']}", row[verdict_column])
                for row in csv.DictReader(rows, delimiter="\t")]


CASES = _cases("porcupine", "expected_verdict") + _cases("etcd-histories", "verdict")


def _load(name: str) -> tuple[list[Operation], RegisterModel | KVModel]:
    path = SHARED / name
    if "/jepsen/" in name:
        return read_porcupine_jepsen(path), RegisterModel()
    return read_porcupine_kv(path), KVModel()


@pytest.mark.skipif(not SHARED.exists(), reason=f"shared histories not found at {SHARED}")
def test_both_tables_are_there() -> None:
    assert len(_cases("porcupine", "expected_verdict")) >= 66
    assert len(_cases("etcd-histories", "verdict")) == 23


@pytest.mark.skipif(not CASES, reason=f"shared histories not found at {SHARED}")
@pytest.mark.parametrize(("name", "expected"), CASES, ids=[name for name, _ in CASES])
def test_history_gets_its_expected_verdict(name: str, expected: str) -> None:
    ops, model = _load(name)
    result = check_operations(ops, model, timeout_s=TIMEOUT_S)
    assert result.verdict.value == expected, [(p.name, p.reason) for p in result.partitions]
    assert result.elapsed_s < TIMEOUT_S
    if result.verdict is Verdict.ILLEGAL:
        failing = result.failing[0]
        assert failing.explanation and failing.reason
        assert len(failing.linearization) < failing.operations
