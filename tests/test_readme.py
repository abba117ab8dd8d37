"""The README keeps its promises: its commands are CI's, its example runs, its table is measured."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import minibatch as mb

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command_verbatim():
    bash_blocks = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    assert len(bash_blocks) >= 2
    test_command = bash_blocks[1].strip()
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()
    assert "minibatch.demo" in bash_blocks[0]


def test_usage_example_runs():
    code = re.findall(r"```python\n(.*?)\n```", README, flags=re.S)[0]
    namespace: dict = {}
    exec(compile(code.replace("10_000", "2_000"), "README.md", "exec"), namespace)
    assert len(namespace["approx"].hist) == 2_000


def test_out_of_core_example_runs(tmp_path, monkeypatch):
    """The second example, on a 1,000,000-row memmap and Zarr store written here."""
    import pymc as pm
    import zarr

    from minibatch._gather import source_of
    from minibatch._stream import stream_of

    code = re.findall(r"```python\n(.*?)\n```", README, flags=re.S)[1]
    monkeypatch.chdir(tmp_path)
    n, rng = 1_000_000, np.random.default_rng(0)
    x = np.lib.format.open_memmap("X.npy", mode="w+", dtype="float64", shape=(n, 3))
    x[:] = rng.normal(size=(n, 3))
    y = zarr.create_array(store="y.zarr", shape=(n,), chunks=(50_000,), dtype="float64")
    y[:] = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=n)
    x.flush()
    del x
    namespace: dict = {"np": np, "pm": pm, "zarr": zarr, "mb": mb}
    exec(compile(code, "README.md", "exec"), namespace)
    stream = stream_of(source_of(namespace["Xb"])[0])
    assert stream.n_rows == n and stream.window_rows < n // 8
    assert stream.windows > 10_000 // stream.steps_per_window
    # posterior sds are ~0.001; 0.05 leaves room for the SGD noise only
    np.testing.assert_allclose(namespace["approx"].mean.eval(), [1.0, -2.0, 0.5], atol=0.05)


def test_comparison_table_is_what_the_script_prints():
    out = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "compare_pymc.py")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = iter(out.splitlines()[1:])
    results = {name: (next(lines), next(lines)) for name in lines}
    pm_fails = [
        "advi_tuple_total_size",
        "int64_poisson",
        "numpy_int_batch_size",
        "obj_n_mc_3",
        "replace_by_other_length",
        "short_total_size_tuple",
        "svgd",
        "jax_prior_predictive",
    ]
    for case in pm_fails:
        pm_line, mb_line = results[case]
        assert "ok:" not in pm_line and "ok:" in mb_line, case
    pm_line, mb_line = results["normalising_constant_int_rank2"]
    assert "ok: 320 " in pm_line and "ok: 8 " in mb_line
    pm_line, mb_line = results["mismatched_lengths"]
    assert "accepted" in pm_line and "ValueError: data argument 1" in mb_line


def test_readme_model_once_example_runs():
    """The third example: minibatch_model with epochs fits; the local-latent model builds."""
    import pymc as pm

    code = re.findall(r"```python\n(.*?)\n```", README, flags=re.S)[2]
    namespace: dict = {"np": np, "pm": pm, "mb": mb}
    exec(compile(code, "README.md", "exec"), namespace)
    # posterior sds are ~0.01; 0.05 leaves room for the SGD noise only
    np.testing.assert_allclose(namespace["approx"].mean.eval(), [1.0, -2.0], atol=0.05)
    point = {"w": np.array([0.3, -0.2])}
    full = mb.full_data_model(namespace["mini"]).compile_logp()(point)
    np.testing.assert_allclose(full, namespace["model"].compile_logp()(point), rtol=1e-10)
