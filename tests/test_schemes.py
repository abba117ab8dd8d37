"""Sampling schemes: with replacement, distinct rows per batch, epochs; on C, Numba and JAX."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pymc as pm
import pytensor
import pytest
from pymc.pytensorf import compile as pm_compile
from scipy import stats

import minibatch as mb
from minibatch._gather import source_of
from minibatch._schemes import EpochDraw, SubsetDraw
from test_backends import METHODS, MODES, fit, moments

pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using experimental inference Operator:UserWarning"
)

SCHEMES = ["with_replacement", "without_replacement", "epoch"]


def draw_fn(outputs, mode):
    """A compiled function returning ``outputs`` (the draw advances the index every call)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # JAX: "a copy of the RNG will be used"
        return pytensor.function([], outputs, mode=mode)


def index_state(batch):
    """The shared generator (and epoch state) of the index that draws ``batch``."""
    (_, index), *_ = source_of(batch)[1]
    return index.owner.inputs[1:]


def rows_data(n):
    """x[i] = (i, 1000 + i), y[i] = i: every value tells its row."""
    return np.c_[np.arange(n), 1000 + np.arange(n)].astype(float), np.arange(n)


@pytest.mark.parametrize("mode", MODES)
def test_without_replacement_draws_distinct_paired_rows(mode):
    x, y = rows_data(30)
    xb, yb = mb.Minibatch(x, y, batch_size=12, sampling="without_replacement", random_seed=1)
    f = draw_fn([mb.index_of(xb), xb, yb], mode)
    for _ in range(200):
        idx, xv, yv = f()
        assert len(set(idx.tolist())) == 12 and idx.min() >= 0 and idx.max() < 30
        np.testing.assert_array_equal(yv, idx)
        np.testing.assert_array_equal(xv, x[idx])


@pytest.mark.parametrize("mode", MODES)
def test_without_replacement_is_a_uniform_subset(mode):
    """N = 6, B = 3: each of the 20 subsets has probability 1/20.

    Over K = 20000 draws each count is Binomial(K, 1/20): mean 1000, sd 30.8; all 20 counts
    within 5 sd (fixed seed: no flakes; a rule that favoured some subsets by 20 % would fail).
    The batch size B = N draws the whole data set, every row once.
    """
    xb = mb.Minibatch(np.arange(6.0), batch_size=3, sampling="without_replacement")
    f = draw_fn(mb.index_of(xb), mode)
    draws = 20000
    counts = {s: 0 for s in itertools.combinations(range(6), 3)}
    for _ in range(draws):
        counts[tuple(sorted(f().tolist()))] += 1
    sd = np.sqrt(draws * (1 / 20) * (19 / 20))
    assert max(abs(c - draws / 20) for c in counts.values()) < 5 * sd
    whole = mb.Minibatch(np.arange(6.0), batch_size=6, sampling="without_replacement")
    g = draw_fn(whole, mode)
    assert all(sorted(g().tolist()) == list(range(6)) for _ in range(50))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("n", "b"), [(20, 5), (23, 5)])
