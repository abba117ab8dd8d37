"""plot_report / FitReport.plot: the panels draw the report's own numbers."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pymc as pm
import pytest

import minibatch as mb
from minibatch._fitting._plot import plot_report, running_median, smoothing_window

# the C backend: pytensor 3 defaults to Numba, slow to compile
CVM = {"compile_kwargs": {"mode": "CVM"}}

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def model():
    y = np.random.default_rng(7).normal(3.0, 1.0, size=1000)
    with pm.Model() as m:
        mu = pm.Normal("mu", 0.0, 10.0)
        pm.Normal("y", mu, 1.0, observed=mb.Minibatch(y, batch_size=100))
    return m


@pytest.fixture(scope="module")
def report(model):
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", mb.NotConvergedWarning)
        approx = mb.fit(3000, random_seed=1, progressbar=False, **CVM)
    return approx.report


def _line(ax, prefix):
    (line,) = [line for line in ax.get_lines() if line.get_label().startswith(prefix)]
    return line


def test_running_median_is_the_median_of_each_full_window():
    values = np.random.default_rng(0).standard_cauchy(301)
    steps, smooth = running_median(values, 11)
    windows = np.lib.stride_tricks.sliding_window_view(values, 11)
    np.testing.assert_array_equal(smooth, np.median(windows, axis=1))
    np.testing.assert_array_equal(steps, np.arange(6, 297))  # the centre step, 1-based
    assert smoothing_window(3000) == 31 and smoothing_window(100_000) == 1001
    assert smoothing_window(50) == 1


def test_panels_draw_the_reports_numbers(report):
    assert report.step_sizes and report.history  # mb.fit's own optimiser: three panels
    fig = report.plot()
    loss_ax, step_ax, rule_ax = fig.axes[:3]
    assert [ax.get_title() for ax in fig.axes[:3]] == [
        "loss",
        "step size",
        "MCSE and R-hat at each decision",
    ]
    hist = report.inference.hist
    assert len(hist) == report.steps
    window = smoothing_window(len(hist))
    loss = _line(loss_ax, "loss")
    expected = np.median(np.lib.stride_tricks.sliding_window_view(hist, window), axis=1)
    np.testing.assert_array_equal(loss.get_ydata(), expected)
    np.testing.assert_array_equal(loss.get_xdata(), np.arange(len(expected)) + window // 2 + 1)
    assert loss_ax.get_yscale() == ("log" if (expected > 0).all() else "linear")
    changes = [line.get_xdata()[0] for line in loss_ax.get_lines() if line is not loss]
    assert changes == [step for step, _ in report.step_sizes[1:]]  # where the step changed
    (span,) = loss_ax.patches
    # a Rectangle on matplotlib >= 3.9, a Polygon before: its corners in data coordinates
    xs = span.get_patch_transform().transform(span.get_path().vertices)[:, 0]
    assert (xs.min(), xs.max()) == (report.steps - report.averaged, report.steps)

    first = report.step_sizes[0][1]["mean"]
    np.testing.assert_array_equal(_line(step_ax, "mean").get_ydata()[:1], [first])

    threshold = _line(rule_ax, "threshold")
    np.testing.assert_array_equal(threshold.get_ydata(), [report.threshold] * 2)
    for kind in ("mean", "spread"):
        decided = [h for h in report.history if f"mcse_{kind}" in h]
        assert decided
        points = _line(rule_ax, f"MCSE max, {kind}")
        np.testing.assert_array_equal(points.get_xdata(), [h["step"] for h in decided])
        np.testing.assert_array_equal(points.get_ydata(), [h[f"mcse_{kind}"] for h in decided])
    twin = fig.axes[3]  # R-hat on the decisions panel's second y axis
    assert twin.bbox.bounds == rule_ax.bbox.bounds
    np.testing.assert_array_equal(_line(twin, "R-hat 1.1").get_ydata(), [1.1, 1.1])
    rhat = [h["rhat_mean"] for h in report.history]
    np.testing.assert_array_equal(_line(twin, "R-hat max, mean").get_ydata(), rhat)


def test_a_user_optimiser_has_no_step_panel_and_axes_can_be_given(model):
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", mb.NotConvergedWarning)
        approx = mb.fit(
            1200, random_seed=1, progressbar=False, **CVM, obj_optimizer=pm.adam(learning_rate=0.03)
        )
    report = approx.report
    assert report.step_sizes == []
    fig = plot_report(report)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["loss", "MCSE and R-hat at each decision"]
    assert len(fig.axes) == 3  # two panels and the R-hat axis
    fig2, axes = plt.subplots(1, 2)
    assert report.plot(axes=axes) is fig2
    with pytest.raises(ValueError, match="give 2 axes, got 3"):
        plot_report(report, axes=plt.subplots(3)[1])


def test_a_callback_report_takes_its_losses_from_hist():
    report = mb.FitReport(steps=500, averaged=200, threshold=0.05)
    hist = np.linspace(10.0, 1.0, 499)
    fig = plot_report(report, hist=hist)
    # a falling loss: each window's median is its centre value (window 5 for 499 losses)
    np.testing.assert_array_equal(_line(fig.axes[0], "loss").get_ydata(), hist[2:-2])
    fig = plot_report(report)  # no inference, no hist: an empty loss panel, and no error
    assert len(_line(fig.axes[0], "loss").get_ydata()) == 0


def test_missing_matplotlib_says_what_to_install(report, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "pymc-minibatch\[plot\]"'):
        report.plot()
