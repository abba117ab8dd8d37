"""Streamed minibatches from out-of-core sources: peak memory and steps per second.

Run ``python benchmarks/stream.py`` (``--quick`` runs tiny sizes).  It writes one data set
(``--rows`` x ``--cols`` float64, standard normal per column around its own mean and sd) twice
into a temporary directory (``--data-dir``): as a ``.npy`` file, read with
``np.load(path, mmap_mode="r")``, and as a Zarr store chunked along the rows (``--chunk-rows``,
zarr's default compression).  The model: ``mu ~ N(0, 10)`` and ``sd ~ HalfNormal(10)`` per
column, ``obs ~ N(mu, sd)`` observed on ``mb.Minibatch(source, batch_size=..., window=...)``
(``total_size`` inferred), fitted with ADVI (``pm.fit``).  It prints two markdown tables:

1. **peak memory**: one fit per source, each in a fresh process, against the same data loaded
   into memory (``np.load(path)``, a plain ``mb.Minibatch``): the peak RSS after imports and a
   warm-up fit on a tiny source of the same kind, before the minibatch is built, and after a
   fit long enough to read every row about twice (``--passes``); the growth against the window
   and against the source.  The peak is the process's high-water mark ``VmHWM`` on Linux
   (``getrusage().ru_maxrss`` elsewhere): a child's ``ru_maxrss`` starts at its parent's peak
   (Linux keeps it across ``exec``), so from a large parent it hides the child's own growth;
2. **steps per second**: the same fit from the memmap, from the Zarr store and from memory in
   one process, in interleaved rounds (the order alternates), timed between the callbacks of
   step 1 and step n (compilation excluded).  Each streamed source runs with the default
   ``steps_per_window`` and with one derived from the reader's rate (measured alone and during
   a calibration fit), large enough that the reader keeps up; the table shows the reader's
   rate during the fits, the rate the fit asks of it, and the time the fit waited for windows.

The files are freshly written, so they are read from the page cache, not from the disk.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import steps as st

MIB = 2**20
SEED = 20240611
# steps_per_window for "the reader keeps up": the reader's own rate must exceed what the fit
# asks by this factor (the reader shares the cores, and the GIL, with the fit)
MARGIN = 2.0


# --- the data ------------------------------------------------------------------------------


def column_moments(cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The true mean and sd of each column."""
    return np.linspace(-2.0, 2.0, cols), np.linspace(0.5, 2.0, cols)


