"""minibatch_model: a full-data model turned into its minibatch version, and back."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from scipy import stats

import minibatch as mb
from minibatch._transform import minibatch_model
from test_rowwise import check_round_trip_and_scaling

# PyMC warns on every ASVGD that the method is experimental; that is PyMC's to say.
pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using experimental inference Operator:UserWarning"
)

N, BATCH = 120, 12
RNG = np.random.default_rng(7)
X = RNG.normal(size=(N, 2))
Y = X @ np.array([1.0, -2.0]) + RNG.normal(0, 0.5, size=N)
COUNTS = RNG.poisson(np.exp(0.3 * X[:, 0]))


def regression():
    with pm.Model() as model:
        w = pm.Normal("w", 0, 5, shape=2)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", X @ w, sigma, observed=Y)
    return model


def data_dims():
    coords = {"obs": range(N), "feature": ["a", "b"]}
    with pm.Model(coords=coords) as model:
        xd = pm.Data("X", X, dims=("obs", "feature"))
        yd = pm.Data("Y", Y, dims="obs")
        w = pm.Normal("w", 0, 5, dims="feature")
        mu = pm.Deterministic("mu", xd @ w, dims="obs")
        pm.Normal("y", mu, 0.5, observed=yd, dims="obs")
    return model


def local_latent():
    with pm.Model(coords={"obs": range(N)}) as model:
        w = pm.Normal("w", 0, 5)
        z = pm.Normal("z", 0, 1, dims="obs")
        pm.Normal("y", w * X[:, 0] + z, 0.5, observed=Y, dims="obs")
    return model


def poisson():
    with pm.Model() as model:
        a = pm.Normal("a", 0, 1)
        b = pm.Normal("b", 0, 1)
        pm.Poisson("counts", pm.math.exp(a + b * X[:, 0]), observed=COUNTS)
    return model


def two_observed():
    with pm.Model() as model:
        a = pm.Normal("a", 0, 1)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Poisson("counts", pm.math.exp(a * X[:, 0]), observed=COUNTS)
        pm.Normal("y", a * X[:, 1], sigma, observed=Y)
    return model


MODELS = {
    "regression": (regression, {}),
    "data_dims": (data_dims, {"dim": "obs"}),
    "local": (local_latent, {"local": ["z"]}),
    "poisson": (poisson, {}),
    "two_observed": (two_observed, {}),
}


def points(model, count=3, seed=0):
    """The initial point and random points on the unconstrained space."""
    rng = np.random.default_rng(seed)
    start = model.initial_point()
    yield start
    for _ in range(count):
        yield {k: v + rng.normal(0, 0.5, size=np.shape(v)) for k, v in start.items()}


@pytest.mark.parametrize("name", list(MODELS))
def test_full_data_model_of_the_result_has_the_original_logp(name):
    make, options = MODELS[name]
    model = make()
    mini = minibatch_model(model, BATCH, random_seed=1, **options)
    full = mb.full_data_model(mini)
    original, back, batched = model.compile_logp(), full.compile_logp(), mini.compile_logp()
    for point in points(model):
        np.testing.assert_allclose(back(point), original(point), rtol=1e-10)
    assert not np.isclose(batched(model.initial_point()), original(model.initial_point()))
    assert [v.name for v in full.observed_RVs] == [v.name for v in model.observed_RVs]


@pytest.mark.parametrize("name", ["regression", "data_dims", "local"])
def test_the_batch_logp_is_n_over_b_times_the_drawn_rows(name):
    """Exactly N / B times the density of the rows the index drew, at the same draw."""
    make, options = MODELS[name]
    mini = minibatch_model(make(), BATCH, random_seed=2, **options)
    value = mini.rvs_to_values[mini["y"]]
    assert mini["y"].type.shape == (BATCH,)
    term = mini.logp(vars=[mini["y"]])
    # C, so the sum is the plain float64 one: pytensor 3's default backend is Numba with
    # fastmath, which reassociates and approximates (measured 1.3e-9 off on one CI run).
    fn = mini.compile_fn(
        [term, mb.index_of(value)],
        inputs=mini.value_vars,
        on_unused_input="ignore",
        mode="CVM",
    )
    point = next(points(mini, 0))
    point = {k: v + 0.3 for k, v in point.items()}
    seen = set()
    for _ in range(3):
        logp, rows = fn(point)
        seen.add(tuple(rows))
        if name == "regression":
            mu, sigma = X[rows] @ point["w"], np.exp(point["sigma_log__"])
        elif name == "data_dims":
            mu, sigma = X[rows] @ point["w"], 0.5
        else:
            mu, sigma = point["w"] * X[rows, 0] + point["z"][rows], 0.5
        expected = N / BATCH * stats.norm(mu, sigma).logpdf(Y[rows]).sum()
        np.testing.assert_allclose(logp, expected, rtol=1e-9)  # summation order
    assert len(seen) == 3  # a new batch at every evaluation


def test_rows_of_every_dataset_are_drawn_together():
    """Every batch-dimension dataset comes from one gather: row k of each is the same row."""
    rows = np.arange(float(N))
    with pm.Model() as model:
        w = pm.Normal("w", 0, 1)
        pm.Normal("y", w * np.c_[rows, -rows][:, 1], 1, observed=2 * rows)
        pm.Poisson("c", pm.math.exp(w * rows / N), observed=np.arange(N) * 3)
    mini = minibatch_model(model, 10, random_seed=3)
    (gather,) = {mini.rvs_to_values[v].owner for v in mini.observed_RVs}
    for seed in range(3):
        batches = pm.draw(gather.outputs[1:], random_seed=seed)
        row = batches[0] / 2
        assert set(row) != set(pm.draw(gather.outputs[1], random_seed=seed + 10) / 2)
        for batch in batches[1:]:
            first = batch[:, 0] if batch.ndim == 2 else batch
            ratio = {b / r for b, r in zip(first, row, strict=True) if r}
            assert len(ratio) == 1, ratio


def test_dims_are_relabelled_and_kept():
    mini = minibatch_model(data_dims(), BATCH, dim="obs")
    dims = mini.named_vars_to_dims
    assert tuple(dims["y"]) == ("obs_batch",)
    assert tuple(dims["mu"]) == ("obs",) and tuple(dims["X"]) == ("obs", "feature")
    assert mini.coords["obs_batch"] is None
    assert int(mini.dim_lengths["obs_batch"].eval()) == BATCH
    local = minibatch_model(local_latent(), BATCH, local="z")
    assert tuple(local.named_vars_to_dims["z"]) == ("obs",)
    assert local["z"].type.shape == (N,) or local["z"].eval().shape == (N,)
    assert mini["mu"].eval({mini["w"]: np.ones(2)}).shape == (N,)  # deterministics: full data


def test_set_data_replaces_the_rows_the_batches_are_drawn_from():
    mini = minibatch_model(data_dims(), BATCH, dim="obs", random_seed=4)
    value = mini.rvs_to_values[mini["y"]]
    fn = mini.compile_fn([mini.logp(vars=[mini["y"]]), mb.index_of(value)], inputs=mini.value_vars)
    new_x, new_y = X[:40] + 1, Y[:40] - 1
    with mini:
        pm.set_data({"X": new_x, "Y": new_y}, coords={"obs": range(40)})
    w = np.array([0.5, 0.2])
    logp, rows = fn({"w": w})
    assert rows.max() < 40
    expected = 40 / BATCH * stats.norm(new_x[rows] @ w, 0.5).logpdf(new_y[rows]).sum()
    np.testing.assert_allclose(logp, expected, rtol=1e-9)


def test_the_original_is_unchanged_and_samples_and_the_result_refuses_pm_sample():
    model = data_dims()
    before = model.compile_logp()(model.initial_point())
    mini = minibatch_model(model, BATCH, dim="obs")
    assert model.compile_logp()(model.initial_point()) == before
    assert model["y"].type.shape[0] in (None, N) and model["X"].get_value().shape == (N, 2)
    with mini:
        pm.set_data({"X": X[:20], "Y": Y[:20]}, coords={"obs": range(20)})
    assert model["X"].get_value().shape == (N, 2)  # containers are the copy's own
    with model:
        idata = pm.sample(draws=50, tune=50, chains=1, random_seed=0, progressbar=False)
    assert idata.posterior["w"].shape == (1, 50, 2)
    with mini, pytest.raises(ValueError, match=r"pm.sample needs the full data.*\['y'\]"):
        pm.sample(draws=5, tune=5, chains=1, progressbar=False)


def test_minibatch_options_are_passed_through():
    one = minibatch_model(regression(), BATCH, random_seed=11)
    two = minibatch_model(regression(), BATCH, random_seed=11)
    draw = [pm.draw(m.rvs_to_values[m["y"]], random_seed=5) for m in (one, two)]
    np.testing.assert_array_equal(*draw)
    with pytest.raises(TypeError, match="unexpected keyword argument 'no_such_option'"):
        minibatch_model(regression(), BATCH, no_such_option=1)


def test_advi_reaches_the_exact_conjugate_posterior(conjugate):
    """Mean field is exact for this posterior; what is left is the optimiser's noise.

    With Adam at learning rate 0.01 the last iterate moves by about 0.01 per step around the
    optimum, about 0.16 posterior sd here (0.063), and minibatch gradients add noise of the
    same order: mean within 0.5 posterior sd, sd within 25 %, after 10000 steps.
    """
    c = conjugate
    with pm.Model() as model:
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=c.y)
    with minibatch_model(model, 100, random_seed=1):
        approx = pm.fit(
            10000, obj_optimizer=pm.adam(learning_rate=0.01), random_seed=2, progressbar=False
        )
    mean, sd = float(approx.mean.eval()[0]), float(approx.std.eval()[0])
    assert abs(mean - c.post_mean) < 0.5 * c.post_sd
    assert abs(sd / c.post_sd - 1) < 0.25


def _fit(model, method, mode, steps):
    kwargs = dict(inf_kwargs=dict(n_particles=10)) if method == "svgd" else {}
    with model:
        approx = pm.fit(
            steps,
            method=method,
            random_seed=1,
            progressbar=False,
            compile_kwargs=dict(mode=mode),
            **kwargs,
        )
    return approx.sample(20, random_seed=2)


def test_fit_runs_on_a_local_latent_model():
    idata = _fit(
        minibatch_model(local_latent(), BATCH, local="z", random_seed=1), "advi", "FAST_RUN", 50
    )
    assert idata.posterior["z"].shape == (1, 20, N)
    assert np.isfinite(idata.posterior["w"].values).all()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["advi", "fullrank_advi", "svgd", "asvgd"])
@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA", "JAX"])
def test_fit_on_every_backend_and_method(mode, method):
    """A few steps of each method on each backend: it compiles, runs and stays finite."""
    kwargs = dict(inf_kwargs=dict(n_particles=5)) if method == "svgd" else {}
    with minibatch_model(poisson(), BATCH, random_seed=1):
        approx = pm.fit(
            10,
            method=method,
            random_seed=1,
            progressbar=False,
            compile_kwargs=dict(mode=mode),
            **kwargs,
        )
    assert all(np.isfinite(p.get_value()).all() for p in approx.params)
    assert np.isfinite(approx.hist).all()


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch_size", "error", "match"),
    [
        (0, ValueError, "batch_size must be a positive int; got 0"),
        (2.5, TypeError, "batch_size must be a positive int; got 2.5"),
        (True, TypeError, "batch_size must be a positive int; got True"),
        (N + 1, ValueError, f"batch_size={N + 1} exceeds the {N} rows"),
    ],
)
def test_bad_batch_sizes_are_refused(batch_size, error, match):
    with pytest.raises(error, match=match):
        minibatch_model(regression(), batch_size)


def test_models_without_rows_or_with_ambiguous_rows_are_refused():
    with pm.Model() as prior_only:
        pm.Normal("w", 0, 1)
    with pytest.raises(ValueError, match="no observed variable with a leading axis"):
        minibatch_model(prior_only, 2)
    with pm.Model(coords={"obs": range(N), "other": range(10)}) as uneven:
        w = pm.Normal("w", 0, 1)
        pm.Normal("y", w, 1, observed=Y, dims="obs")
        pm.Normal("v", w, 1, observed=np.zeros(10), dims="other")
    with pytest.raises(ValueError, match=r"different lengths on axis 0 .*name the batch dim.*dim="):
        minibatch_model(uneven, 5)
    with pytest.raises(ValueError, match="dim='nope' is not a dim of the model"):
        minibatch_model(uneven, 5, dim="nope")
    mini = minibatch_model(uneven, 5, dim="other")  # the other observed stays full
    assert pm.draw(mini["y"]).shape == (N,) and pm.draw(mini["v"]).shape == (5,)
    with pm.Model(coords={"obs": range(N)}) as dimless:
        pm.Normal("y", 0, 1, observed=Y)
    with pytest.raises(ValueError, match="no observed variable has dim='obs' on its first axis"):
        minibatch_model(dimless, 5, dim="obs")


def test_minibatch_models_are_refused():
    with pm.Model() as model:
        pm.Normal("y", pm.Normal("w"), 1, observed=mb.Minibatch(Y, batch_size=10))
    with pytest.raises(ValueError, match="already uses minibatches"):
        minibatch_model(model, 5)


def test_bad_local_names_are_refused():
    with pytest.raises(ValueError, match=r"'q' is not a free variable of the model.*\['w', 'z'\]"):
        minibatch_model(local_latent(), BATCH, local=["q"])
    with pytest.raises(ValueError, match="local variable 'w' must have one value per data row"):
        minibatch_model(local_latent(), BATCH, local="w")
    with pytest.raises(TypeError, match="local must be a name or a list of names"):
        minibatch_model(local_latent(), BATCH, local=[1])


def test_a_free_variable_on_the_batch_dimension_is_refused_unless_local():
    with pytest.raises(
        ValueError, match=r"observed variable 'y'.*free variable 'z'.*local=\['z'\]"
    ):
        minibatch_model(local_latent(), BATCH)
    with pm.Model() as through_deterministic:
        theta = pm.Normal("theta", 0, 1, shape=N)
        mu = pm.Deterministic("mu", pm.math.exp(theta))
        pm.Normal("y", mu * X[:, 0], 1, observed=Y)
    with pytest.raises(ValueError, match=r"free variable 'theta'.*local=\['theta'\]"):
        minibatch_model(through_deterministic, BATCH)
    assert minibatch_model(through_deterministic, BATCH, local="theta")["y"].type.shape == (BATCH,)


def test_a_potential_on_batch_data_is_refused():
    with pm.Model() as model:
        w = pm.Normal("w", 0, 1)
        pm.Normal("y", w * X[:, 0], 1, observed=Y)
        pm.Potential("penalty", -((w * X[:, 1]) ** 2).sum())
    with pytest.raises(ValueError, match="potential 'penalty' depends on data of the batch dim"):
        minibatch_model(model, BATCH)


@pytest.mark.parametrize(
    ("mean", "match"),
    [
        (lambda w: w * X[:, 0] - (w * X[:, 0]).sum(), "Sum"),
        (lambda w: w * X[:, 0] - (w * X[:, 0]).mean(), "Sum.* reduces along the batch axis"),
        (lambda w: w * X[:, 0] / pt.as_tensor(X).shape[0], "True_div uses the number of rows N"),
        (lambda w: w * pt.dot(pt.as_tensor(X[:, 0]), X[:, 1]), "moves the batch axis|dot product"),
        (lambda w: w * pt.as_tensor(X[:, 0])[::-1], "selects along the batch axis"),
        (lambda w: w * pt.as_tensor(X).T.sum(axis=1)[0], "Sum.* reduces along the batch axis"),
        (lambda w: w * pt.sort(pt.as_tensor(X[:, 0])), "SortOp.* orders along the batch axis"),
        (lambda w: w * pt.cumsum(pt.as_tensor(X[:, 0])), "normalises or orders along the batch"),
        (lambda w: w * pt.special.softmax(X[:, 0], axis=0), "normalises or orders along the batch"),
    ],
    ids=["sum", "mean", "by_n", "dot", "reversed", "transposed", "sort", "cumsum", "softmax"],
)
def test_what_mixes_rows_is_refused(mean, match):
    with pm.Model() as model:
        pm.Normal("y", mean(pm.Normal("w", 0, 1)), 1, observed=Y)
    with pytest.raises(ValueError, match=f"observed variable 'y' cannot be subsampled.*{match}"):
        minibatch_model(model, BATCH)


def test_a_likelihood_across_rows_is_refused():
    with pm.Model() as model:
        w = pm.Normal("w", 0, 1)
        pm.MvNormal("y", w * np.ones(N), np.eye(N), observed=Y)
    with pytest.raises(ValueError, match=r"'y' cannot be subsampled.*reduces or moves the batch"):
        minibatch_model(model, BATCH)


def test_distributions_that_cannot_be_resized_are_refused():
    """A measurable expression of a draw (here exp of a normal) is not a draw of its own."""
    with pm.Model() as model:
        model.register_rv(pt.exp(pm.Normal.dist(0, 1, size=N)), "y", observed=np.exp(Y))
    with pytest.raises(ValueError, match=r"'y' has a distribution .* cannot resize"):
        minibatch_model(model, BATCH)


# Local variables of each form the issue lists (issue 21, item 5): each is accepted, the round
# trip has the original logp, and the batch density is N / B times the drawn rows' density.
K, D = 3, 4
Y_MATRIX = RNG.normal(size=(N, D))
LABELS = RNG.integers(0, K, N)
UNIT = {"unit": range(N)}


def local_shape_n():
    with pm.Model() as model:
        z = pm.Normal("z", 0, 1, shape=N)
        pm.Normal("y", X[:, 0] + z, 0.5, observed=Y)
    return model


def local_dims(hyper):
    with pm.Model(coords=UNIT) as model:
        if hyper == "free":  # the usual hierarchical random effect
            m, tau = pm.Normal("m", 0, 1), pm.HalfNormal("tau", 1)
        else:
            m, tau = 1.5, 0.7
        z = pm.Normal("z", m, tau, dims="unit")
        pm.Normal("y", X[:, 0] + z, 0.5, observed=Y, dims="unit")
    return model


def local_non_centred():
    with pm.Model(coords=UNIT) as model:
        m, s = pm.Normal("m", 0, 1), pm.HalfNormal("s", 1)
        z_raw = pm.Normal("z_raw", 0, 1, dims="unit")
        z = pm.Deterministic("z", m + s * z_raw, dims="unit")
        pm.Normal("y", X[:, 0] + z, 0.5, observed=Y, dims="unit")
    return model


def local_factor_scores():
    with pm.Model() as model:
        scores = pm.Normal("F", 0, 1, shape=(N, K))
        loadings = pm.Normal("W", 0, 1, shape=(K, D))
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", scores @ loadings, sigma, observed=Y_MATRIX)
    return model


def local_dirichlet_per_row():
    with pm.Model() as model:
        theta = pm.Dirichlet("theta", a=np.ones(K), shape=(N, K))
        pm.Categorical("y", p=theta, observed=LABELS)
    return model


LOCAL_FORMS = {
    "shape=N": (local_shape_n, "z", {}),
    "dims, dim=": (lambda: local_dims("free"), "z", {"dim": "unit"}),
    "dims, free hyper-parameters": (lambda: local_dims("free"), "z", {}),
    "dims, constant hyper-parameters": (lambda: local_dims("constant"), "z", {}),
    "non-centred": (local_non_centred, "z_raw", {}),
    "factor scores (N, K)": (local_factor_scores, "F", {}),
    "Dirichlet per row (N, K)": (local_dirichlet_per_row, "theta", {}),
}


@pytest.mark.parametrize("form", list(LOCAL_FORMS))
def test_local_variables_of_every_form_round_trip_and_scale_the_drawn_rows(form):
    make, name, options = LOCAL_FORMS[form]
    model = make()
    mini = minibatch_model(model, BATCH, random_seed=1, local=[name], **options)
    assert mini[name].type.shape[0] == N or pm.draw(mini[name]).shape[0] == N  # stays full
    assert pm.draw(mini["y"], random_seed=2).shape[0] == BATCH
    check_round_trip_and_scaling(model, mini, points(model), N, BATCH)
