"""Local latent variables: a full-length ``z`` enters a minibatch likelihood as ``z[idx]``.

``idx = mb.index_of(batch)`` is the index that draws the batch.  The conjugate model with one
latent mean per row has an exact posterior per row, which mean-field ADVI can represent
exactly, so a fit is checked row by row against it with a tolerance derived from the
stochastic-gradient noise.  The estimator itself is checked exactly (the minibatch logp is the
full prior plus N/B times the batch rows' likelihood), a single fit step is checked to touch
the likelihood of the batch rows only, and two-axis matrix factorisation checks both indices of
a two-axis batch.  The last part runs the local-latent model on every backend and VI method.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytest

import minibatch as mb

# PyMC warns on every ASVGD that the method is experimental; that is PyMC's to say.
pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using experimental inference Operator:UserWarning"
)

# z_i ~ N(M0, TAU^2) iid, y_i ~ N(z_i, S^2): the posterior of each z_i is normal with
# precision PREC = 1/TAU^2 + 1/S^2 and mean (M0/TAU^2 + y_i/S^2) / PREC.  The sd (0.573) is far
# from ADVI's starting sd softplus(0) = log 2 = 0.693, so a fit that does not move fails.
M0, TAU, S = 0.5, 1.0, 0.7
PREC = 1 / TAU**2 + 1 / S**2
POST_SD = PREC**-0.5


def normal_logpdf(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def local_data(n, seed=20261201):
    """y from the model's prior predictive: y_i ~ N(M0, TAU^2 + S^2)."""
    return np.random.default_rng(seed).normal(M0, np.hypot(TAU, S), size=n)


def post_mean(y):
    return (M0 / TAU**2 + y / S**2) / PREC


def local_model(y, batch_size, seed=0, sampling="with_replacement"):
    yb = mb.Minibatch(y, batch_size=batch_size, random_seed=seed, sampling=sampling)
    idx = mb.index_of(yb)
    with pm.Model() as model:
        z = pm.Normal("z", M0, TAU, shape=len(y))
        pm.Normal("obs", z[idx], S, observed=yb, total_size=len(y))
    return model, yb, idx


# ---------------------------------------------------------------------------------------------
# The estimator, exactly
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampling", ["with_replacement", "without_replacement", "epoch"])
def test_minibatch_logp_is_full_prior_plus_scaled_batch_likelihood(sampling):
    """logp = sum over all N rows of log p(z_i) + N/B * sum over the batch of log p(y_j | z_j).

    Index and logp come out of one call, so they are the same draw.  Its expectation over the
    index is the full-data logp (each row is drawn B/N times on average, in every sampling
    scheme), which is why the ELBO built on it is unbiased.
    """
    n, b = 50, 7
    y = local_data(n)
    model, yb, idx = local_model(y, b, seed=3, sampling=sampling)
    z_value = model.rvs_to_values[model["z"]]
    f = pytensor.function([z_value], [idx, yb, model.logp()])
    z = np.random.default_rng(1).normal(size=n)
    draws = [f(z) for _ in range(3)]
    for rows, batch, logp in draws:
        np.testing.assert_array_equal(batch, y[rows])
        prior = normal_logpdf(z, M0, TAU).sum()
        likelihood = normal_logpdf(y[rows], z[rows], S).sum()
        np.testing.assert_allclose(logp, prior + n / b * likelihood, rtol=1e-12)
    assert not np.array_equal(draws[0][0], draws[1][0])  # a new index each call


