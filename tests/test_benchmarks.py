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