def test_epoch_draws_every_row_once_per_epoch(mode, n, b):
    """Each run of N consecutive positions from the start of a fit is a permutation of the rows.

    With B | N that is every N / B steps; otherwise an epoch ends inside a batch, whose last
    rows start the next epoch.  The epochs are fresh permutations, and ``epoch_of`` counts the
    whole passes.
    """
    x, y = rows_data(n)
    xb, yb = mb.Minibatch(x, y, batch_size=b, sampling="epoch")
    f = draw_fn([xb, yb], mode)
    steps = n * b // np.gcd(n, b) // b * 3  # three whole numbers of epochs
    stream, counted = [], []
    for _ in range(steps):
        xv, yv = f()
        np.testing.assert_array_equal(xv[:, 0], yv)
        stream.append(yv)
        counted.append(mb.epoch_of(xb))
    stream = np.concatenate(stream)
    epochs = stream.reshape(-1, n)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
    assert len({tuple(e) for e in epochs}) == len(epochs)  # a new order every epoch
    np.testing.assert_array_equal(counted, (np.arange(1, steps + 1) * b) // n)


@pytest.mark.parametrize("mode", ["CVM", "NUMBA"])
@pytest.mark.parametrize("scheme", ["without_replacement", "epoch"])
def test_the_draws_work_in_place_on_c_and_numba(mode, scheme):
    """The generator and the epoch state are advanced in place: no O(N) copy per step."""
    xb = mb.Minibatch(np.arange(1000.0), batch_size=10, sampling=scheme)
    f = draw_fn(xb, mode)
    ops = [n.op for n in f.maker.fgraph.toposort() if isinstance(n.op, SubsetDraw | EpochDraw)]
    assert [op.inplace for op in ops] == [True]
    shared = index_state(xb)
    before = [s.get_value(borrow=True) for s in shared]
    for _ in range(150):  # past the end of an epoch
        f()
    assert all(s.get_value(borrow=True) is v for s, v in zip(shared, before, strict=True))


def test_c_and_numba_draw_the_same_numbers():
    for scheme in ("without_replacement", "epoch"):
        xb = mb.Minibatch(np.arange(500.0), batch_size=40, sampling=scheme)
        rng, *state = index_state(xb)
        drawn = []
        for mode in ("CVM", "NUMBA"):
            rng.set_value(np.random.default_rng(7))
            for s in state:
                s.set_value(np.r_[500, 0, np.arange(500)])
            f = draw_fn(xb, mode)
            drawn.append(np.concatenate([f() for _ in range(30)]))
        np.testing.assert_array_equal(*drawn)


def _outlier_model(scheme, n=200, b=20):
    data = np.random.default_rng(4).normal(size=n)
    data[17] = 40.0  # one row whose log-density dominates: a scheme that skipped it is biased
    xb = mb.Minibatch(data, batch_size=b, sampling=scheme, random_seed=0)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("x", mu, 2.0, observed=xb, total_size=n)
    f = pm_compile(model.value_vars, model.logp(vars=model.observed_RVs), random_seed=5)
    return data, f


@pytest.mark.parametrize("scheme", ["with_replacement", "without_replacement"])
def test_the_scaled_logp_is_unbiased_with_the_scheme_s_spread(scheme):
    """E (N/B) sum_batch logp_i = sum_i logp_i, with an outlier row that dominates the sum.

    Var = N^2 / B Var_pop with replacement, times (N - B)/(N - 1) without (the finite
    population correction, 0.905 here).  K = 4000 draws: the mean within 5 standard errors; the
    sd within 10 % of the formula (the outlier is in ~1 batch in 10, so the sample sd has a
    relative sd of ~2 %, the kurtosis of that mixture taken into account).
    """
    n, b, draws = 200, 20, 4000
    data, f = _outlier_model(scheme, n, b)
    estimates = np.array([f(0.3) for _ in range(draws)])
    per_row = stats.norm(0.3, 2.0).logpdf(data)
    correction = 1.0 if scheme == "with_replacement" else (n - b) / (n - 1)
    sd = n * per_row.std() / np.sqrt(b) * np.sqrt(correction)
    assert abs(estimates.mean() - per_row.sum()) < 5 * sd / np.sqrt(draws)
    np.testing.assert_allclose(estimates.std(), sd, rtol=0.1)


@pytest.mark.parametrize(("n", "b"), [(200, 20), (203, 20)])
def test_epoch_estimator_averages_to_the_full_logp_exactly(n, b):
    """N steps of B rows are B whole epochs: their mean estimate is the full logp, exactly."""
    data, f = _outlier_model("epoch", n, b)
    estimates = np.array([f(0.3) for _ in range(n)])
    full = pm.logp(pm.Normal.dist(0.3, 2.0), data).sum().eval()  # PyMC's formula, on all rows
    np.testing.assert_allclose(estimates.mean(), full, rtol=1e-12)
    assert estimates.std() > 1.0  # the steps themselves vary: only their average is exact


def _conjugate_model(c, scheme):
    yb = mb.Minibatch(c.y, batch_size=100, sampling=scheme)
    with pm.Model() as model:
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=yb, total_size=len(c.y))
    return model


def _state(approx):
    return np.concatenate([approx.hist, *(np.ravel(p.get_value()) for p in approx.params)])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scheme", ["without_replacement", "epoch"])
def test_same_seed_same_fit_every_backend(conjugate, scheme, mode):
    model = _conjugate_model(conjugate, scheme)
    first, again, other = (_state(fit(model, "advi", mode, seed=s, n=30)) for s in (5, 5, 6))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scheme", ["without_replacement", "epoch"])
def test_every_method_reaches_the_conjugate_posterior(conjugate, scheme, method):
    """The same tolerances as the backend matrix (test_backends), on the C backend."""
    model = _conjugate_model(conjugate, scheme)
    mean, sd = moments(fit(model, method, "CVM"))
    assert abs(mean - conjugate.post_mean) < 0.05 * abs(conjugate.post_mean)
    assert abs(sd - conjugate.post_sd) < 0.20 * conjugate.post_sd
    first, again = (_state(fit(model, method, "CVM", seed=9, n=20)) for _ in range(2))
    np.testing.assert_array_equal(first, again)


