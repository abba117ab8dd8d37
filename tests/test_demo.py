"""The demo runs end to end (small sizes here) and its numbers mean what the table says."""

from __future__ import annotations

from minibatch import demo


def test_demo_prints_table_and_writes_plot(tmp_path, capsys):
    png = tmp_path / "demo.png"
    full, minibatch = demo.main(
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
    assert "steps/s" in out and "speed-up" in out and "max|err|" in out
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (full.rows_per_step, minibatch.rows_per_step) == (2000, 50)
    assert minibatch.max_abs_error < 0.5  # 10000 Adam steps reach the column means
    assert len(minibatch.hist) == 10000


def test_data_is_built_as_in_the_seeds():
    data = demo.make_data(1000, 3, seed=0)
    assert data.shape == (1000, 3)
    assert (data >= 0).all() and (data < 9 + 10).all()
