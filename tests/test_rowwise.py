"""The row-wise rule on the models people write: each accepted form round-trips exactly, and
its batch logp is N / B times the full model's pointwise logp at the drawn rows."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

import minibatch as mb
from minibatch._rowwise import COUNT, Entry, NotRowwiseError, output_states, propagate

N, BATCH, K = 30, 6, 3
RNG = np.random.default_rng(21)
X = RNG.normal(size=(N, K))
Y = RNG.normal(size=N)
LABELS = RNG.integers(0, 2, size=N)
COUNTS = RNG.poisson(2.0, size=N)
TABLES = RNG.multinomial(5, [0.3, 0.3, 0.4], size=N)
GROUP = RNG.integers(0, 4, size=N)


def _weights():
    return pm.Normal("W", 0, 1, shape=(K, 2))


def _logits():
    return X @ _weights()


def _cumsum_sort_max():
    logits = _logits()
    mu = pt.cumsum(pt.sort(logits, axis=1), axis=1)[:, -1] - pt.max(logits, axis=1)
    return pm.Normal("y", mu, 1, observed=Y)


FORMS = {
    "categorical_logit_p": lambda: pm.Categorical("y", logit_p=_logits(), observed=LABELS),
    "softmax": lambda: pm.Categorical(
        "y", p=pt.special.softmax(_logits(), axis=-1), observed=LABELS
    ),
    "log_softmax": lambda: pm.Categorical(
        "y", logit_p=pt.special.log_softmax(_logits(), axis=1), observed=LABELS
    ),
    "logsumexp": lambda: pm.Normal("y", pt.logsumexp(_logits(), axis=1), 1, observed=Y),
    "sum_axis_1": lambda: pm.Normal(
        "y", (X * pm.Normal("w", 0, 1, shape=K)).sum(axis=1), 1, observed=Y
    ),
    "mean_axis_1_and_ones": lambda: pm.Normal(
        "y",
        pm.Normal("w") * pt.as_tensor(X).mean(axis=1) + pt.ones(pt.as_tensor(X).shape[0]),
        1,
        observed=Y,
    ),
    "cumsum_sort_max": lambda: _cumsum_sort_max(),
    "transposed_dot": lambda: pm.Normal(
        "y", (_weights().T @ pt.as_tensor(X).T).T[:, 0], 1, observed=Y
    ),
    "stacked_columns": lambda: pm.Normal(
        "y", pt.stack([X[:, 0], X[:, 1] * pm.Normal("w")], axis=1).sum(axis=1), 1, observed=Y
    ),
    "group_index": lambda: pm.Normal("y", pm.Normal("a", 0, 1, shape=4)[GROUP], 1, observed=Y),
    "multinomial": lambda: pm.Multinomial(
        "y", 5, pt.special.softmax(X @ pm.Normal("W", 0, 1, shape=(K, K)), axis=1), observed=TABLES
    ),
    "dirichlet_multinomial": lambda: pm.DirichletMultinomial(
        "y", 5, pt.exp(X @ pm.Normal("W", 0, 1, shape=(K, K))), observed=TABLES
    ),
    "normal_mixture": lambda: pm.NormalMixture(
        "y",
        pm.Dirichlet("p", np.ones(2)),
        pm.Normal("m", 0, 1, shape=2) + X[:, :2],
        1,
        observed=Y,
    ),
    "mixture": lambda: pm.Mixture(
        "y",
        pm.Dirichlet("p", np.ones(2)),
        [pm.Normal.dist(pm.Normal("m") * X[:, 0], 1), pm.StudentT.dist(nu=3, mu=0, sigma=2)],
        observed=Y,
    ),
    "zero_inflated_poisson": lambda: pm.ZeroInflatedPoisson(
        "y", 0.3, pt.exp(pm.Normal("b") * X[:, 0]), observed=COUNTS
    ),
    "hurdle_poisson": lambda: pm.HurdlePoisson(
        "y", 0.7, pt.exp(pm.Normal("b") * X[:, 0]), observed=COUNTS
    ),
    "censored": lambda: pm.Censored(
        "y",
        pm.Normal.dist(pm.Normal("b") * X[:, 0], 1),
        lower=-1,
        upper=1,
        observed=np.clip(Y, -1, 1),
    ),
    "custom_dist": lambda: pm.CustomDist(
        "y",
        pm.Normal("b") * X[:, 0],
        dist=lambda mu, size: pm.Normal.dist(mu, 1, size=size),
        observed=Y,
    ),
    "initval": lambda: pm.Normal(
        "y",
        X @ pm.Normal("w", 0, 1, shape=K, initval=np.array([0.1, 0.2, 0.3])),
        1,
        observed=Y,
    ),
    # every family the rule admits (issue 21, "each family"), not only one of each kind
    "two_arrays_elementwise": lambda: pm.Normal(
        "y", pm.Normal("a") * X[:, 0] + pm.Normal("b") * pt.exp(LABELS * 0.1), 1, observed=Y
    ),
    "normal_mixture_per_row_weights": lambda: pm.NormalMixture(
        "y", pt.special.softmax(_logits(), axis=1), pm.Normal("m", 0, 1, shape=2), 1, observed=Y
    ),
    "zero_inflated_binomial": lambda: pm.ZeroInflatedBinomial(
        "y", 0.3, 10, pm.math.sigmoid(pm.Normal("b") * X[:, 0]), observed=np.minimum(COUNTS, 10)
    ),
    "zero_inflated_negative_binomial": lambda: pm.ZeroInflatedNegativeBinomial(
        "y", 0.3, pt.exp(pm.Normal("b") * X[:, 0]), 2.0, observed=COUNTS
    ),
    "hurdle_negative_binomial": lambda: pm.HurdleNegativeBinomial(
        "y", 0.7, pt.exp(pm.Normal("b") * X[:, 0]), 2.0, observed=COUNTS
    ),
    "hurdle_gamma": lambda: pm.HurdleGamma(
        "y", 0.7, alpha=2.0, beta=pt.exp(pm.Normal("b") * X[:, 0]), observed=COUNTS * 0.5
    ),
    "hurdle_lognormal": lambda: pm.HurdleLogNormal(
        "y", 0.7, mu=pm.Normal("b") * X[:, 0], sigma=1.0, observed=COUNTS * 0.5
    ),
    "truncated": lambda: pm.Truncated(
        "y", pm.Normal.dist(pm.Normal("b") * X[:, 0], 1), lower=-3, upper=3, observed=Y
    ),
    "custom_dist_logp": lambda: pm.CustomDist(
        "y",
        pm.Normal("b") * X[:, 0],
        logp=lambda value, mu: pm.logp(pm.Normal.dist(mu, 1), value),
        observed=Y,
    ),
}


def build(form):
    with pm.Model() as model:
        FORMS[form]()
    return model


def points(model, count=3, seed=0):
    rng = np.random.default_rng(seed)
    start = model.initial_point()
    for _ in range(count):
        yield {k: v + rng.normal(0, 0.5, size=np.shape(v)) for k, v in start.items()}


def check_round_trip_and_scaling(model, mini, at, n, batch_size):
    """At each point of ``at``: ``full_data_model(mini)`` has ``model``'s logp, and the batch logp
    of ``y`` is ``n / batch_size`` times the original's row-wise logp of the drawn rows."""
    original, back = model.compile_logp(), mb.full_data_model(mini).compile_logp()
    value = mini.rvs_to_values[mini["y"]]
    batch = mini.compile_fn(
        [mini.logp(vars=[mini["y"]]), mb.index_of(value)],
        inputs=mini.value_vars,
        on_unused_input="ignore",
    )
    pointwise = model.compile_fn(
        model.logp(vars=[model["y"]], sum=False)[0],
        inputs=model.value_vars,
        on_unused_input="ignore",
    )
    for point in at:
        np.testing.assert_allclose(back(point), original(point), rtol=1e-10)
        logp, rows = batch(point)
        rowwise = np.asarray(pointwise(point)).reshape(n, -1).sum(axis=1)
        np.testing.assert_allclose(logp, n / batch_size * rowwise[rows].sum(), rtol=1e-10)