def test_index_of_every_dataset_of_the_call_is_the_rows_of_that_call():
    """Two datasets of one call, each with its own likelihood on z[mb.index_of(its batch)]."""
    n, b = 40, 6
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 3))
    y = rng.normal(size=n)
    xb, yb = mb.Minibatch(x, y, batch_size=b, random_seed=5)
    with pm.Model() as model:
        z = pm.Normal("z", 0, 1, shape=n)
        pm.Normal("x", z[mb.index_of(xb)][:, None], 1.3, observed=xb, total_size=n)
        pm.Normal("y", z[mb.index_of(yb)], S, observed=yb, total_size=n)
    z_value = model.rvs_to_values[z]
    outputs = [mb.index_of(xb), mb.index_of(yb), xb, yb, model.logp()]
    f = pytensor.function([z_value], outputs)
    zv = rng.normal(size=n)
    for _ in range(3):
        rows_x, rows_y, xv, yv, logp = f(zv)
        np.testing.assert_array_equal(rows_x, rows_y)
        np.testing.assert_array_equal(xv, x[rows_x])
        np.testing.assert_array_equal(yv, y[rows_y])
        likelihood = (
            normal_logpdf(x[rows_x], zv[rows_x][:, None], 1.3).sum()
            + normal_logpdf(y[rows_y], zv[rows_y], S).sum()
        )
        expected = normal_logpdf(zv, 0, 1).sum() + n / b * likelihood
        np.testing.assert_allclose(logp, expected, rtol=1e-12)


def test_a_fit_step_moves_the_likelihood_of_the_batch_rows_only():
    """With a flat prior, one SGD step changes the mean of q(z_i) exactly at the drawn rows.

    The step records the index it drew (``more_updates``, passed through ``pm.fit`` to the step
    function, is evaluated in the same call as the loss).  Rows off the batch get gradient from
    the prior (zero here) and the entropy (which moves sd, not mean) only, so their means stay
    at the start, 0; the batch rows move (almost surely).  Every row's sd moves (entropy).
    """
    n, b = 30, 6
    y = local_data(n)
    yb = mb.Minibatch(y, batch_size=b, random_seed=1)
    idx = mb.index_of(yb)
    seen = pytensor.shared(np.full(b, -1, dtype="int64"))
    with pm.Model():
        z = pm.Flat("z", shape=n)
        pm.Normal("obs", z[idx], S, observed=yb, total_size=n)
        approx = pm.fit(
            1,
            random_seed=3,
            progressbar=False,
            obj_optimizer=pm.sgd(learning_rate=0.1),
            more_updates={seen: idx},
        )
    params = approx.groups[0].params_dict
    mu, rho = params["mu"].get_value(), params["rho"].get_value()
    rows = seen.get_value()
    assert rows.min() >= 0
    np.testing.assert_array_equal(np.flatnonzero(mu), np.unique(rows))
    assert (rho != 0).all()


# ---------------------------------------------------------------------------------------------
# Conjugate normal-normal, one latent per row: every row against its exact posterior
# ---------------------------------------------------------------------------------------------

# Fit settings: plain SGD with a constant rate, then the average of the iterates of the last
# STEPS steps (Polyak-Ruppert averaging), each step with OBJ_N_MC Monte Carlo samples.  Mean-field
# q contains the exact posterior, so the ELBO's optimum is each row's exact mean and sd; what is
# left is the optimiser's noise and bias, derived in ``predicted_errors``.  The rate on the ELBO
# is eta = LEARNING_RATE * B / N = 0.01 (see there), so the correlation times are
# 1/(eta PREC) = 33 steps for a mean and 1/(eta |h'|) = 86 for an sd's rho: BURN_IN is over 20
# of them (the start's offset has decayed by e^-20) and STEPS over 200.
N_ROWS, BATCH = 200, 20
OBJ_N_MC = 10
LEARNING_RATE = 0.1
BURN_IN, STEPS = 2000, 20000


