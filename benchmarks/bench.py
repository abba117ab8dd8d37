"""Per-step ADVI cost of ``mb.Minibatch`` against a constant batch, ``pm.Minibatch`` and full data.

Run ``python benchmarks/bench.py`` (or ``nox -s bench``); ``--quick`` runs tiny sizes.  It prints
four markdown tables and writes a plot (``--plot``, default ``docs/performance.png``):

1. the goals, one process per run, every backend: microseconds per step (median of per-round
   means) and the ratios mb / constant batch and mb / pm.Minibatch (medians of per-round
   ratios; the kinds alternate order from round to round);
2. per-step cost against the number of stored rows N (a fresh process per N), with the memory
   a step allocates and the peak RSS;
3. steps per second against the batch size, full data included;
4. memory: what each ``mb.Minibatch`` view of the same data adds to the resident set, the float32
   check (a child process with ``floatX=float32``) and the peak RSS.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import steps as st

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"CVM": (1.05, 0.75), "NUMBA": (1.05, 0.75), "JAX": (1.05, None)}
# The floor of any minibatch: copying the batch's rows out of the stored data (see gather_alone).
FLOOR = {"call": None, "hot": False, "cold": True}


def _us(seconds: list[float]) -> str:
    return f"{np.median(seconds) * 1e6:,.0f}"


def _build(kinds: list[str], data: np.ndarray, batch: int, mode: str) -> tuple[dict, dict]:
    built, failed = {}, {}
    for kind in kinds:
        try:
            if kind == "alone":
                built[kind] = st.batch_alone(data, batch, mode)
            elif kind in FLOOR:
                built[kind] = st.gather_alone(data, batch, mode, FLOOR[kind])
            else:
                built[kind] = st.build_step(kind, data, batch, mode)
        except Exception as err:  # a backend that cannot compile a kind is a result too
            failed[kind] = type(err).__name__
    return built, failed


def goals_table(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Table 1: the ratios of the goals, per backend."""
    data = st.make_data(args.rows)
    print(f"\n## Goals: N = {args.rows}, batch {args.batch}, {args.rounds} rounds\n")
    print(
        "| mode | constant µs | mb µs | pm.Minibatch µs | mb/constant | mb/pm | goal "
        "| draw + gather alone µs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for mode in args.modes:
        kinds = ["const", "mb", "pm", "alone", *FLOOR]
        built, failed = _build(kinds, data, args.batch, mode)
        times = st.interleaved(built, args.rounds, args.seconds)
        row = {"mode": mode, "failed": failed, "times": times}
        row["mb/const"] = st.median_ratio(times, "mb", "const")
        row["mb/pm"] = st.median_ratio(times, "mb", "pm") if "pm" in times else None
        cells = [_us(times[k]) if k in times else failed[k] for k in ("const", "mb", "pm")]
        goal_const, goal_pm = GOALS.get(mode, (1.05, None))
        met = row["mb/const"] <= goal_const and (goal_pm is None or (row["mb/pm"] or 9) <= goal_pm)
        goal = f"<= {goal_const}" + (f", <= {goal_pm}" if goal_pm else "")
        mb_pm = "n/a" if row["mb/pm"] is None else f"{row['mb/pm']:.2f}"
        print(
            f"| {mode} | {' | '.join(cells)} | {row['mb/const']:.2f} | {mb_pm} | "
            f"{goal}: {'met' if met else 'NOT met'} | {_us(times['alone'])} |"
        )
        rows.append(row)
        del built
        gc.collect()
    floor_table(rows)
    return rows


def floor_table(rows: list[dict[str, Any]]) -> None:
    """What each goal leaves a minibatch to spend per step, against the cost of the copy alone.

    The budgets: mb / constant <= g leaves ``(g - 1) * constant``; mb / pm.Minibatch <= g leaves
    ``g * pm - constant`` (both in µs per step, from the same rounds).  The copy: the batch's
    rows gathered out of the stored data by the compiled C/Numba/JAX kernel, with the cost of a
    bare call of a compiled function subtracted.  When the copy alone exceeds a budget, no
    minibatch that copies its rows on the step's own thread can meet that goal.
    """
    print(
        "\n| mode | budget for mb/constant µs | budget for mb/pm µs | copy, same rows µs "
        "| copy, fresh rows µs |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        times = {k: np.median(v) * 1e6 for k, v in row["times"].items()}
        if not {"const", "call", "hot", "cold"} <= set(times):
            continue
        goal_const, goal_pm = GOALS.get(row["mode"], (1.05, None))
        budget_pm = f"{goal_pm * times['pm'] - times['const']:,.0f}" if goal_pm else "n/a"
        row["copy_hot"], row["copy_cold"] = (times[k] - times["call"] for k in ("hot", "cold"))
        print(
            f"| {row['mode']} | {(goal_const - 1) * times['const']:,.0f} | {budget_pm} | "
            f"{row['copy_hot']:,.0f} | {row['copy_cold']:,.0f} |"
        )


def rows_sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Table 2: per-step cost against N, each size in a fresh process (full data on C only).

    A fresh process per size keeps one size's memory (800 MB arrays at N = 1e6, and the full-data
    step's temporaries) from slowing the next: measured in one process, random rows of a 1e6-row
    array cost up to 2 ms per step after the full-data rounds, against ~0.1 ms in a fresh one.
    """
    print(f"\n## Per-step µs against N (batch {args.batch}; one process per row)\n")
    print(
        "| mode | N | constant | mb | pm.Minibatch | full data | mb/constant | mb KiB/step "
        "| peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    out = []
    for mode in args.sweep_modes:
        for n in args.sweep_rows:
            cell = _run_cell(args, mode, n)
            times, failed = cell["times"], cell["failed"]
            cells = [
                _us(times[k]) if k in times else failed.get(k, "-")
                for k in ("const", "mb", "pm", "full")
            ]
            ratio = st.median_ratio(times, "mb", "const")
            print(
                f"| {mode} | {n:.0e} | {' | '.join(cells)} | {ratio:.2f} | "
                f"{cell['alloc_kib']:,.0f} | {cell['peak_rss_mib']:,.0f} |"
            )
            out.append({"mode": mode, "rows": n, **cell})
    return out


def _run_cell(args: argparse.Namespace, mode: str, rows: int) -> dict[str, Any]:
    """One row of table 2, measured by a child process (``--cell``)."""
    cmd = [sys.executable, __file__, f"--cell={mode},{rows}", f"--batch={args.batch}"]
    cmd += [f"--rounds={args.rounds}", f"--seconds={args.seconds}"]
    return st.child_json(cmd, f"benchmark cell {mode}, N={rows}")


def measure_cell(mode: str, rows: int, batch: int, rounds: int, seconds: float) -> dict[str, Any]:
    """Per-step times of every kind on ``rows`` stored rows, in this process."""
    data = st.make_data(rows)
    kinds = ["const", "mb", "pm"] + (["full"] if mode == "CVM" else [])
    built, failed = _build(kinds, data, batch, mode)
    times = st.interleaved(built, rounds, seconds)
    alloc = st.step_allocation_kib(built["mb"])
    return {"times": times, "failed": failed, "alloc_kib": alloc, "peak_rss_mib": st.peak_rss_mib()}


def batch_sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Table 3: steps per second against batch size, C backend, N = ``args.rows``."""
    data = st.make_data(args.rows)
    print(f"\n## Steps per second against batch size (CVM, N = {args.rows})\n")
    print("| batch | constant | mb | pm.Minibatch | full data | mb speed-up over full data |")
    print("|---|---|---|---|---|---|")
    out = []
    for batch in args.batches:
        built, _ = _build(["const", "mb", "pm", "full"], data, batch, "CVM")
        times = st.interleaved(built, args.rounds, args.seconds)
        rate = {k: 1 / np.median(v) for k, v in times.items()}
        cells = " | ".join(f"{rate[k]:,.0f}" for k in ("const", "mb", "pm", "full"))
        print(f"| {batch} | {cells} | {rate['mb'] / rate['full']:,.0f}x |")
        out.append({"batch": batch, "times": times})
        del built
        gc.collect()
    return out


def memory_report(args: argparse.Namespace) -> dict[str, Any]:
    """Table 4: resident memory per view of the same data, float32 end to end, peak RSS."""
    import pytensor

    import minibatch as mb

    data = st.make_data(max(args.sweep_rows))
    size = data.nbytes / 2**20
    report: dict[str, Any] = {"data_mib": size}
    print(f"\n## Memory (data {size:,.0f} MiB)\n")
    print("| measure | value |\n|---|---|")
    for label, source in (("array", data), ("shared variable", pytensor.shared(data))):
        views, added = [], []
        for _ in range(3):
            before = st.rss_mib()
            views.append(mb.Minibatch(source, batch_size=args.batch))
            added.append(st.rss_mib() - before)
        report[label] = added
        del views
        gc.collect()
        print(f"| RSS added by the first mb.Minibatch view of one {label} | {added[0]:,.0f} MiB |")
        further = f"{added[1]:,.0f}, {added[2]:,.0f}"
        print(f"| RSS added by each further view (2nd, 3rd) | {further} MiB |")
    if args.float32:
        report["float32"] = float32_probe_child()
        print(f"| float32 data under floatX=float32 | {report['float32']} |")
    report["peak_rss_mib"] = st.peak_rss_mib()
    print(f"| peak RSS of this run | {report['peak_rss_mib']:,.0f} MiB |")
    return report


def float32_probe() -> dict[str, Any]:
    """Run under ``floatX=float32``: the float dtypes of data-shaped values in a compiled C step."""
    import pytensor
    from pytensor.tensor.variable import TensorVariable

    data = st.make_data(2000, dtype="float32")
    step = st.build_step("mb", data, 100, "CVM")
    variables = [v for v in step.maker.fgraph.variables if isinstance(v, TensorVariable)]
    batch_like = {v.dtype for v in variables if v.ndim == 2 and v.type.shape[-1] == 100}
    floats = sorted(dtype for dtype in batch_like if dtype.startswith("float"))
    return {"floatX": pytensor.config.floatX, "batch_dtypes": floats}


def float32_probe_child() -> str:
    """``float32_probe`` in a child process; a short verdict."""
    env = dict(os.environ, PYTENSOR_FLAGS="floatX=float32")
    cmd = [sys.executable, __file__, "--float32-probe"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return f"probe failed: {done.stderr.strip().splitlines()[-1:]}"
    ok = found["batch_dtypes"] == ["float32"]
    return f"{'yes' if ok else 'NO'} (data-sized values in the step: {found['batch_dtypes']})"


def plot(sweep: list[dict[str, Any]], batches: list[dict[str, Any]], path: Path) -> None:
    """Per-step time against N and against batch size (C backend; Numba dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_rows, by_batch) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, style in (("CVM", "-o"), ("NUMBA", "--s")):
        points = [p for p in sweep if p["mode"] == mode]
        for kind in ("const", "mb", "pm", "full"):
            pairs = [(p["rows"], np.median(p["times"][kind])) for p in points if kind in p["times"]]
            if pairs:
                x, y = zip(*pairs, strict=True)
                label = f"{st.LABELS[kind]} ({'C' if mode == 'FAST_RUN' else 'Numba'})"
                by_rows.plot(x, np.array(y) * 1e6, style, label=label)
    for kind in ("const", "mb", "pm", "full"):
        x = [b["batch"] for b in batches]
        y = [np.median(b["times"][kind]) * 1e6 for b in batches]
        by_batch.plot(x, y, "-o", label=st.LABELS[kind])
    for ax, xlabel in ((by_rows, "stored rows N"), (by_batch, "batch size (C backend)")):
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="µs per ADVI step")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Per-step cost of ADVI on the seeds' model (100 columns)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


SECTIONS = {
    "goals": goals_table,
    "rows": rows_sweep,
    "batches": batch_sweep,
    "memory": memory_report,
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` swaps in tiny sizes."""
    ints = lambda text: [int(float(v)) for v in text.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = lambda text: text.split(",")  # noqa: E731
    parser.add_argument("--modes", type=names, default=["CVM", "NUMBA", "JAX"])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--seconds", type=float, default=0.1, help="per kind and round")
    parser.add_argument("--sweep-rows", type=ints, default=[10**4, 10**5, 10**6])
    parser.add_argument("--sweep-modes", type=names, default=["CVM", "NUMBA"])
    parser.add_argument("--batches", type=ints, default=[100, 500, 2000, 10000])
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "performance.png")
    parser.add_argument("--sections", type=names, default=list(SECTIONS), help=",".join(SECTIONS))
    parser.add_argument("--no-float32", dest="float32", action="store_false")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--float32-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cell", help=argparse.SUPPRESS)  # MODE,ROWS: one row of table 2
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.batch, args.rounds, args.seconds = 2000, 50, 2, 0.005
        args.sweep_rows, args.batches, args.float32 = [1000], [50], False
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every section; return what was measured."""
    args = parse(argv)
    if args.float32_probe:
        print(json.dumps(float32_probe()))
        return {}
    if args.cell:
        mode, rows = args.cell.split(",")
        cell = measure_cell(mode, int(rows), args.batch, args.rounds, args.seconds)
        print(json.dumps(cell))
        return cell
    results = {name: SECTIONS[name](args) for name in args.sections}
    if "rows" in results and "batches" in results:
        plot(results["rows"], results["batches"], args.plot)
        print(f"\nplot: {args.plot}")
    return results


if __name__ == "__main__":
    main()