# pymc 5.28's Truncated (the hurdle's positive part) calls pytensor 2.38's scan the old way.
SCAN_WARNING = pytest.mark.filterwarnings("ignore:Scan return signature:DeprecationWarning")


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(f, marks=SCAN_WARNING)
        if f in ("hurdle_poisson", "hurdle_negative_binomial", "truncated")
        else f
        for f in FORMS
    ],
)
def test_accepted_forms_round_trip_and_scale_the_drawn_rows(form):
    model = build(form)
    mini = mb.minibatch_model(model, BATCH, random_seed=1)
    assert mini["y"].type.shape[0] == BATCH or (
        form == "custom_dist_logp" or pm.draw(mini["y"]).shape[0] == BATCH
    )
    check_round_trip_and_scaling(model, mini, points(model), N, BATCH)


def test_initial_values_are_kept_and_the_model_is_unchanged():
    model = build("initval")
    mini = mb.minibatch_model(model, BATCH)
    np.testing.assert_array_equal(mini.initial_point()["w"], [0.1, 0.2, 0.3])
    full = mb.full_data_model(mini)
    np.testing.assert_array_equal(full.initial_point()["w"], [0.1, 0.2, 0.3])
    assert model.rvs_to_initial_values[model["w"]] is not None


@pytest.mark.parametrize(
    ("likelihood", "match"),
    [
        (
            lambda: pm.CustomDist(
                "y",
                pm.Normal("b") * X[:, 0],
                dist=lambda mu, size: pm.Normal.dist(mu - mu.mean(), 1, size=size),
                observed=Y,
            ),
            r"'y' .*CustomDist_y.*dist graph: Sum.* reduces along the batch axis",
        ),
        (
            lambda: pm.Normal("y", pm.Normal("b") / pt.as_tensor(X).shape[0], 1, observed=Y),
            r"'y' .*True_div uses the number of rows N",
        ),
        (
            lambda: pm.Categorical("y", p=pt.special.softmax(_logits(), axis=0), observed=LABELS),
            r"'y' .*Softmax.* along the batch axis \(axis 0\)",
        ),
    ],
    ids=["custom_dist_centred", "divide_by_n", "softmax_over_rows"],
)
def test_refused_forms_name_the_variable_and_the_node(likelihood, match):
    with pm.Model() as model:
        likelihood()
    with pytest.raises(ValueError, match=match):
        mb.minibatch_model(model, BATCH)


