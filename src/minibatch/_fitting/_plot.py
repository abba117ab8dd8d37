"""A picture of a fit's record: :func:`plot_report` (matplotlib, an optional extra).

Three panels over the steps: the loss, smoothed by a running median, with the steps at which
the step size changed and the final averaging window marked; the step sizes, when the rule set
them; and the rule's decisions (the largest MCSE of means and of spreads against the threshold,
the largest split-R-hat against 1.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.ndimage import median_filter

RHAT_MAX = 1.1
"""The R-hat line drawn (the rule's default ``rhat_max``)."""

KINDS = ("mean", "spread")


def smoothing_window(steps: int) -> int:
    """The running median's width for a history of ``steps`` losses: about 1 % of them, odd
    (so that the median is one of the losses and sits at the window's centre)."""
    return max(1, round(0.01 * steps)) | 1


def running_median(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The median of every run of ``window`` (odd) consecutive values, and the 1-based step at
    the centre of each run: ``len(values) - window + 1`` of each."""
    values = np.asarray(values, dtype=float)
    half = window // 2
    if len(values) < window:
        return np.empty(0), np.empty(0, dtype=int)
    smooth = median_filter(values, size=window, mode="nearest")[half : len(values) - half]
    return np.arange(half + 1, len(values) - half + 1), smooth


def plot_report(report: Any, axes: Sequence[Any] | None = None, *, hist: Any = None) -> Any:
    """Draw what a fit did: its loss, its step sizes and the stopping rule's decisions.

    Parameters
    ----------
    report : FitReport
        ``approx.report`` of an :func:`minibatch.fit`, or the ``report`` of a ``Converged``
        callback.
    axes : sequence of matplotlib Axes, optional
        One per panel (three, or two when ``report.step_sizes`` is empty: the optimiser was the
        user's); a new figure by default.
    hist : array, optional
        The losses, one per step; by default ``report.inference.hist`` (a ``Converged``
        callback's report has no inference: pass ``approx.hist``).

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or the figure of ``axes``.

    Notes
    -----
    1. **Loss**: the running median of ``hist`` over about 1 % of the steps (an odd width; the
       median of each full window, drawn at its centre step), on a log scale if every value is
       positive; dotted vertical lines where the step sizes changed, and the final averaging
       window (the last ``report.averaged`` of ``report.steps``) shaded.
    2. **Step size** of means and of spreads, as step functions (absent with no step sizes).
    3. **Decisions**: at each entry of ``report.history``, the largest MCSE of means and of
       spreads (in q's sd and on log sd) against ``report.threshold`` (dashed), and the largest
       split-R-hat against 1.1 on a second y axis (drawn in grey).

    Needs matplotlib: ``pip install "pymc-minibatch[plot]"``.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            'plotting a FitReport needs matplotlib: pip install "pymc-minibatch[plot]"'
        ) from err

    panels = 3 if report.step_sizes else 2
    if axes is None:
        fig, made = plt.subplots(panels, 1, figsize=(7, 2.4 * panels), sharex=True)
        axes = list(made)
    else:
        axes = list(np.ravel(np.asarray(axes, dtype=object)))
        if len(axes) != panels:
            raise ValueError(
                f"this report draws {panels} panels (loss, "
                f"{'step size, ' if panels == 3 else ''}decisions): give {panels} axes, "
                f"got {len(axes)}"
            )
        fig = axes[0].figure
    _loss(axes[0], report, hist)
    if report.step_sizes:
        _steps(axes[1], report)
    _decisions(axes[-1], report)
    axes[-1].set_xlabel("step")
    return fig


def _loss(ax: Any, report: Any, hist: Any) -> None:
    if hist is None:
        hist = getattr(report.inference, "hist", None)
    values = np.asarray(hist if hist is not None else (), dtype=float)
    window = smoothing_window(len(values))
    steps, smooth = running_median(values, window)
    ax.plot(steps, smooth, color="C0", label=f"loss (running median of {window})")
    if len(smooth) and (smooth > 0).all():
        ax.set_yscale("log")
    for k, (step, _) in enumerate(report.step_sizes[1:]):
        ax.axvline(step, color="0.4", ls=":", lw=1, label="step size changed" if k == 0 else None)
    if report.averaged:
        ax.axvspan(report.steps - report.averaged, report.steps, color="C2", alpha=0.15,
                   label=f"averaged ({report.averaged})")  # fmt: skip
    if not len(values):
        ax.text(0.5, 0.5, "no loss history", transform=ax.transAxes, ha="center", va="center")
    ax.set_title("loss")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right", fontsize="small")


def _steps(ax: Any, report: Any) -> None:
    starts = [step for step, _ in report.step_sizes]
    end = max(report.steps, starts[-1])
    for kind in KINDS:
        rates = [rates[kind] for _, rates in report.step_sizes if kind in rates]
        if len(rates) == len(starts):
            ax.step([*starts, end], [*rates, rates[-1]], where="post", label=kind)
    ax.set_yscale("log")
    ax.set_title("step size")
    ax.set_ylabel("step size")
    ax.legend(loc="upper right", fontsize="small")


def _decisions(ax: Any, report: Any) -> None:
    history = report.history
    for kind in KINDS:
        picked = [(h["step"], h[f"mcse_{kind}"]) for h in history if f"mcse_{kind}" in h]
        if picked:
            x, y = zip(*picked, strict=True)
            ax.plot(x, y, "o-", ms=3, label=f"MCSE max, {kind}")
    ax.axhline(report.threshold, color="k", ls="--", lw=1, label="threshold")
    lines = [line for line in ax.get_lines() if line.get_label().startswith("MCSE")]
    if lines and all((np.asarray(line.get_ydata()) > 0).all() for line in lines):
        ax.set_yscale("log")
    ax.set_ylabel("MCSE (q sd, log sd)")
    ax.set_title("MCSE and R-hat at each decision")
    twin = ax.twinx()
    for kind, style in zip(KINDS, ("s-", "^-"), strict=True):
        picked = [(h["step"], h[f"rhat_{kind}"]) for h in history if f"rhat_{kind}" in h]
        if picked:
            x, y = zip(*picked, strict=True)
            twin.plot(x, y, style, ms=3, color="0.55", lw=0.8, label=f"R-hat max, {kind}")
    twin.axhline(RHAT_MAX, color="0.55", ls="--", lw=1, label=f"R-hat {RHAT_MAX}")
    twin.set_ylabel("split-R-hat")
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, loc="upper right", fontsize="small")
    if not history:
        ax.text(0.5, 0.5, "no decision yet", transform=ax.transAxes, ha="center", va="center")
