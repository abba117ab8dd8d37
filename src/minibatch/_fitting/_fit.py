"""``mb.fit``: PyMC's fit, with the averaged iterates installed and a rule that stops it.

The steps are PyMC's own: :func:`fit` builds the ``Inference`` as ``pm.fit`` does and runs its
``fit`` (or ``refine``, to continue), so everything that works with ``pm.fit`` (callbacks, the
progress bar, ``more_replacements``, ``compile_kwargs``, streamed windows, fresh epochs) works
the same.  The rule (:mod:`._rule`) rides along as the first callback; when the fit ends, the
approximation's parameters are set to the average of the stationary iterates, and
``approx.report`` (:class:`~minibatch.FitReport`) says what happened.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from pymc.data import MinibatchOp
from pymc.variational.inference import Inference
from pytensor.graph.traversal import ancestors

from minibatch import _upstream
from minibatch._compat import SCAN_COPIES_GENERATORS, TAKE_OPS
from minibatch._fitting._loop import iterate
from minibatch._fitting._report import FitReport, NotConvergedWarning
from minibatch._fitting._rollback import Guard, nonfinite_variables
from minibatch._fitting._rule import Averager, Rule
from minibatch._fitting._scales import layout_of
from minibatch._fitting._scan import Steps, linker_of
from minibatch._gather import MinibatchGatherOp
from minibatch._observed import warn_unscaled
from minibatch._streamfit import streams_of

DEFAULT_CAP = 300_000
"""Steps run at most when ``n`` is not given."""

LEARNING_RATE = 0.1
"""Adam's first step size; the rule halves it while the stationary iterates jitter too wide."""

BETA2 = 0.99
"""Adam's second-moment decay: a memory of ~100 steps, so the transient's large gradients do
not shrink the steps for thousands of steps after it (as 0.999 does)."""

_METHODS = {"advi": pm.ADVI, "fullrank_advi": pm.FullRankADVI}
_REFUSED = {"svgd", "asvgd"}
_RUN = "_minibatch_fit_run"  # the attribute of an Inference that holds its mb.fit state


