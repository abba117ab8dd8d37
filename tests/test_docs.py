"""The docs pages keep their promises: their examples run, their tables are what the scripts
print, every page is on the site's table of contents, every public name on the API page.

The notebooks are executed by the docs build (``nox -s docs``), not here: see docs/conf.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import minibatch as mb

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GETTING_STARTED = (DOCS / "getting_started.md").read_text()


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", text, flags=re.S)


def test_out_of_core_example_runs(tmp_path, monkeypatch):
    """getting_started's second example, on a 1,000,000-row memmap and Zarr store written here."""
    import pymc as pm
    import zarr

    from minibatch._gather import source_of
    from minibatch._stream import stream_of

    code = python_blocks(GETTING_STARTED)[1]
    monkeypatch.chdir(tmp_path)
    n, rng = 1_000_000, np.random.default_rng(0)
    x = np.lib.format.open_memmap("X.npy", mode="w+", dtype="float64", shape=(n, 3))
    x[:] = rng.normal(size=(n, 3))
    y = zarr.create_array(store="y.zarr", shape=(n,), chunks=(50_000,), dtype="float64")
    y[:] = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=n)
    x.flush()
    del x
    namespace: dict = {"np": np, "pm": pm, "zarr": zarr, "mb": mb}
    exec(compile(code, "getting_started.md", "exec"), namespace)
    stream = stream_of(source_of(namespace["Xb"])[0])
    assert stream.n_rows == n and stream.window_rows < n // 8
    assert stream.windows > 10_000 // stream.steps_per_window
    # posterior sds are ~0.001; 0.05 leaves room for the SGD noise only
    np.testing.assert_allclose(namespace["approx"].mean.eval(), [1.0, -2.0, 0.5], atol=0.05)


def test_model_once_example_runs():
    """The third example: minibatch_model with epochs fits; the local-latent model builds."""
    import pymc as pm

    code = python_blocks(GETTING_STARTED)[2]
    namespace: dict = {"np": np, "pm": pm, "mb": mb}
    exec(compile(code, "getting_started.md", "exec"), namespace)
    # posterior sds are ~0.01; 0.05 leaves room for the SGD noise only
    np.testing.assert_allclose(namespace["approx"].mean.eval(), [1.0, -2.0], atol=0.05)
    point = {"w": np.array([0.3, -0.2])}
    full = mb.full_data_model(namespace["mini"]).compile_logp()(point)
    np.testing.assert_allclose(full, namespace["model"].compile_logp()(point), rtol=1e-10)


def comparison_rows() -> list[list[str]]:
    """The rows of compatibility.md's table against pm.Minibatch: [case, pm cell, mb cell]."""
    text = (DOCS / "compatibility.md").read_text()
    table = text.split("## Compared with `pm.Minibatch`", 1)[1].split("\n\n")[2]
    lines = table.splitlines()
    assert lines[0].startswith("| case |")
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_comparison_table_is_what_the_script_prints():
    """Row by row: an error the script prints is named in its cell; a success names none."""
    out = subprocess.run(
        [sys.executable, str(DOCS / "compare_pymc.py")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = iter(out.splitlines()[1:])
    results = {name: (next(lines), next(lines)) for name in lines}
    rows = comparison_rows()
    assert len(rows) == len(results)
    for (case, printed), row in zip(results.items(), rows, strict=True):
        for line, cell in zip(printed, row[1:], strict=True):
            outcome = line.split(": ", 1)[1]
            if outcome.startswith("ok:"):
                assert "Error" not in cell and "NotImplemented" not in cell, (case, cell)
            else:
                assert outcome.split(":", 1)[0] in cell, (case, line, cell)
    pm_line, mb_line = results["normalising_constant_int_rank2"]
    assert "ok: 320 " in pm_line and "ok: 8 " in mb_line
    pm_line, mb_line = results["mismatched_lengths"]
    assert "accepted" in pm_line and "ValueError: data argument 1" in mb_line


def toctree_entries() -> set[str]:
    """Every page named by a toctree of the site (``Title <page>`` or ``page``)."""
    entries = set()
    for page in DOCS.glob("*.md"):
        for block in re.findall(r"```\{toctree\}\n(.*?)```", page.read_text(), flags=re.S):
            for line in block.splitlines():
                if line and not line.startswith(":"):
                    entries.add(re.sub(r"^.*<(.+)>$", r"\1", line).strip())
    return entries


def test_every_page_is_on_the_table_of_contents():
    listed = toctree_entries()
    pages = {p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md")}
    pages -= {"index", "notebooks/README"}
    assert pages <= listed, sorted(pages - listed)
    assert {"fitting", "api", "changelog", "notebooks/streaming"} <= listed


def test_api_page_lists_every_public_name():
    api = (DOCS / "api.md").read_text()
    listed = re.findall(r"^   (\w+)$", api, flags=re.M)
    assert sorted(listed) == sorted(name for name in mb.__all__ if name != "__version__")


def test_convergence_table_is_the_benchmarks_and_mb_fit_meets_the_goal():
    """docs/convergence.md shows what benchmarks/convergence.py prints from its JSON, and in that
    JSON every mb.fit() row (each model and seed) meets the goal and stopped by itself."""
    import json

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import convergence
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    rows = json.loads((DOCS / "convergence.json").read_text())
    page = (DOCS / "convergence.md").read_text()
    shown = page.split("<!-- convergence-table")[1].split("-->", 1)[1]
    shown = shown.split("<!-- end convergence-table -->")[0].strip()
    assert shown == convergence.table(rows)
    ours = [r for r in rows if r["fit"] == "mb.fit()"]
    assert {r["model"] for r in ours} == {r["model"] for r in rows} and len(ours) >= 18
    for row in ours:
        assert row["converged"] and row["meets"], row
        assert all(row[key] <= bound for key, bound in convergence.GOAL.items()), row