def test_the_states_of_shapes():
    x = pt.matrix("x")
    assert output_states(x.shape.owner, [0]) == [Entry(0)]
    rows, columns = x.shape[0], x.shape[1]
    assert propagate({x: 0}, [rows])[rows] == COUNT
    assert propagate({x: 0}, [columns]).get(columns) is None
    ones = pt.ones(x.shape[0])
    assert propagate({x: 0}, [ones])[ones] == 0
    with pytest.raises(NotRowwiseError, match="uses the number of rows"):
        propagate({x: 0}, [x.sum(axis=1) / x.shape[0]])


def test_index_of_an_expression_is_the_index_of_its_batch():
    yb = mb.Minibatch(X, batch_size=BATCH, random_seed=3)
    for expr, axis in [(yb * 2, 0), (yb[:, 0], 0), (pt.exp(yb), 0), (yb.T, 1)]:
        rows, value = pm.draw([mb.index_of(expr, axis=axis), yb], random_seed=4)
        np.testing.assert_array_equal(value, X[rows])
    with pytest.raises(ValueError, match=r"axis 0 of .* is not subsampled"):
        mb.index_of(yb.T, axis=0)


def test_index_of_refuses_mixed_calls_and_what_is_not_rowwise():
    xb = mb.Minibatch(X, batch_size=BATCH, random_seed=3)
    yb = mb.Minibatch(Y, batch_size=BATCH, random_seed=5)
    with pytest.raises(ValueError, match="combines batches drawn by 2 different indices"):
        mb.index_of(xb[:, 0] + yb)
    with pytest.raises(ValueError, match=r"not row-wise in its batch: Sum.* batch axis"):
        mb.index_of(xb - xb.sum(axis=0))


def test_the_epoch_refusal_says_what_epoch_sampling_promises():
    with pytest.raises(ValueError, match=r"each row exactly once per pass .* can hold a row twice"):
        mb.Minibatch(Y, batch_size=N + 1, sampling="epoch")
    with pytest.raises(ValueError, match="draws each row at most once per batch"):
        mb.Minibatch(Y, batch_size=N + 1, sampling="without_replacement")


def test_index_of_an_expression_of_a_two_axis_batch_has_both_indices():
    data = np.arange(60.0).reshape(10, 6)
    rb = mb.Minibatch(data, batch_size=[4, 3], random_seed=6)
    expr = (rb * 2).T
    rows, cols, value = pm.draw([mb.index_of(expr, 1), mb.index_of(expr, 0), expr], random_seed=7)
    np.testing.assert_array_equal(value, 2 * data[np.ix_(rows, cols)].T)
    rows, value = pm.draw([mb.index_of(rb.sum(axis=1), 0), rb.sum(axis=1)], random_seed=8)
    assert value.shape == (4,)


def test_messages_name_an_unnamed_batch_by_its_call_site():
    line = inspect.currentframe().f_lineno + 1
    xb = mb.Minibatch(Y, batch_size=BATCH)
    yb = mb.Minibatch(Y, batch_size=BATCH)
    site = f"'minibatch_0' (the Minibatch call at test_rowwise.py:{line})"
    drawn = re.escape(f"the minibatch {site} draws that axis")
    with pytest.raises(ValueError, match=drawn), pm.Model():
        pm.Normal("y", 0, 1, observed=xb, total_size=N - 1)
    with pytest.raises(ValueError, match=re.escape(f"axis 1 of {site} is not subsampled")):
        mb.index_of(xb, axis=1)
    with pytest.raises(ValueError, match=f"test_rowwise.py:{line}.*test_rowwise.py:{line + 1}"):
        mb.index_of(xb + yb)