class _Run:
    """One fit's rule, its compiled steps and their guard, and the callbacks of the user, whose
    ``StopIteration`` is recorded.  PyMC's ``Inference`` keeps it as its step function (its
    ``State.step``), which :func:`._loop.iterate` runs; called, it is one guarded step, and it
    answers for the compiled single step (``maker``, ``profile``)."""

    def __init__(self, averager: Averager, callbacks: Sequence[Callable[..., Any]]) -> None:
        self.averager = averager
        self.steps: Steps | None = None
        self.guard: Guard | None = None
        self.stopped_by_callback = False
        self.callbacks = [self._watch(cb) for cb in callbacks]
        # the every= of callbacks such as CheckParametersConvergence
        everys = [getattr(cb, "every", None) for cb in callbacks]
        self.everys = [
            int(e) for e in everys if isinstance(e, int) and not isinstance(e, bool) and e > 0
        ]

    def __call__(self) -> Any:
        """One guarded step, as PyMC's step function takes one."""
        assert self.guard is not None and self.steps is not None
        return self.guard(self.steps.one)

    def __getattr__(self, name: str) -> Any:  # maker, profile, ...: the compiled single step's
        steps = self.__dict__.get("steps")
        if steps is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(steps.one, name)

    def _watch(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        def watched(approx: Any, losses: Any, i: int) -> None:
            try:
                callback(approx, losses, i)
            except StopIteration:
                self.stopped_by_callback = True
                raise

        return watched


def fit(
    n: int | None = None,
    method: str | Inference = "advi",
    model: pm.Model | None = None,
    *,
    random_seed: Any = None,
    tolerance: float = 0.1,
    stop: bool = True,
    start: Any = None,
    start_sigma: Any = None,
    inf_kwargs: dict[str, Any] | None = None,
    obj_optimizer: Any = None,
    callbacks: Sequence[Callable[..., Any]] | None = None,
    steps_per_call: int | None = None,
    **kwargs: Any,
) -> Any:
    """Fit a variational approximation until its averaged parameters are accurate, and say so.

    Takes what :func:`pymc.fit` takes and returns the same kind of ``Approximation``, whose
    parameters are the **average of the stationary iterates** rather than the last one, and whose
    ``report`` attribute (:class:`~minibatch.FitReport`) records the fit.  With ``n=None`` the fit
    runs until the iterates are stationary (split-R-hat) and the average's Monte Carlo error is
    small against the scale of each parameter (``tolerance``), at most ``DEFAULT_CAP`` = 300,000
    steps; a fit that ends first warns with :class:`~minibatch.NotConvergedWarning`.

    Parameters
    ----------
    n : int, optional
        The most steps to run (the cap); with ``stop=False``, the steps to run.
    method : {"advi", "fullrank_advi"} or pymc Inference
        An ``Inference`` that :func:`fit` returned (``approx.report.inference``) continues that
        fit, as ``Inference.refine`` does: the same optimiser state, step size and average.
    model : pymc.Model, optional
        The model (the one in context by default).
    random_seed : int, optional
        Fixes every draw, and with it every step, decision and the averaged result.
    tolerance : float
        The root-mean-square error accepted for the averaged parameters, in q's standard
        deviations for means and on the log scale for standard deviations; the largest error
        over all parameters is then at most ``2.5 * tolerance`` (with probability 0.95).
    stop : bool
        ``False`` runs exactly ``n`` steps, still averaging (for benchmarks and comparisons).
    start, start_sigma, inf_kwargs
        As for :func:`pymc.fit`.
    obj_optimizer : optional
        A PyMC optimiser (``pm.adam(learning_rate=...)``, ...).  By default, Adam from a step of
        0.1, halved by the rule while the stationary iterates jitter widely; a user's optimiser
        is used as given (its step is never changed), and its iterates are still averaged and
        the fit still stopped.
    callbacks : list, optional
        ``pm.fit`` callbacks, run after the rule at the end of each stretch of calls (see
        ``steps_per_call``): ``i`` is the number of steps done; stretches end at each multiple
        of a callback's ``every``, where the rule decides, where a window swaps and at ``n``.
    steps_per_call : int, optional
        The most optimiser steps per compiled call (a pytensor ``Scan``; ``lax.scan`` on JAX).
        Calls are cut where the rule decides, a streamed window is swapped, a callback's
        ``every`` falls and ``n`` ends, so the fit takes the same steps, decisions and result
        whatever the value (to floating-point rounding); only its speed changes
        (docs/performance.md).  On C and Numba a call runs any count up to it; on JAX the
        Scan's length is static, so a call runs one of the compiled lengths, the longest that
        fits, back to back (the calls of a stretch are started without waiting for each
        other's results), and a step left over runs alone.  The default
        (:func:`default_steps_per_call`) is 400 on C (pytensor 3) and Numba, 1 on pytensor
        2.38's C backend, and 1600 on JAX, with calls of 25, 100 and 400 steps too (or of the
        largest divisor of 25 and of the callbacks' ``every`` and 4, 16 and 64 times it).
    **kwargs
        Passed to ``Inference.fit`` as ``pm.fit`` passes them: ``progressbar``, ``obj_n_mc``,
        ``more_replacements``, ``compile_kwargs``, ``total_grad_norm_constraint``, ...

    Returns
    -------
    Approximation
        With the averaged parameters, the losses of every step in ``hist`` and the record of the
        fit in ``report``.

    Examples
    --------
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> y = np.random.default_rng(0).normal(3.0, 1.0, size=1000)
    >>> with pm.Model():
    ...     mu = pm.Normal("mu", 0.0, 10.0)
    ...     _ = pm.Normal("y", mu, 1.0, observed=mb.Minibatch(y, batch_size=100))
    ...     approx = mb.fit(random_seed=1, progressbar=False)
    >>> approx.report.converged
    True
    >>> post_sd = 1 / np.sqrt(1 / 100 + 1000)  # the exact posterior sd
    >>> bool(abs(approx.mean.eval()[0] - y.sum() / (1000 + 1 / 100)) < 0.3 * post_sd)
    True
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
        raise ValueError(f"n must be a positive int (the most steps to run) or None, got {n!r}")
    if not (isinstance(tolerance, float | int) and 0 < tolerance < 1):
        raise ValueError(f"tolerance must be a number in (0, 1), got {tolerance!r}")
    if not stop and n is None:
        raise ValueError("stop=False runs exactly n steps: give n")
    if steps_per_call is not None and (
        isinstance(steps_per_call, bool)
        or not isinstance(steps_per_call, int | np.integer)
        or steps_per_call < 1
    ):
        raise ValueError(
            "steps_per_call must be a positive int (optimiser steps per compiled call) or "
            f"None (chosen from the backend), got {steps_per_call!r}"
        )
    _upstream.install()
    if isinstance(method, Inference) and hasattr(method, _RUN):
        return _continue(method, n, tolerance, stop, kwargs)
    inference = _inference(method, model, random_seed, start, start_sigma, inf_kwargs)
    layout = layout_of(inference.approx)
    learning_rate = None
    if obj_optimizer is None:
        learning_rate = {kind: _rate(kind) for kind in ("mean", "spread")}
        obj_optimizer = _grouped_adam(layout.params[1:], learning_rate)
    rule = Rule(tolerance=float(tolerance))
    run = _Run(Averager(layout, rule, learning_rate, stop), callbacks or [])
    setattr(inference, _RUN, run)  # on the object, not in a registry: it dies with the fit
    _compile_steps(inference, run, learning_rate, steps_per_call)
    kwargs.pop("score", None)  # the losses are the history: always scored
    began = time.perf_counter()
    inference.fit(
        int(n or DEFAULT_CAP), obj_optimizer=obj_optimizer, callbacks=run.callbacks, **kwargs
    )
    return _finish(inference, run, int(n or DEFAULT_CAP), time.perf_counter() - began)


def _compile_steps(
    inference: Inference, run: _Run, rates: dict[str, Any] | None, steps_per_call: int | None
) -> None:
    """Have this inference compile its steps our way: PyMC's step graph, built once, compiled as
    one step and as ``k`` steps per call (:mod:`._scan`), guarded (:mod:`._rollback`), and run
    by our loop (:mod:`._loop`); the rule's batches span whole stream windows.

    ``step_function`` and ``_iterate_with_loss`` are replaced on this ``Inference`` object alone
    (instance attributes), so ``pm.fit`` and other inferences are untouched."""
    objective, approx, averager = inference.objective, inference.approx, run.averager

    def step_function(
        score: bool = True,
        compile_kwargs: dict[str, Any] | None = None,
        fn_kwargs: dict[str, Any] | None = None,
        more_replacements: Any = None,
        **update_kwargs: Any,
    ) -> _Run:
        warn_unscaled(approx.model, more_replacements)  # as ObjectiveFunction.step_function
        compile_kwargs = compile_kwargs or fn_kwargs
        steps = Steps(
            objective,
            averager.layout,
            compile_kwargs,
            more_replacements=more_replacements,
            **update_kwargs,
        )
        periods = [s.steps_per_window for s in streams_of(steps.inputs) if not s.static]
        if periods:
            averager.span(math.lcm(*periods))
        mode = (compile_kwargs or {}).get("mode")
        k, shorter = default_steps_per_call(mode, averager.rule.batch_size, run.everys)
        if steps_per_call:
            k, shorter = steps_per_call, ()
        run.steps = steps.compile(k, shorter)
        run.guard = Guard(
            steps.one,
            functools.partial(nonfinite_variables, approx, averager.layout),
            rates,
        )
        return run

    objective.step_function = step_function
    inference._iterate_with_loss = functools.partial(iterate, inference)


LONGEST_CALL = 400
"""The most steps per call that :func:`default_steps_per_call` chooses on C and Numba."""

SHORT_CALL_MAX = 32
"""On JAX, the most steps of the shortest call (see :func:`default_steps_per_call`)."""

JAX_LADDER = (1, 4, 16, 64)
"""On JAX, the static lengths compiled, as multiples of the shortest."""


def default_steps_per_call(
    mode: Any, batch: int, everys: Sequence[int] = ()
) -> tuple[int, tuple[int, ...]]:
    """The most steps per compiled call for a backend, and the shorter static lengths that JAX
    also compiles (``(k, shorter)``).

    A call costs a fixed overhead (the call into the compiled function, the losses and sums
    read back, the rule, the callbacks: 50-300 µs) besides its steps, so the calls are as
    long as the fit allows, cut where the rule decides (after 25 steps at first, the batches
    doubling as the fit goes on), where a callback's ``every`` falls and where a window swaps.
    On C and Numba one compiled Scan runs any count up to :data:`LONGEST_CALL`; a call
    returns when its steps are done, so a longer one would only delay Ctrl-C.  JAX compiles a
    Scan per static length (:data:`JAX_LADDER`): the shortest, of which the rule's first
    batch length ``batch`` and every ``every`` are multiples (their largest divisor up to
    :data:`SHORT_CALL_MAX`), and 4, 16 and 64 times it, each compiled when first run.  A call
    runs the longest that fits (a stretch of 350 steps: 100, 100, 100, 25, 25), and the
    calls of a stretch run back to back, so each call saved is one launch of a compiled
    program less.  On pytensor 2.38's C backend (whose Scan copies each generator at every
    step, pytensor#2002) a step per call is faster: 1.

    >>> default_steps_per_call("JAX", 25), default_steps_per_call("JAX", 168, [100])
    ((1600, (25, 100, 400)), (256, (4, 16, 64)))
    >>> default_steps_per_call("NUMBA", 25)
    (400, ())
    """
    linker = linker_of(mode)
    if linker == "JAXLinker":
        period = math.gcd(batch, *everys)
        short = max(d for d in range(1, SHORT_CALL_MAX + 1) if period % d == 0)
        *shorter, longest = (short * times for times in JAX_LADDER)
        return (longest, tuple(shorter)) if short > 1 else (1, ())
    if linker != "NumbaLinker" and SCAN_COPIES_GENERATORS:
        return 1, ()
    return LONGEST_CALL, ()


def _rate(kind: str) -> Any:
    value = np.asarray(LEARNING_RATE, dtype=pytensor.config.floatX)
    return pytensor.shared(value, name=f"mb_fit_step_{kind}")


def _grouped_adam(spreads: Sequence[Any], rates: dict[str, Any]) -> Callable[..., Any]:
    """Adam with one step size for the spread parameters and one for everything else."""

    def optimizer(grads: Sequence[Any], params: Sequence[Any]) -> dict[Any, Any]:
        updates: dict[Any, Any] = {}
        for grad, param in zip(grads, params, strict=True):
            rate = rates["spread"] if any(param is p for p in spreads) else rates["mean"]
            updates.update(pm.adam([grad], [param], learning_rate=rate, beta2=BETA2))
        return updates

    return optimizer


def _inference(
    method: str | Inference,
    model: pm.Model | None,
    random_seed: Any,
    start: Any,
    start_sigma: Any,
    inf_kwargs: dict[str, Any] | None,
) -> Inference:
    """The ``Inference`` that ``pm.fit`` would build for these arguments."""
    if isinstance(method, Inference):
        return method
    if not isinstance(method, str):
        raise TypeError(
            f"method must be 'advi', 'fullrank_advi' or a pymc Inference, got {method!r}"
        )
    name = method.lower()
    if name in _REFUSED:
        raise NotImplementedError(
            f"mb.fit does not run {method!r}: its approximation is a set of particles, not a "
            "distribution with one mean and sd per coordinate, so the rule has no scale to "
            "measure errors in, and averaging each particle over steps would pull the "
            "particles together (their spread is the answer). Run it with pm.fit(method="
            f"{name!r}); mb.Minibatch batches and their scaling work there."
        )
    if name not in _METHODS:
        raise KeyError(
            f"method must be one of {sorted(_METHODS)} or a pymc Inference, got {method!r}"
        )
    options = dict(inf_kwargs or {})
    if random_seed is not None:
        options["random_seed"] = random_seed
    if start is not None:
        options["start"] = start
    if start_sigma is not None:
        if name != "advi":
            raise NotImplementedError("start_sigma is only available for method 'advi'")
        options["start_sigma"] = start_sigma
    model = pm.modelcontext(model)
    if name == "fullrank_advi":
        local = local_variables(model)
        if local:
            raise NotImplementedError(
                f"mb.fit does not run 'fullrank_advi' on a model with local latent variables "
                f"({local}: one value per data row, indexed by a minibatch index): its "
                "Cholesky factor has one entry per pair of coordinates, O(N^2) for N rows, "
                "and each step would update all of them. Use method='advi' (mean-field), "
                "which is O(N)."
            )
    return _METHODS[name](model=model, **options)


def local_variables(model: pm.Model) -> list[str]:
    """The free variables that enter an observed density indexed by a minibatch index
    (``z[mb.index_of(xb)]``, or the same written by ``mb.minibatch_model(local=...)``)."""
    free = set(model.free_RVs)
    found: dict[str, None] = {}
    for var in ancestors(model.observed_RVs):
        node = var.owner
        if node is None:
            continue
        if isinstance(node.op, MinibatchGatherOp):  # gathered with the data of one call
            found.update(dict.fromkeys(v.name for v in node.inputs[1:] if v in free))
        elif isinstance(node.op, TAKE_OPS):
            base, *indices = node.inputs
            if base in free and any(_drawn_index(i) for i in indices):
                found[base.name] = None
    return list(found)


def _drawn_index(var: Any) -> bool:
    """Whether ``var`` is computed from integers that a minibatch draws (the index, or gathered
    positions), of ``mb.Minibatch`` or ``pm.Minibatch``."""
    return any(
        v.owner is not None
        and isinstance(v.owner.op, MinibatchOp)
        and str(v.type.dtype).startswith("int")
        for v in ancestors([var])
    )


def _continue(
    inference: Inference, n: int | None, tolerance: float, stop: bool, kwargs: dict[str, Any]
) -> Any:
    """Run more steps of a fit that :func:`fit` made, from its last iterate."""
    if kwargs.keys() - {"progressbar"}:
        raise TypeError(
            "continuing a fit reuses its compiled step: only n, tolerance, stop and progressbar "
            f"can be given, not {sorted(kwargs.keys() - {'progressbar'})}"
        )
    run: _Run = getattr(inference, _RUN)
    averager = run.averager
    averager.stop = stop
    averager.threshold = Rule(tolerance=float(tolerance)).threshold(averager.layout.size)
    averager.report.threshold = averager.threshold
    averager.layout.write(averager.last)
    cap = int(n or DEFAULT_CAP)
    began = time.perf_counter()
    inference.refine(cap, progressbar=kwargs.get("progressbar", True))
    return _finish(inference, run, cap, time.perf_counter() - began, steps_before=averager.steps)


def _finish(
    inference: Inference, run: _Run, cap: int, seconds: float, steps_before: int = 0
) -> Any:
    """Install the average, complete the loss history, fill and attach the report; warn."""
    averager = run.averager
    approx = inference.approx
    done = averager.steps - steps_before
    approx.hist = inference.hist
    averager.layout.write(averager.average())
    report: FitReport = averager.summarise()
    report.rollbacks = run.guard.rollbacks if run.guard is not None else 0
    report.seconds += seconds
    report.inference = inference
    if averager.converged and averager.stop:
        report.reason = "converged"
    elif run.stopped_by_callback:
        report.reason = "callback"
    elif done >= cap:
        report.reason = "cap" if averager.stop else "fixed"
    else:
        report.reason = "interrupted"
    approx.report = report
    if (averager.stop and not report.converged) or report.reason == "interrupted":
        what = {
            "cap": f"reached its cap of {cap} steps",
            "callback": "was stopped by a callback",
            "interrupted": "was interrupted",
        }.get(report.reason, report.reason)
        warnings.warn(
            f"mb.fit {what} before the iterates' average met its tolerance; the approximation "
            f"holds the average so far. {report.summary()}. Continue with "
            "mb.fit(n, method=approx.report.inference).",
            NotConvergedWarning,
            stacklevel=3,
        )
    run.stopped_by_callback = False
    return approx
