"""The benchmark script runs end to end at tiny sizes (no timing is asserted: that is its job)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "benchmarks" / "bench.py"


def _load_bench():
    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench", BENCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH.parent))


def test_quick_benchmark_prints_every_table_and_writes_the_plot(tmp_path, capsys):
    bench = _load_bench()
    png = tmp_path / "performance.png"
    results = bench.main(["--quick", "--modes=CVM", "--sweep-modes=CVM", f"--plot={png}"])
    out = capsys.readouterr().out
    for title in ("## Goals", "## Per-step µs against N", "## Steps per second", "## Memory"):
        assert title in out
    assert "| CVM |" in out and "peak RSS" in out
    [goal] = results["goals"]
    assert set(goal["times"]) == {"const", "mb", "pm", "alone", "call", "hot", "cold"}
    assert not goal["failed"]
    assert "| budget for mb/constant µs |" in out and {"copy_hot", "copy_cold"} <= set(goal)
    assert all(len(t) == 2 and min(t) > 0 for t in goal["times"].values())  # 2 rounds, measured
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_float32_probe_reports_the_dtypes_of_the_data_path():
    import pytensor

    bench = _load_bench()
    with pytensor.config.change_flags(floatX="float32"):
        found = bench.float32_probe()
    assert found == {"floatX": "float32", "batch_dtypes": ["float32"]}


STREAM = Path(__file__).parents[1] / "benchmarks" / "stream.py"


def test_quick_stream_benchmark_prints_both_tables_with_measured_numbers(tmp_path, capsys):
    import math

    spec = importlib.util.spec_from_file_location("stream_bench", STREAM)
    stream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stream)
    results = stream.main(["--quick", f"--data-dir={tmp_path}"])
    out = capsys.readouterr().out
    assert "## Peak memory" in out and "## Steps per second" in out
    assert not list(tmp_path.iterdir()), "the data files are removed"

    def positive(value):
        return isinstance(value, float | int) and math.isfinite(value) and value > 0

    memory = {row["kind"]: row for row in results["memory"]}
    assert set(memory) == {"memmap", "zarr", "memory"}
    for row in memory.values():
        for key in ("source_mib", "disk_mib", "window_mib", "baseline_mib", "peak_mib"):
            assert positive(row[key]), (row["kind"], key, row[key])
        assert positive(row["growth_mib"]), (row["kind"], row["growth_mib"])
        assert all(math.isfinite(v) for v in row["added"].values()), row["added"]
    assert positive(memory["memmap"]["windows"]) and positive(memory["zarr"]["windows"])

    steps = results["steps"]
    calibration = steps["calibration"]
    assert positive(calibration["mem_rate"])
    assert all(positive(v) for v in calibration["alone"].values())
    assert all(positive(v) for v in calibration["in_fit"].values())
    assert all(positive(v) for v in calibration["large"].values())
    names = [row["name"] for row in steps["rows"]]
    assert names[0] == "memory" and {"memmap, default", "memmap, large"} <= set(names)
    assert {"zarr, default", "zarr, large"} <= set(names)
    for row in steps["rows"]:
        assert positive(row["steps_per_s"]) and positive(row["ratio"]), row
        if row["name"] == "memory":
            continue
        for key in ("reader_rows_per_s", "needed_rows_per_s", "windows", "steps_per_window"):
            assert positive(row[key]), (row["name"], key, row[key])
        # the time waited for windows may round to nothing when the reader keeps up
        assert math.isfinite(row["wait_s"]) and row["wait_s"] >= 0, row
        assert math.isfinite(row["wait_share"]) and row["wait_share"] >= 0, row


STEPS_PER_CALL = Path(__file__).parents[1] / "benchmarks" / "steps_per_call.py"


def test_quick_steps_per_call_benchmark_times_every_kind_on_c_and_jax(capsys):
    import math

    spec = importlib.util.spec_from_file_location("steps_per_call_bench", STEPS_PER_CALL)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--quick", "--modes=CVM,JAX"])
    out = capsys.readouterr().out
    for title in ("## mb.fit µs per step", "## The compiled call of k steps alone", "## Ratios"):
        assert title in out
    assert "| one | C |" in out and "| one | JAX |" in out
    assert [res["mode"] for res in results["results"]] == ["CVM", "JAX"]
    kinds = {"pm.fit", "pm step", "k=0", "alone k=0", "k=1", "alone k=1", "k=4", "alone k=4"}
    for res in results["results"]:
        found = res["models"]["one"]
        assert not found["failed"], found["failed"]
        assert set(found["times"]) == kinds  # --quick: no NumPyro, no C reference
        for kind, times in found["times"].items():
            assert len(times) == 1 and math.isfinite(times[0]) and times[0] > 0, (kind, times)
        assert 0 < found["share"]["4"] <= 1 and 0 < found["share"]["0"] <= 1
    assert "| model | mode | pm.fit | PyMC step | default | k=1 | k=4 |" in out
    assert results["figures"]["one CVM"]["best"] in (0, 1, 4)
    assert results["figures"]["one JAX"]["best/k1"] > 0
