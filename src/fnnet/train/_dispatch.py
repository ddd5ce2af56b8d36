"""How `fit` runs an epoch: one compiled scan, or one jitted step per mini-batch (private).

Measured on XLA:CPU (benchmarks/bench_dispatch.py), a training step containing XLA's
convolution (`conv_general_dilated`) runs 7 to 18 times slower inside `lax.scan` than
dispatched step by step, and fully unrolled still 1.3 to 1.5 times slower; models without it
(dense, recurrent, attention, and fnnet's Conv2D, which on CPU is patches and a matmul) run
1.3 to 1.6 times faster inside the scan than step by step. So on CPU a step holding XLA's
convolution (a layer of one's own) is dispatched step by step and everything else runs as one
scan per epoch. Other backends were not measured here and always get the scan.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax

from fnnet import _checks
from fnnet.train.step import train_step_fn

DISPATCHES = ("auto", "scan", "step")  # "scan" and "step" are epoch.DISPATCHES
_SLOW_IN_CPU_LOOPS = frozenset({"conv_general_dilated"})


def primitives(jaxpr: Any) -> Iterator[str]:
    """Names of every primitive in `jaxpr`, nested jaxprs (scan, cond, pjit, ...) included."""
    for equation in jaxpr.eqns:
        yield equation.primitive.name
        for value in equation.params.values():
            for item in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(item, "jaxpr", item)  # a ClosedJaxpr holds a Jaxpr
                if hasattr(inner, "eqns"):
                    yield from primitives(inner)


def choose(dispatch: str, step_fn, *example_args) -> str:
    """Resolves ``dispatch="auto"`` to "scan" or "step" for the step ``step_fn(*example_args)``
    (traced abstractly, nothing runs)."""
    _checks.one_of("fit", "dispatch", dispatch, DISPATCHES)
    if dispatch != "auto":
        return dispatch
    if jax.default_backend() != "cpu":
        return "scan"
    jaxpr = jax.make_jaxpr(step_fn)(*example_args)
    return "step" if _SLOW_IN_CPU_LOOPS.intersection(primitives(jaxpr.jaxpr)) else "scan"


def resolve(dispatch: str, model, loss_fn, optimizer, state, inputs_spec, targets_spec) -> str:
    """`choose` for fit's guarded step on one mini-batch of the given specs."""
    step = train_step_fn(model, loss_fn, optimizer, guard=True)
    return choose(
        dispatch, lambda s, x, y: step(s, lambda i: (x, y), True), state, inputs_spec, targets_spec
    )
