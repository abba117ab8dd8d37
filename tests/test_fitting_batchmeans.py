"""BatchMeans: every figure against a direct computation over the stored trajectory."""

from __future__ import annotations

import numpy as np
import pytest

from minibatch._fitting._batchmeans import BatchMeans


def _fill(chain: BatchMeans, draws: np.ndarray) -> None:
    for x in draws:
        chain.add(x)


def _direct_rhat(x: np.ndarray, chains: int) -> np.ndarray:
    """BDA3's split-R-hat of ``chains`` equal consecutive pieces of x (rows: iterates)."""
    n = len(x) // chains
    pieces = x.reshape(chains, n, -1)
    within = pieces.var(1, ddof=1).mean(0)
    between_over_n = pieces.mean(1).var(0, ddof=1)
    return np.sqrt(((n - 1) / n * within + between_over_n) / within)


@pytest.mark.parametrize("steps", [200, 399, 400, 1000, 3333])
def test_figures_equal_direct_computation(steps):
    draws = np.random.default_rng(steps).normal(size=(steps, 3)).cumsum(0) * 0.1
    chain = BatchMeans(size=3, max_batches=8, batch_size=5)
    _fill(chain, draws)
    kept = draws[: chain.iterates]
    assert chain.count < 8 and chain.iterates == chain.count * chain.batch_size
    assert chain.iterates > steps - chain.batch_size
    np.testing.assert_allclose(chain.mean(), kept.mean(0), rtol=1e-12)
    np.testing.assert_allclose(chain.mean(partial=True), draws.mean(0), rtol=1e-12)
    np.testing.assert_allclose(chain.variance(), kept.var(0), rtol=1e-9)
    means = kept.reshape(chain.count, chain.batch_size, 3).mean(1)
    mcse = means.std(0, ddof=1) / np.sqrt(chain.count)
    np.testing.assert_allclose(chain.mcse(), mcse, rtol=1e-9)
    np.testing.assert_allclose(chain.ess(), kept.var(0) / mcse**2, rtol=1e-9)
    if chain.count >= 4:
        left_out = (chain.count % 4) * chain.batch_size  # whole batches, the oldest
        np.testing.assert_allclose(chain.rhat(), _direct_rhat(kept[left_out:], 4), rtol=1e-9)


def test_drop_first_half_keeps_the_later_batches():
    draws = np.random.default_rng(1).normal(size=(140, 2))
    chain = BatchMeans(size=2, max_batches=8, batch_size=10)
    _fill(chain, draws[:70])  # 7 batches of 10 (no merge yet: 8 would merge)
    chain.drop_first_half()
    assert chain.count == 4
    np.testing.assert_allclose(chain.mean(), draws[30:70].mean(0), rtol=1e-12)
    _fill(chain, draws[70:80])
    np.testing.assert_allclose(chain.mean(), draws[30:80].mean(0), rtol=1e-12)


def test_memory_is_bounded():
    chain = BatchMeans(size=4, max_batches=8, batch_size=1)
    _fill(chain, np.ones((100_000, 4)))
    assert chain.sums.shape == (8, 4) and chain.count < 8 and chain.batch_size >= 100_000 // 8


def test_mcse_is_calibrated_on_ar1():
    """200 independent AR(1) chains, phi = 0.9: the asymptotic sd of the mean is
    sigma / (1 - phi) / sqrt(T). Averaged over the chains, the batch-means MCSE must match it
    (each estimate has relative sd ~ 1 / sqrt(2 (batches - 1)) <= 0.27, /sqrt(200) -> 2 %;
    batches of >= 6,250 steps against tau = 19 bias it by < 1 %)."""
    phi, steps, k = 0.9, 100_000, 200
    rng = np.random.default_rng(7)
    chain = BatchMeans(size=k, max_batches=16, batch_size=25)
    x = rng.normal(size=k) / np.sqrt(1 - phi**2)
    for eps in rng.normal(size=(steps, k)):
        x = phi * x + eps
        chain.add(x)
    theory = 1 / (1 - phi) / np.sqrt(chain.iterates)
    ratio = chain.mcse().mean() / theory
    assert 0.9 < ratio < 1.1, ratio
    # and R-hat of a stationary chain is near 1, of a drifting one is not
    assert chain.rhat().max() < 1.1
    drifting = BatchMeans(size=1, max_batches=16, batch_size=25)
    _fill(drifting, (np.arange(4000) / 400.0 + rng.normal(size=4000))[:, None])
    assert drifting.rhat()[0] > 1.5


def test_bad_sizes_refused():
    with pytest.raises(ValueError, match="even number >= 8"):
        BatchMeans(size=1, max_batches=7)
    chain = BatchMeans(size=1, max_batches=8, batch_size=2)
    with pytest.raises(ValueError, match="no iterate"):
        chain.mean()
    chain.add(np.zeros(1))
    chain.add(np.zeros(1))
    with pytest.raises(ValueError, match="at least two"):
        chain.mcse()
