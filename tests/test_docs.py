"""The Python examples in README.md and docs/*.md run as written.

Each file's ```python blocks run in order in one namespace, so a guide can
build on its earlier examples. Each file runs in a fresh interpreter: the
examples start servers and event loops (gRPC's asyncio support keeps
process-wide state), and a reader runs them in a fresh one too."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)

# Runs the blocks of the file named by argv[1] in order, in one namespace.
_RUNNER = """
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
namespace = {"__name__": "__doc_example__"}
for number, block in enumerate(re.findall(r"```python\\n(.*?)```", text, re.DOTALL), start=1):
    exec(compile(block, f"{sys.argv[1].rsplit('/', 1)[-1]}[block {number}]", "exec"), namespace)
"""


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(path: Path, tmp_path: Path) -> None:
    if not BLOCK.findall(path.read_text()):
        pytest.skip(f"{path.name} has no python examples")
    done = subprocess.run([sys.executable, "-c", _RUNNER, str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, f"{path.name}: examples failed\n{done.stdout}\n{done.stderr}"