def predicted_errors(y, n, b, m, steps, eta):
    """Sd of the averaged mean and sd of each q(z_i), and the O(eta) bias of the averaged sd.

    Derivation.  On a step, row i is drawn c_i ~ Binomial(B, 1/N) times, so its likelihood is
    weighted by w = (N/B) c_i: E w = 1, var w = (N/B)(1 - 1/N).  With q(z_i) = N(mu, sd^2) and
    the M reparametrised draws z_j = mu + sd e_j, the per-row ELBO gradients are

        g_mu = mean_j [-(z_j - M0)/TAU^2 - w (z_j - y)/S^2]
        g_sd = mean_j e_j [-(z_j - M0)/TAU^2 - w (z_j - y)/S^2] + 1/sd   (entropy: log sd)

    E g_mu = -PREC (mu - mu*) is linear in mu, so SGD iterates have mean mu* exactly, and their
    average over K steps (K much larger than the correlation time 1/(eta PREC)) has variance
    var(g_mu)/(PREC^2 K), whatever the rate (the linear AR(1) result).  With
    a = -(mu* - M0)/TAU^2 - w (mu* - y)/S^2 (zero mean, E[a^2] = var(w) (mu* - y)^2/S^4) and
    c = 1/TAU^2 + w/S^2, at the optimum

        var g_mu = E[a^2] + sd*^2 E[c^2] / M.

    E g_sd = f(sd) = 1/sd - PREC sd, zero at sd* = PREC^-1/2 with slope f' = -2 PREC, and

        var g_sd = (E[a^2] + 2 sd*^2 E[c^2]) / M + sd*^2 var(w) / S^4,

    so the averaged sd has noise sd sqrt(var g_sd / K) / (2 PREC) (to first order whatever the
    parametrisation).  f is not linear, so its iterates have an O(eta) bias: PyMC steps
    rho = softplus^-1(sd), drift h(rho) = s' f with s' = sigmoid(rho); at stationarity
    E[rho - rho*] = -h''/(2 h') var(rho), with var(rho) = eta s'^2 var(g_sd) / (2 |h'|),
    h' = s'^2 f', h'' = 3 s' s'' f' + s'^3 f'', s'' = s'(1 - s'), f'' = 2 / sd*^3; the
    averaged sd is off by s' E[rho - rho*] (here about half its noise sd).
    ``eta`` is the rate on the ELBO: ``pm.fit`` divides the loss by N/B (the scaling of the
    likelihood), so it is LEARNING_RATE * B / N.
    """
    var_w = n / b * (1 - 1 / n)
    mean_w2 = var_w + 1
    e_c2 = 1 / TAU**4 + 2 / (TAU**2 * S**2) + mean_w2 / S**4
    e_a2 = var_w * (post_mean(y) - y) ** 2 / S**4
    var_g_mu = e_a2 + POST_SD**2 * e_c2 / m
    var_g_sd = (e_a2 + 2 * POST_SD**2 * e_c2) / m + POST_SD**2 * var_w / S**4
    sd_of_mean = np.sqrt(var_g_mu / steps) / PREC
    sd_of_sd = np.sqrt(var_g_sd / steps) / (2 * PREC)

    rho = np.log(np.expm1(POST_SD))
    s1 = 1 / (1 + np.exp(-rho))
    s2 = s1 * (1 - s1)
    f1, f2 = -2 * PREC, 2 / POST_SD**3
    h1 = s1**2 * f1
    h2 = 3 * s1 * s2 * f1 + s1**3 * f2
    var_rho = eta * s1**2 * var_g_sd / (2 * abs(h1))
    bias_of_sd = s1 * (-h2 / (2 * h1) * var_rho)
    return sd_of_mean, sd_of_sd, bias_of_sd


