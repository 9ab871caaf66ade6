"""Raft datadriven scripts (testdata/*.txt) replayed through the InteractionEnv.

One test per script. `CHAINFIRE_REWRITE=1` rewrites the expected outputs in
place (then read the diff: the scripts are a review of the core's behaviour,
not just a record of it). A script whose header holds `# xfail: <reason>`
documents a core bug: its expected output is the correct behaviour, written
by hand, and the test is a strict xfail until the bug is fixed. Rewrite mode
leaves such scripts alone, so the correct output is not overwritten by the
buggy one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from datadriven import header_directives, parse_file, rewrite_requested, run_file
from interaction_env import InteractionEnv

TESTDATA = Path(__file__).parent / "testdata"


def _scripts() -> list[object]:
    params: list[object] = []
    for path in sorted(TESTDATA.glob("*.txt")):
        reason = header_directives(path).get("xfail")
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


@pytest.mark.parametrize("path", _scripts())
def test_script(path: Path) -> None:
    xfail = "xfail" in header_directives(path)
    failures = run_file(path, InteractionEnv().handle, rewrite=rewrite_requested() and not xfail)
    assert not failures, "\n\n".join(failures)


def test_every_script_has_a_description_and_blocks() -> None:
    scripts = sorted(TESTDATA.glob("*.txt"))
    assert len(scripts) >= 20
    for path in scripts:
        assert path.read_text().startswith("#"), f"{path.name}: begin with a comment saying why"
        assert parse_file(path).blocks, path.name


def test_runner_round_trips_double_separator(tmp_path: Path) -> None:
    script = tmp_path / "t.txt"
    script.write_text("# c\nraft-state\n----\nstale\n\nlog-level none\n----\n----\nx\n\ny\n----\n"
                      "----\n")

    def handler(d: object) -> str:
        return "a\n\nb" if getattr(d, "cmd", "") == "raft-state" else "ok"

    assert run_file(script, handler)  # both blocks differ
    run_file(script, handler, rewrite=True)
    assert script.read_text() == "# c\nraft-state\n----\n----\na\n\nb\n----\n----\n\n" \
        "log-level none\n----\nok\n"
    assert not run_file(script, handler)
