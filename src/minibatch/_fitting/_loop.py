"""``mb.fit``'s loop: calls of many steps, cut where a decision, a window swap, a callback's
``every`` or the cap falls.

It stands in for PyMC's ``Inference._iterate_with_loss`` on the ``Inference`` of an ``mb.fit``
(an instance attribute: ``pm.fit`` keeps PyMC's loop), so ``Inference.fit`` and ``refine`` run
it with everything they do around it.  The loop runs the fit in *stretches*, each as long as
fits before the next event: the end of the rule's batch being filled (where it decides: stop,
halve), every streamed window's swap, each multiple of a callback's ``every`` and the cap
``n``; so the fit takes every decision, sees every window and runs every callback at the same
step as with ``k = 1``, and its result does not depend on ``k``.

A stretch runs in calls of up to ``k`` steps (:meth:`Steps.plan <._scan.Steps.plan>`).  On C
and Numba a call runs any count and returns when its steps are done, so a stretch is one call
after another, each checked before the next.  On JAX a call has a static length (the longest
compiled length that fits) and returns at once, its results to come: the calls of a stretch
are all started back to back (:meth:`Steps.launch <._scan.Steps.launch>`, each keeping what it
left), then checked in order (:meth:`Guard.settle <._rollback.Guard.settle>`), so the device
never waits on Python between them.  What a stretch leaves over (fewer steps than the shortest
call) runs through :attr:`Steps.one`.  A call with anything non-finite is undone (the calls
started after it in its stretch with it) and its steps rerun one at a time
(:mod:`._rollback`).  On JAX the stored data are held on the device
(:meth:`Steps.resident <._scan.Steps.resident>`).

After each call: its losses into the history, the rule (``StopIteration`` when it stops the
fit) and the progress bar.  After each stretch: the user's callbacks (``i`` is the number of
steps done) and the streams' count (which swaps the next window in when it is due).  Ctrl-C
(``KeyboardInterrupt``) and ``StopIteration`` end the loop after the last call checked, with
the values that call left, as PyMC's loop ends at a step.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from pymc.progress_bar import CustomProgress
from pymc.variational.inference import State
from rich.console import Console
from rich.progress import Progress, TextColumn

from minibatch._streamfit import driven


def iterate(
    inference: Any,
    s: int,
    n: int,
    run: Any,
    progressbar: bool,
    progressbar_theme: Any,
    callbacks: list[Any],
) -> Any:
    """Run ``n`` steps of ``run`` (an ``mb.fit`` run: ``steps``, ``guard``, ``averager``) from
    step ``s``; PyMC's ``_iterate_with_loss`` signature and result."""
    steps, guard, averager = run.steps, run.guard, run.averager
    approx = inference.approx
    scores = np.full(n, np.nan)
    done = 0
    with (
        driven(steps.one, fresh=s == 0) as refresh,
        steps.resident(skip=[var for stream in refresh.streams for var in stream.shared]),
    ):
        moving = [stream for stream in refresh.streams if not stream.static]
        try:
            with _progress(progressbar, progressbar_theme) as progress:
                task = progress.add_task("Fitting:", total=n, loss="") if progressbar else None

                def show(done: int, count: int) -> None:  # the progress bar, after each call
                    if progressbar and count:
                        loss = np.nanmean(scores[max(0, done - 1000) : done])
                        progress.update(task, advance=count, loss=f"Average Loss = {loss:,.5g}")

                while done < n:
                    room = min(
                        n - done,
                        averager.to_decision,
                        *(m.to_refresh for m in moving),
                        *(every - (s + done) % every for every in run.everys),
                    )
                    start = done
                    launched = [steps.launch(count) for count in steps.plan(room)]
                    singles = 0 if launched else 1  # a single step is all that fits
                    try:
                        for call in launched:
                            losses = guard.settle(call.losses, call.finite, call.values)
                            if losses is None:  # undone (and any call after it): one at a time
                                singles = call.count
                                break
                            scores[done : done + call.count] = losses
                            done += call.count
                            averager.add_steps(call.count, *steps.sums(call), call.values)
                            show(done, call.count)
                    except KeyboardInterrupt:  # the values after the last call kept
                        guard.undo()
                        raise
                    for _ in range(singles):
                        scores[done] = guard(steps.one)
                        done += 1
                        averager(approx, None, s + done)
                    show(done, singles)
                    for callback in callbacks:
                        callback(approx, scores[:done], s + done)
                    refresh.advance(approx, done - start)
        except (KeyboardInterrupt, StopIteration):
            pass
    inference.hist = np.concatenate([inference.hist, scores[:done]])
    return State(s + done, step=run, callbacks=callbacks, score=True)


def _progress(progressbar: bool, theme: Any) -> Any:
    """PyMC's progress bar, or nothing (not built when not shown: it costs more than a call)."""
    if not progressbar:
        return contextlib.nullcontext()
    return CustomProgress(
        *Progress.get_default_columns(),
        TextColumn("{task.fields[loss]}"),
        console=Console(theme=theme),
    )