def test_conjugate_local_latents_match_the_exact_posterior_row_by_row():
    """Every row's mean within 5 predicted sd of the exact one, and its sd likewise (+ bias).

    5 sd for 200 rows x 2 moments leaves a false-alarm chance of about 2e-4 were the seed free
    (it is fixed).  The root mean square of the standardised errors must also be 1 within 0.2
    (4 sd of a chi-square root mean square over 200 rows): the tolerance is the noise that is
    there, not a loose bound.  So the fit has no error the derivation leaves out: an unscaled
    likelihood, a misaligned index or a prior counted N/B times would move the means by many
    noise sd (the predicted noise sd of a mean is 0.003 to 0.018, the exact sd 0.573).
    """
    y = local_data(N_ROWS)
    model, _, _ = local_model(y, BATCH, seed=11)
    sums = {"mu": 0.0, "rho": 0.0}

    def accumulate(approx, losses, i):
        if i >= BURN_IN:
            for name in sums:
                sums[name] = sums[name] + approx.groups[0].params_dict[name].get_value()

    with model:
        approx = pm.fit(
            BURN_IN + STEPS,
            method="advi",
            random_seed=12,
            progressbar=False,
            obj_n_mc=OBJ_N_MC,
            obj_optimizer=pm.sgd(learning_rate=LEARNING_RATE),
            callbacks=[accumulate],
        )
    assert np.isfinite(approx.hist).all()
    averaged = STEPS  # iterations BURN_IN .. BURN_IN + STEPS - 1 reach the callback
    mean = sums["mu"] / averaged
    sd = np.log1p(np.exp(sums["rho"] / averaged))
    sd_of_mean, sd_of_sd, bias = predicted_errors(
        y, N_ROWS, BATCH, OBJ_N_MC, averaged, LEARNING_RATE * BATCH / N_ROWS
    )
    mean_z = (mean - post_mean(y)) / sd_of_mean
    sd_z = (sd - POST_SD - bias) / sd_of_sd
    assert np.abs(mean_z).max() < 5, np.abs(mean_z).max()
    assert np.all(np.abs(sd - POST_SD) < np.abs(bias) + 5 * sd_of_sd), np.abs(sd_z).max()
    assert 0.8 < np.sqrt(np.mean(mean_z**2)) < 1.2, np.sqrt(np.mean(mean_z**2))
    assert 0.8 < np.sqrt(np.mean(sd_z**2)) < 1.2, np.sqrt(np.mean(sd_z**2))


# ---------------------------------------------------------------------------------------------
# Probabilistic matrix factorisation: rows and columns subsampled, one index per axis
# ---------------------------------------------------------------------------------------------

NU, NI, RANK, NOISE = 60, 40, 2, 0.1
BU, BI = 20, 10


@pytest.fixture(scope="module")
def low_rank():
    rng = np.random.default_rng(7)
    truth = rng.normal(size=(NU, RANK)) @ rng.normal(size=(NI, RANK)).T
    return truth, truth + rng.normal(0, NOISE, size=truth.shape)


def pmf_model(ratings, seed):
    rb = mb.Minibatch(ratings, batch_size=[BU, BI], random_seed=seed)  # legacy two-axis spec
    users, items = mb.index_of(rb, 0), mb.index_of(rb, 1)
    with pm.Model() as model:
        u = pm.Normal("U", 0, 1, shape=(NU, RANK))
        v = pm.Normal("V", 0, 1, shape=(NI, RANK))
        pm.Normal("R", u[users] @ v[items].T, NOISE, observed=rb, total_size=(NU, NI))
    return model, rb, users, items


def test_pmf_logp_is_full_priors_plus_scaled_batch_block(low_rank):
    _, ratings = low_rank
    model, rb, users, items = pmf_model(ratings, seed=2)
    values = [model.rvs_to_values[model[name]] for name in ("U", "V")]
    f = pytensor.function(values, [users, items, rb, model.logp()])
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=(NU, RANK)), rng.normal(size=(NI, RANK))
    for _ in range(3):
        rows, cols, block, logp = f(u, v)
        np.testing.assert_array_equal(block, ratings[np.ix_(rows, cols)])
        likelihood = normal_logpdf(block, u[rows] @ v[cols].T, NOISE).sum()
        prior = normal_logpdf(u, 0, 1).sum() + normal_logpdf(v, 0, 1).sum()
        expected = prior + (NU / BU) * (NI / BI) * likelihood
        np.testing.assert_allclose(logp, expected, rtol=1e-12)


