"""The Python examples in README.md and docs/*.md run as written.

Each file's ```python blocks run in order in one namespace, so a guide can
build on its earlier examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(path: Path) -> None:
    namespace: dict[str, object] = {}
    for number, block in enumerate(BLOCK.findall(path.read_text()), start=1):
        code = compile(block, f"{path.name}[block {number}]", "exec")
        exec(code, namespace)