def test_a_fresh_fit_starts_a_fresh_epoch_and_refine_continues():
    n, b = 50, 10
    x, y = rows_data(n)
    xb, yb = mb.Minibatch(x, y, batch_size=b, sampling="epoch")
    seen = []
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("obs", mu, 1, observed=yb, total_size=n)
        track = [lambda approx, losses, i: seen.append(mb.epoch_of(xb))]
        inference = pm.ADVI(random_seed=1)
        inference.fit(12, progressbar=False, callbacks=track)
        assert seen == [(i * b) // n for i in range(1, 13)]
        inference.refine(3, progressbar=False)
        assert mb.epoch_of(xb) == 3  # 15 steps of 10 rows
        pm.fit(2, random_seed=1, progressbar=False)
        assert mb.epoch_of(xb) == 0


def test_two_subsampled_axes_each_run_through_epochs():
    grid = np.arange(6 * 8).reshape(6, 8).astype(float)  # value = 8 * row + column
    gb = mb.Minibatch(grid, batch_size=[3, 4], sampling="epoch")
    f = draw_fn([mb.index_of(gb, 0), mb.index_of(gb, 1), gb], "CVM")
    rows, cols = [], []
    for _ in range(4):
        r, c, v = f()
        np.testing.assert_array_equal(v, grid[np.ix_(r, c)])
        rows.append(r)
        cols.append(c)
    for stream, n in ((np.concatenate(rows), 6), (np.concatenate(cols), 8)):
        for epoch in stream.reshape(-1, n):
            np.testing.assert_array_equal(np.sort(epoch), np.arange(n))


@pytest.mark.parametrize("mode", MODES)
def test_new_data_of_another_length_starts_a_fresh_epoch(mode):
    xb = mb.Minibatch(np.arange(10.0), batch_size=4, sampling="epoch")
    f = draw_fn(xb, mode)
    f()
    xb.set_value(np.arange(100.0, 106.0))
    stream = np.concatenate([f() for _ in range(3)])  # two epochs of 6
    for epoch in stream.reshape(2, 6):
        np.testing.assert_array_equal(np.sort(epoch), np.arange(100.0, 106.0))


def test_bad_schemes_are_refused_at_construction(tmp_path):
    data = np.zeros((10, 2))
    with pytest.raises(ValueError, match="sampling must be one of 'with_replacement'"):
        mb.Minibatch(data, batch_size=4, sampling="shuffle")
    with pytest.raises(ValueError, match=r"batch_size \(11\) must not exceed the number of rows"):
        mb.Minibatch(data, batch_size=11, sampling="epoch")
    with pytest.raises(ValueError, match=r"batch_size \(3\) must not exceed .* \(2\)"):
        mb.Minibatch(data, batch_size=[4, 3], sampling="without_replacement")
    assert mb.Minibatch(data, batch_size=11).type.shape[0] is None  # with replacement: fine
    path = tmp_path / "x.npy"
    np.save(path, data)
    with pytest.raises(ValueError, match="sampling='epoch' is for in-memory data"):
        mb.Minibatch(np.load(path, mmap_mode="r"), batch_size=4, sampling="epoch")
    with pytest.raises(ValueError, match=r"sampling must be one of .*; got 'epochs'"):
        mb.Minibatch(np.load(path, mmap_mode="r"), batch_size=4, sampling="epochs")


def test_one_seed_shares_an_index_per_scheme_only():
    data = np.zeros(10)
    a = mb.Minibatch(data, batch_size=4, random_seed=3, sampling="epoch")
    b = mb.Minibatch(data, batch_size=4, random_seed=3, sampling="epoch")
    c = mb.Minibatch(data, batch_size=4, random_seed=3)
    assert index_state(a)[0] is index_state(b)[0]
    assert index_state(c)[0] is not index_state(a)[0]


@pytest.mark.parametrize("scheme", ["without_replacement", "epoch"])
def test_full_data_model_and_the_sampler_guard_know_every_scheme(conjugate, scheme):
    model = _conjugate_model(conjugate, scheme)
    with pytest.raises(ValueError, match="minibatch"), model:
        pm.sample(draws=10, tune=10, chains=1, progressbar=False)
    full = mb.full_data_model(model)
    expected = pm.logp(pm.Normal.dist(0.7, conjugate.sigma), conjugate.y).sum().eval()
    expected += pm.logp(pm.Normal.dist(conjugate.mu0, conjugate.tau0), 0.7).eval()
    np.testing.assert_allclose(full.compile_logp()({"mu": 0.7}), expected, rtol=1e-12)