def test_pmf_recovers_the_low_rank_matrix(low_rank):
    """Posterior mean of U V^T against the noiseless matrix, and residuals against the noise.

    Under mean-field q, U and V are independent, so E_q[U V^T] = E_q[U] E_q[V]^T exactly; it is
    averaged over the last AVERAGE steps to damp the optimiser's noise.  Scale of the errors
    (per entry, root mean square, noise sd 0.1):

    * the data themselves are off the truth by the noise, 0.1: a fit must beat that, i.e.
      denoise, which needs the rank structure and both indices to match the block's rows and
      columns (a misaligned index fits nothing: errors of order the signal, 1.4);
    * the least-squares rank-K fit of the full matrix is off by about
      0.1 sqrt(K (Nu + Ni - K) / (Nu Ni)) = 0.029 (its degrees of freedom), and leaves
      residuals of 0.1 sqrt(1 - K (Nu + Ni - K) / (Nu Ni)) = 0.096: residuals within 20 % of
      the noise sd show the fit explains the signal and nothing much of the noise.  With 2400
      entries for 200 parameters the N(0, 1) priors barely shrink, so the posterior mean is
      near that least-squares fit: within twice its error, the factor leaving room for the
      optimiser's noise that the averaging leaves.
    """
    truth, ratings = low_rank
    model, *_ = pmf_model(ratings, seed=11)
    burn_in, average = 15000, 5000
    total = {"fit": 0.0}

    def accumulate(approx, losses, i):
        if i >= burn_in:
            mean = approx.groups[0].params_dict["mu"].get_value()
            u = mean[approx.ordering["U"][1]].reshape(NU, RANK)
            v = mean[approx.ordering["V"][1]].reshape(NI, RANK)
            total["fit"] = total["fit"] + u @ v.T

    with model:
        approx = pm.fit(
            burn_in + average,
            method="advi",
            random_seed=3,
            progressbar=False,
            obj_optimizer=pm.adam(learning_rate=0.01),
            callbacks=[accumulate],
        )
    assert np.isfinite(approx.hist).all()
    fit = total["fit"] / average

    def rms(a):
        return float(np.sqrt(np.mean(a**2)))

    oracle = NOISE * np.sqrt(RANK * (NU + NI - RANK) / (NU * NI))
    assert rms(fit - truth) < NOISE, rms(fit - truth)
    assert rms(fit - truth) < 2 * oracle, (rms(fit - truth), oracle)
    assert 0.8 * NOISE < rms(ratings - fit) < 1.2 * NOISE, rms(ratings - fit)
    assert rms(ratings - ratings.mean()) > 10 * NOISE  # a mean-only fit is far off


# ---------------------------------------------------------------------------------------------
# Every backend, every VI method
# ---------------------------------------------------------------------------------------------

MODES = ["FAST_RUN", "NUMBA", "JAX"]
METHODS = ["advi", "fullrank_advi", "svgd", "asvgd"]
METHOD_KWARGS = {
    "advi": {},
    "fullrank_advi": {},  # N x N covariance: N is kept small
    "svgd": dict(inf_kwargs=dict(n_particles=20)),
    "asvgd": dict(obj_n_mc=20),
}
# The C backend runs every method, the others ADVI; the rest of the matrix is slow (compiles).
SLOW = (pytest.mark.slow,)
MATRIX = [
    pytest.param(mode, method, marks=() if mode == "FAST_RUN" or method == "advi" else SLOW)
    for mode in MODES
    for method in METHODS
]


@pytest.mark.parametrize(("mode", "method"), MATRIX)
def test_local_latents_fit_on_every_backend_and_method(mode, method):
    """A short fit (500 steps, N = 20) is finite and half-way from the start to the posterior.

    The start is the prior mean M0 for every row.  A fit whose z rows were not the batch rows
    would pull every z_i to one value, (M0/TAU^2 + mean(y)/S^2)/PREC, which is as far from the
    exact means as M0 is (ratio about 1); the fitted means must be within half that distance.
    """
    n = 20
    y = local_data(n, seed=4)
    model, _, _ = local_model(y, 5, seed=5)
    with model:
        approx = pm.fit(
            500,
            method=method,
            random_seed=6,
            progressbar=False,
            compile_kwargs=dict(mode=mode),
            obj_optimizer=pm.adam(learning_rate=0.05),
            **METHOD_KWARGS[method],
        )
    assert np.isfinite(approx.hist).all()
    if hasattr(approx, "histogram"):
        particles = approx.histogram.eval()
        assert np.isfinite(particles).all()
        mean = particles.mean(0)
    else:
        mean = approx.mean.eval()
    assert mean.shape == (n,)
    exact = post_mean(y)
    distance = np.linalg.norm(mean - exact) / np.linalg.norm(M0 - exact)
    assert distance < 0.5, distance
