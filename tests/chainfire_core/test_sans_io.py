"""The core stays sans-IO: no module of chainfire_core imports I/O, clocks,
threads, global randomness or the simulator (DESIGN.md, STYLE.md rule 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FORBIDDEN = {
    "asyncio", "socket", "time", "random", "os", "threading", "logging", "subprocess", "simpy",
    "selectors",
}
CORE = Path(__file__).resolve().parents[2] / "chainfire_core"


def _imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_has_modules() -> None:
    assert len(list(CORE.rglob("*.py"))) > 5


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_module_imports_nothing_forbidden(path: Path) -> None:
    bad = _imported_roots(path.read_text()) & FORBIDDEN
    assert not bad, f"{path} imports {sorted(bad)}"


def test_walker_catches_forbidden_imports() -> None:
    # The walker itself must see every import form, or the test above proves nothing.
    assert _imported_roots("import os.path\nfrom time import monotonic\n") == {"os", "time"}
    assert _imported_roots("def f():\n    import random\n") == {"random"}
