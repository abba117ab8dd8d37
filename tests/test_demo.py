"""The demo runs end to end (small sizes here) and its numbers mean what the table says."""

from __future__ import annotations

import numpy as np

from minibatch import demo


def test_demo_prints_table_and_writes_plot(tmp_path, capsys):
    png = tmp_path / "demo.png"
    full, minibatch, averaged = demo.main(
        [
            "--rows=2000",
            "--cols=4",
            "--batch-size=50",
            "--full-steps=50",
            "--minibatch-steps=10000",
            f"--plot={png}",
        ]
    )
    out = capsys.readouterr().out
    assert "steps/s" in out and "speed-up" in out and "max err" in out and "mb.fit()" in out
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (full.rows_per_step, minibatch.rows_per_step) == (2000, 50)
    assert len(minibatch.hist) == 10000 and len(averaged.hist) == averaged.steps
    # mb.fit stops by itself within the goal of benchmarks/convergence.py (posterior sds)
    assert averaged.label == "mb.fit()"
    assert averaged.max_error <= 0.3 and np.abs(np.log(averaged.sd_ratios)).max() <= 0.25
    # a fixed step of 0.05 leaves the means several posterior sds away
    assert minibatch.max_error > 1.0


def test_reference_is_the_posterior_mode():
    """The gradient of the unconstrained log density vanishes at the reference."""
    data = demo.make_data(5000, 3, seed=2)
    mean, sd = demo.reference(data)
    with demo.model_of(data, data) as model:
        dlogp = model.compile_dlogp()

        def grad(x):
            return dlogp({"mu": x[:3], "sd_log__": x[3:]})

        np.testing.assert_allclose(grad(mean), 0.0, atol=1e-6)
        h = 1e-5 * sd  # the Hessian's diagonal by central differences of the gradient
        curvature = [
            (grad(mean + h[i] * e) - grad(mean - h[i] * e))[i] / (2 * h[i])
            for i, e in enumerate(np.eye(6))
        ]
    np.testing.assert_allclose(sd, 1 / np.sqrt(-np.array(curvature)), rtol=1e-5)


def test_data_is_built_as_in_the_seeds():
    data = demo.make_data(1000, 3, seed=0)
    assert data.shape == (1000, 3)
    assert (data >= 0).all() and (data < 9 + 10).all()
