"""The notebooks: each runs top to bottom, and each is committed clean.

Every notebooks/*.ipynb is executed with nbclient in a fresh kernel, in a
temporary working directory; any cell that raises fails the test with the
cell's traceback. The kernel is the interpreter running the tests (the
venv's under `./dev test`): a `python3` kernelspec pointing at
`sys.executable` is written into a temporary JUPYTER_PATH, which Jupyter
searches before every installed kernelspec. The per-cell timeout is a hang
guard, not a speed test (each notebook takes well under a minute).

The committed files must carry no outputs or execution counts, and must be
exactly what notebooks/build.py generates, so the generator stays the
reviewable source.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def _name(path: Path) -> str:
    return path.name


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebooks_build", ROOT / "notebooks/build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernelspec for this interpreter, found first."""
    jupyter_path = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter_path / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (chainfire tests)", "language": "python"}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(jupyter_path))
        patch.setenv("JUPYTER_PLATFORM_DIRS", "1")
        spec = KernelSpecManager().get_kernel_spec("python3")
        assert spec.argv[0] == sys.executable, spec.argv
        yield "python3"


def test_there_are_notebooks() -> None:
    names = [path.name for path in NOTEBOOKS]
    assert names == sorted(_build_module().NOTEBOOKS), "notebooks/*.ipynb != build.py's list"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    for index, cell in enumerate(book.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has outputs"
            assert cell.execution_count is None, f"{path.name} cell {index} was executed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_notebook_matches_its_generator(path: Path) -> None:
    expected = _build_module().render(path.name)
    assert path.read_text(encoding="utf-8") == expected, \
        f"{path.name} is out of date: run .venv/bin/python notebooks/build.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_name)
def test_notebook_runs_top_to_bottom(path: Path, kernel_name: str, tmp_path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, timeout=CELL_TIMEOUT_S, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the traceback, on any cell error
    errors = [output for cell in book.cells if cell.cell_type == "code"
              for output in cell.outputs if output.output_type == "error"]
    assert errors == []
