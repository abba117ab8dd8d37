"""Which rows a window holds: sizes, blocks, and equal inclusion chances for every row."""

from __future__ import annotations

import numpy as np
import pytest

from minibatch._window import block_bounds, plan, window_rows


@pytest.mark.parametrize(
    ("window", "row_bytes", "expected"),
    [
        (10, 8, 10),
        ("800B", 8, 100),
        ("1kB", 10, 100),
        ("1KiB", 8, 128),
        ("0.5MiB", 1024, 512),
        ("2GB", 1, 10**6),
        (10**9, 8, 10**6),
    ],
)
def test_window_rows_reads_rows_and_bytes(window, row_bytes, expected):
    assert window_rows(window, row_bytes, 10**6) == expected


@pytest.mark.parametrize(
    ("window", "error", "match"),
    [
        ("12 parsecs", ValueError, "window must be a number of rows"),
        (0, ValueError, "at least 1"),
        (True, TypeError, "bool"),
        (2.5, TypeError, "float"),
        ("4B", ValueError, "smaller than one row"),
    ],
)
def test_window_rows_refuses_bad_sizes(window, error, match):
    with pytest.raises(error, match=match):
        window_rows(window, 8, 100)


def test_blocks_follow_the_coarsest_native_chunking():
    assert block_bounds([(2, 2, 2, 2, 2), (5, 5)], 10, 4).tolist() == [0, 5, 10]
    assert block_bounds([None, None], 100, 320).tolist() == list(range(0, 101, 10))


def _inclusion(bounds, rows, draws, seed=0):
    n = int(bounds[-1])
    counts = np.zeros(n)
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        ranges = plan(bounds, rows, rng)
        assert sum(b - a for a, b in ranges) == rows
        for a, b in ranges:
            counts[a:b] += 1
    assert counts.max() <= draws  # no row twice in one window
    return counts / draws


@pytest.mark.parametrize("chunks", [[7] * 14 + [2], [1] * 30 + [40, 3, 17]])
def test_every_row_is_in_a_window_with_chance_w_over_n(chunks):
    """Irregular chunks (one of 40 rows among 30 of 1): each row's inclusion frequency is W/N
    within 5 binomial standard errors."""
    bounds = np.concatenate([[0], np.cumsum(chunks)])
    n, rows, draws = int(bounds[-1]), 20, 20000
    freq = _inclusion(bounds, rows, draws)
    p = rows / n
    assert np.abs(freq - p).max() < 5 * np.sqrt(p * (1 - p) / draws)


def test_the_inclusion_check_catches_a_scheme_that_favours_rows():
    """The check above fails for whole chunks drawn in random order from a chunk start (rows
    of the big chunk are then in fewer windows): the test has power."""
    chunks = [1] * 30 + [40, 3, 17]
    bounds = np.concatenate([[0], np.cumsum(chunks)])
    n, rows, draws = int(bounds[-1]), 20, 20000
    rng = np.random.default_rng(0)
    counts = np.zeros(n)
    for _ in range(draws):
        order, left = rng.permutation(len(chunks)), rows
        for block in order:
            take = min(chunks[block], left)
            counts[bounds[block] : bounds[block] + take] += 1
            left -= take
            if not left:
                break
    p = rows / n
    assert np.abs(counts / draws - p).max() > 5 * np.sqrt(p * (1 - p) / draws)


def test_a_window_as_large_as_the_data_is_the_data():
    assert plan(np.array([0, 4, 9]), 9, np.random.default_rng(0)) == [(0, 9)]
    assert plan(np.array([0, 4, 9]), 50, np.random.default_rng(0)) == [(0, 9)]


def test_plans_are_reproducible_from_the_generator():
    bounds = np.array([0, 3, 7, 10, 15])
    first = [plan(bounds, 6, g) for g in [np.random.default_rng(5)] * 3]
    again = [plan(bounds, 6, g) for g in [np.random.default_rng(5)] * 3]
    assert first == again
    assert len({tuple(p) for p in first}) > 1  # the generator advances between windows
