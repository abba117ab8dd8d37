"""Execute every docs notebook (MyST markdown) in a fresh kernel; a cell that raises fails it.

The notebooks declare the ``python3`` kernel; here they run in a kernel of this very
interpreter (a kernelspec pointing at ``sys.executable``, written to a temporary directory, so
whatever ``python3`` means elsewhere does not matter), with the Agg matplotlib backend, in a
temporary working directory: the notebooks write nothing into the repository. They need the
``test`` extra (scikit-learn, jupytext, nbclient, ipykernel, matplotlib).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import jupytext
import nbclient
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient.exceptions import CellExecutionError

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "docs" / "notebooks"
NOTEBOOKS = sorted(p for p in NOTEBOOKS_DIR.glob("*.md") if p.name != "README.md")
KERNEL = "minibatch-tests"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec directory whose only kernel runs this interpreter, Agg backend."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    spec_json = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.executable})",
        "language": "python",
        "env": {"MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"},
    }
    (spec / "kernel.json").write_text(json.dumps(spec_json))
    return root


def test_notebooks_found() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"more_replacements.md", "iris_svgd.md", "iris_minibatch.md"} <= names


def test_notebooks_have_no_doctest_prompts() -> None:
    """pytest collects every docs/*.md as a doctest file: a stray prompt would run as one."""
    for path in [*NOTEBOOKS, NOTEBOOKS_DIR / "README.md"]:
        assert ">>>" not in path.read_text(), path


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(
    path: Path, kernel_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = jupytext.read(path)
    assert nb.metadata["kernelspec"]["name"] == "python3", "notebooks declare the python3 kernel"
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells, f"{path.name} has no code cells"
    # the kernelspec is found through JUPYTER_PATH, so that nbclient owns (and shuts down) the
    # kernel it starts
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    assert KernelSpecManager().get_kernel_spec(KERNEL).argv[0] == sys.executable
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    failure = None
    try:
        client.execute()
    except CellExecutionError as err:
        failure = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # IPython colours the traceback
    if failure is not None:
        pytest.fail(f"{path.name}: a cell raised\n{failure}", pytrace=False)
    elapsed = time.perf_counter() - start
    print(f"{path.name}: {elapsed:.1f} s")
    assert all(c.get("execution_count") for c in code_cells), "every code cell ran"