def blocks(rows: int, cols: int, block: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """The data set, ``block`` rows at a time: ``(first row, end row, values)``."""
    loc, scale = column_moments(cols)
    for i, a in enumerate(range(0, rows, block)):
        b = min(a + block, rows)
        rng = np.random.default_rng([SEED, i])
        yield a, b, loc + scale * rng.standard_normal((b - a, cols))


def write_data(where: Path, name: str, rows: int, cols: int, chunk_rows: int) -> dict[str, Path]:
    """Write the data set as ``name.npy`` and ``name.zarr`` (chunks of ``chunk_rows`` rows)."""
    import zarr

    npy, store = where / f"{name}.npy", where / f"{name}.zarr"
    mapped = np.lib.format.open_memmap(npy, mode="w+", dtype="float64", shape=(rows, cols))
    z = zarr.create_array(
        store=str(store), shape=(rows, cols), chunks=(chunk_rows, cols), dtype="float64",
        overwrite=True,
    )  # fmt: skip
    for a, b, values in blocks(rows, cols, chunk_rows):
        mapped[a:b] = values
        z[a:b] = values
    mapped.flush()
    del mapped
    return {"npy": npy, "zarr": store}


def disk_bytes(path: Path) -> int:
    """Bytes a file, or the files of a directory, take on disk (their sizes)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def open_kind(kind: str, paths: dict[str, Path]) -> Any:
    """The data as the fit sees it: a memmap, a Zarr array, or an in-memory np.array."""
    if kind == "memmap":
        return np.load(paths["npy"], mmap_mode="r")
    if kind == "zarr":
        import zarr

        return zarr.open_array(str(paths["zarr"]), mode="r")
    return np.load(paths["npy"])  # "memory": all rows in memory


# --- the fit -------------------------------------------------------------------------------


def quiet_pymc() -> None:
    """No "Finished [100%]" line per fit (pymc sets its logger's level when imported)."""
    import pymc  # noqa: F401

    logging.getLogger("pymc").setLevel(logging.ERROR)


def build_model(data: Any, batch: int, window: Any, steps_per_window: int | None = None) -> Any:
    """The per-column normal model on a minibatch of ``data`` (streamed when ``window``)."""
    import pymc as pm

    import minibatch as mb

    options = {} if window is None else {"window": window, "steps_per_window": steps_per_window}
    xb = mb.Minibatch(data, batch_size=batch, **options)
    cols = data.shape[1]
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 10.0, shape=cols)
        sd = pm.HalfNormal("sd", 10.0, shape=cols)
        pm.Normal("obs", mu, sd, observed=xb)
    model.minibatch_stream = stream_of_batch(xb)
    return model


def stream_of_batch(batch: Any) -> Any:
    """The stream behind a minibatch (None when it is not streamed)."""
    from minibatch._gather import source_of
    from minibatch._stream import stream_of

    return stream_of(source_of(batch)[0])


class Timer:
    """A ``pm.fit`` callback: the time of step 1 and of step ``n``."""

    def __init__(self, n: int) -> None:
        self.n, self.first, self.last = n, math.nan, math.nan

    def __call__(self, approx: Any, losses: Any, i: int) -> None:
        if i == 1:
            self.first = time.perf_counter()
        elif i == self.n:
            self.last = time.perf_counter()

    @property
    def steps_per_second(self) -> float:
        return (self.n - 1) / (self.last - self.first)


def settle() -> None:
    """Wait for a window read still running after a fit (the reader finishes it, unused)."""
    for thread in threading.enumerate():
        if thread.name.startswith("minibatch-window"):
            thread.join(timeout=60)


def counters(stream: Any) -> np.ndarray:
    if stream is None:
        return np.zeros(3)
    return np.array([stream.windows, stream.read_seconds, stream.wait_seconds], dtype=float)


def timed_fit(model: Any, steps: int, seed: int = 1) -> dict[str, float]:
    """Fit ``steps`` ADVI steps; steps/s between steps 1 and n, and the stream's counters."""
    import pymc as pm

    stream = model.minibatch_stream
    timer = Timer(steps)
    before = counters(stream)
    with model:
        pm.fit(steps, method="advi", random_seed=seed, progressbar=False, callbacks=[timer])
    settle()
    windows, read_s, wait_s = counters(stream) - before
    rows = windows * (stream.window_rows if stream is not None else 0)
    return {
        "steps_per_s": timer.steps_per_second,
        "seconds": timer.last - timer.first,
        "windows": windows,
        "rows_read": rows,
        "read_s": read_s,
        "wait_s": wait_s,
    }


# --- table 1: peak memory, one fresh process per case --------------------------------------


def peak_rss_mib() -> float:
    """The peak resident set size of this process so far (``ru_maxrss``; see ``own_peak_mib``)."""
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB


def own_peak_mib() -> float:
    """The peak RSS of this process's own memory: ``VmHWM`` on Linux, else ``ru_maxrss``.

    On Linux ``ru_maxrss`` keeps the maximum across ``exec``: a process started by a larger one
    (a benchmark child of a big pytest process) reports at least its parent's peak, whatever it
    uses itself.  ``VmHWM`` is the same high-water mark, of this process's address space only.
    """
    return rss_parts_mib().get("VmHWM", peak_rss_mib())


def rss_parts_mib() -> dict[str, float]:
    """The current resident set, anonymous and file-backed, and its peak (Linux; else empty)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            found[key] = int(value.split()[0]) / 1024
    return found


def memory_case(args: argparse.Namespace) -> dict[str, Any]:
    """Run in a fresh process: the peak RSS of one case before and after a fit."""
    import minibatch  # noqa: F401  (the imports count in the baseline)

    quiet_pymc()
    kind = args.memory_case
    where = Path(args.data_dir)
    paths = {"npy": where / "data.npy", "zarr": where / "data.zarr"}
    tiny = {"npy": where / "tiny.npy", "zarr": where / "tiny.zarr"}
    # warm-up: the same model on a tiny source of the same kind (compiles, imports, threads)
    warm = build_model(open_kind(kind, tiny), args.batch, None if kind == "memory" else 500)
    timed_fit(warm, 200)
    del warm
    gc.collect()
    baseline, ru_baseline = own_peak_mib(), peak_rss_mib()
    at_baseline = rss_parts_mib()

    data = open_kind(kind, paths)
    model = build_model(data, args.batch, None if kind == "memory" else args.window)
    stream = model.minibatch_stream
    # read every row about ``passes`` times: passes x N / W windows
    probe = (
        window_figures(data, args)
        if stream is None
        else {
            "n_rows": stream.n_rows,
            "window_rows": stream.window_rows,
            "window_bytes": stream.window_bytes,
            "steps_per_window": stream.steps_per_window,
        }
    )
    windows = math.ceil(args.passes * probe["n_rows"] / probe["window_rows"])
    steps = windows * probe["steps_per_window"]
    fit = timed_fit(model, steps)
    gc.collect()
    peak = own_peak_mib()
    return {
        "kind": kind,
        "source_mib": data.nbytes / MIB,
        "disk_mib": disk_bytes(paths["zarr" if kind == "zarr" else "npy"]) / MIB,
        "window_mib": probe["window_bytes"] / MIB,
        "baseline_mib": baseline,
        "peak_mib": peak,
        "growth_mib": peak - baseline,
        "ru_maxrss_mib": [ru_baseline, peak_rss_mib()],
        "steps": steps,
        "windows": fit["windows"],
        "at_baseline": at_baseline,
        "after": rss_parts_mib(),
    }


def window_figures(data: Any, args: argparse.Namespace) -> dict[str, int]:
    """The window figures of the streamed cases, for the in-memory case's step count."""
    from minibatch._window import window_rows

    row_bytes = data.shape[1] * data.dtype.itemsize
    rows = window_rows(args.window, row_bytes, data.shape[0])
    return {
        "n_rows": data.shape[0],
        "window_rows": rows,
        "window_bytes": rows * row_bytes,
        "steps_per_window": -(-rows // args.batch),
    }


def run_memory_case(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """``memory_case`` in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, __file__, f"--memory-case={kind}", f"--data-dir={args.data_dir}"]
    cmd += [f"--rows={args.rows}", f"--cols={args.cols}", f"--batch={args.batch}"]
    cmd += [f"--window={args.window}", f"--passes={args.passes}"]
    return st.child_json(cmd, f"memory case {kind}")


def memory_table(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Table 1: peak RSS growth of a streamed fit against the window and the source."""
    print(
        f"\n## Peak memory: {args.rows:,} x {args.cols} float64, window {args.window}, "
        f"batch {args.batch} (one fresh process per row)\n"
    )
    print(
        "| source | source MiB | on disk MiB | window MiB | peak RSS before MiB "
        "| peak RSS after fit MiB | growth MiB | growth / window | growth / source "
        "| RssFile added MiB | RssAnon added MiB | steps | windows read |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for kind in ("memmap", "zarr", "memory"):
        row = run_memory_case(args, kind)
        added = {
            part: row["after"].get(part, math.nan) - row["at_baseline"].get(part, math.nan)
            for part in ("RssFile", "RssAnon")
        }
        row["added"] = added
        label = {
            "memmap": "np.load(mmap_mode='r')",
            "zarr": "Zarr store",
            "memory": "np.array (in memory)",
        }[kind]
        print(
            f"| {label} | {row['source_mib']:,.1f} | {row['disk_mib']:,.1f} | "
            f"{row['window_mib']:,.1f} | {row['baseline_mib']:,.0f} | {row['peak_mib']:,.0f} | "
            f"{row['growth_mib']:,.1f} | {row['growth_mib'] / row['window_mib']:.2f} | "
            f"{row['growth_mib'] / row['source_mib']:.2f} | "
            f"{added['RssFile']:,.1f} | {added['RssAnon']:,.1f} | "
            f"{row['steps']:,} | "
            f"{row['windows']:.0f} |"
        )
        rows.append(row)
    print(
        f"\npeak RSS: {'VmHWM' if 'VmHWM' in rows[0]['after'] else 'ru_maxrss'} of the child "
        "process, before the minibatch is built (after imports and a warm-up fit) and after the "
        "fit. window MiB: the streamed cases' window (the in-memory row holds all rows; its steps "
        "match the streamed ones). RssFile / RssAnon added: the growth of the file-backed (mapped "
        "files) / anonymous (allocated) part of the current resident set from before the "
        "minibatch was built to after the fit (/proc/self/status)."
    )
    return rows


# --- table 2: steps per second, interleaved rounds in this process --------------------------


def reader_alone(stream: Any, windows: int) -> float:
    """Rows per second of ``windows`` window reads outside any fit."""
    start = time.perf_counter()
    for _ in range(windows):
        stream.read()
    return windows * stream.window_rows / (time.perf_counter() - start)


def steps_table(args: argparse.Namespace, paths: dict[str, Path]) -> dict[str, Any]:
    """Table 2: steps/s streamed from a memmap and a Zarr store against the fit from memory."""
    quiet_pymc()
    sources = {"memmap": open_kind("memmap", paths), "zarr": open_kind("zarr", paths)}
    in_memory = open_kind("memory", paths)
    models = {"memory": build_model(in_memory, args.batch, None)}
    models["memory, window"] = build_model(in_memory, args.batch, args.window)
    default = models["memory, window"].minibatch_stream
    # calibration (also the warm-up compiles): the in-memory rate, and each reader's rate alone
    # and during a fit with the default steps_per_window; the slower of the two sets the large
    # steps_per_window
    mem_rate = timed_fit(models["memory"], args.steps)["steps_per_s"]
    alone, in_fit, large = {}, {}, {}
    for kind, source in sources.items():
        models[f"{kind}, default"] = build_model(source, args.batch, args.window)
        stream = models[f"{kind}, default"].minibatch_stream
        alone[kind] = reader_alone(stream, args.calibration_windows)
        trial = timed_fit(
            models[f"{kind}, default"], max(args.steps // 4, 4 * stream.steps_per_window)
        )
        in_fit[kind] = trial["rows_read"] / trial["read_s"]
        needed = stream.window_rows / min(alone[kind], in_fit[kind]) * mem_rate * MARGIN
        large[kind] = max(stream.steps_per_window, math.ceil(needed))
        models[f"{kind}, large"] = build_model(source, args.batch, args.window, large[kind])
    print(
        f"\n## Steps per second: {args.rows:,} x {args.cols} float64, window {args.window} "
        f"({default.window_rows:,} rows), batch {args.batch}, {args.rounds} interleaved rounds\n"
    )
    calibration = "; ".join(
        f"{kind} {alone[kind]:,.0f} rows/s alone, {in_fit[kind]:,.0f} during a fit "
        f"-> steps_per_window {large[kind]:,}"
        for kind in alone
    )
    print(
        f"Calibration: in-memory fit {mem_rate:,.0f} steps/s; each reader "
        f"({args.calibration_windows} windows alone, then a fit with the default steps_per_window "
        f"{default.steps_per_window:,}): {calibration}. The large steps_per_window lets the "
        f"slower of the two reader rates be {MARGIN:g}x what a fit at the in-memory rate asks.\n"
    )
    steps = {
        name: max(args.steps, 4 * model.minibatch_stream.steps_per_window)
        if model.minibatch_stream is not None
        else args.steps
        for name, model in models.items()
    }
    steps["memory"] = steps["memory, window"]
    names = list(models)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(timed_fit(models[name], steps[name], seed=r + 1))
            gc.collect()
    print(
        "| source | steps_per_window | steps per fit | steps/s | streamed / in-memory "
        "| windows read | reader rows/s | rows/s the fit needs | waited s per fit "
        "| waited % of fit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    reference = [f["steps_per_s"] for f in results["memory"]]
    table = []
    for name in names:
        fits, stream = results[name], models[name].minibatch_stream
        rate = float(np.median([f["steps_per_s"] for f in fits]))
        ratio = float(
            np.median([f["steps_per_s"] / m for f, m in zip(fits, reference, strict=True)])
        )
        row = {"name": name, "steps": steps[name], "steps_per_s": rate, "ratio": ratio}
        label = {"memory": "np.array (in memory)", "memory, window": "np.array, streamed"}.get(
            name, name.replace("memmap", "np.load(mmap_mode='r')").replace("zarr", "Zarr store")
        )
        if stream is None:
            cells = f"- | {steps[name]:,} | {rate:,.0f} | 1.00 | - | - | - | - | - |"
        else:
            read_s = sum(f["read_s"] for f in fits)
            row["reader_rows_per_s"] = sum(f["rows_read"] for f in fits) / read_s
            row["needed_rows_per_s"] = stream.window_rows / stream.steps_per_window * rate
            row["windows"] = float(np.mean([f["windows"] for f in fits]))
            row["wait_s"] = float(np.median([f["wait_s"] for f in fits]))
            row["wait_share"] = float(np.median([f["wait_s"] / f["seconds"] for f in fits]))
            row["steps_per_window"] = stream.steps_per_window
            cells = (
                f"{stream.steps_per_window:,} | {steps[name]:,} | {rate:,.0f} | {ratio:.2f} | "
                f"{row['windows']:.0f} | {row['reader_rows_per_s']:,.0f} | "
                f"{row['needed_rows_per_s']:,.0f} | {row['wait_s']:.3f} | "
                f"{100 * row['wait_share']:.0f} |"
            )
        print(f"| {label} | {cells}")
        table.append(row)
    print(
        "\nsteps/s: median over rounds; streamed / in-memory: median of the per-round ratios. "
        "reader rows/s: rows of the windows read during the fits / the reader's time reading "
        "them; rows/s the fit needs: window rows / steps_per_window x steps/s; the reader keeps "
        "up when it reads faster than that (the fit then waits for nothing). 'np.array, "
        "streamed': the in-memory array through the same window, the cost of the window swaps "
        "without a file."
    )
    calibration = {"mem_rate": mem_rate, "alone": alone, "in_fit": in_fit, "large": large}
    return {"calibration": calibration, "rows": table}


# --- the command line ----------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` swaps in tiny sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=700_000, help="rows of the data set")
    parser.add_argument("--cols", type=int, default=50, help="float64 columns")
    parser.add_argument("--chunk-rows", type=int, default=5_000, help="rows per Zarr chunk")
    parser.add_argument("--window", default="32MiB", help="rows (int) or bytes ('32MiB')")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--steps", type=int, default=10_000, help="steps per timed fit (at least)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--passes", type=float, default=2.0, help="table 1: reads of each row per fit (mean)"
    )
    parser.add_argument("--calibration-windows", type=int, default=3)
    parser.add_argument(
        "--data-dir", type=Path, help="where to write the data (default: a tmp dir)"
    )
    parser.add_argument("--sections", default="memory,steps", help="memory,steps")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--memory-case", help=argparse.SUPPRESS)  # one row of table 1
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.chunk_rows, args.window = 80_000, 2_000, "3MiB"
        args.batch, args.steps, args.rounds, args.calibration_windows = 100, 300, 2, 2
    with contextlib.suppress(ValueError):
        args.window = int(args.window)
    args.sections = args.sections.split(",")
    return args


@contextlib.contextmanager
def data_dir(args: argparse.Namespace) -> Iterator[dict[str, Path]]:
    """The data files, in ``--data-dir`` or a temporary directory; removed afterwards."""
    with contextlib.ExitStack() as stack:
        if args.data_dir is None:
            args.data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        where = Path(args.data_dir)
        where.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        paths = write_data(where, "data", args.rows, args.cols, args.chunk_rows)
        tiny = write_data(where, "tiny", 2_000, args.cols, 500)
        print(
            f"data: {args.rows:,} x {args.cols} float64 written to {where} as .npy and Zarr "
            f"(chunks of {args.chunk_rows:,} rows) in {time.perf_counter() - start:.1f} s"
        )
        try:
            yield paths
        finally:
            for path in [*paths.values(), *tiny.values()]:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run both tables; return what was measured."""
    args = parse(argv)
    if args.memory_case:
        case = memory_case(args)
        print(json.dumps(case))
        return case
    start = time.perf_counter()
    results: dict[str, Any] = {}
    with data_dir(args) as paths:
        if "memory" in args.sections:
            results["memory"] = memory_table(args)
        if "steps" in args.sections:
            results["steps"] = steps_table(args, paths)
    results["seconds"] = time.perf_counter() - start
    print(f"\n(total {results['seconds']:.0f} s, {sys.executable}, {os.cpu_count()} CPUs)")
    return results


if __name__ == "__main__":
    main()
