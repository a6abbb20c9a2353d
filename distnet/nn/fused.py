"""The original's update (L2, then Nesterov) in one compiled pass: optional, with numba.

NumPy applies L2 and the Nesterov step to a parameter vector in seven passes over whole vectors,
eight with the sum of two workers' gradients, and for a large network it is that memory traffic,
not the arithmetic, that the update costs (``python -m benchmarks.step_anatomy``). With numba
installed (``pip install numba``, or the ``fast`` extra: ``pip install ".[fast]"``),
:class:`~distnet.nn.UpdateRule` hands the update to :func:`nesterov_update`, which goes through
the vectors once and does, element by element, the same float operations in the same order as
the NumPy path. numba compiles without fastmath: no fused multiply-add, no reassociation, so the
results are bit-for-bit those of NumPy (the tests compare the two on every dtype and split).

numba is imported on first use, so a process that never updates parameters (a Ray worker)
never loads it.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ..signals import interruptions_held


@functools.cache
def _kernel():
    """The compiled kernel, or None where numba is not installed."""
    try:
        from ._fused_kernel import nesterov_runs
    except ImportError:
        return None
    return nesterov_runs


def available() -> bool:
    """Whether numba is installed, so that :class:`~distnet.nn.UpdateRule` uses the one-pass update."""
    return _kernel() is not None


def segments(size: int, weight_slices: Sequence[slice], keep: float,
             dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The vector of ``size`` parameters cut into runs that are all weights or all biases:
    (bounds, keeps), run ``s`` being ``bounds[s]:bounds[s + 1]``, its L2 factor ``keeps[s]``
    (``keep`` for weights, 1 for biases, in ``dtype``)."""
    is_weight = np.zeros(size, dtype=bool)
    for weights in weight_slices:
        is_weight[weights] = True
    starts = np.flatnonzero(np.diff(is_weight.astype(np.int8))) + 1
    bounds = np.concatenate(([0], starts, [size])).astype(np.int64)
    factor = np.dtype(dtype).type
    return bounds, np.where(is_weight[bounds[:-1]], factor(keep), factor(1))


def nesterov_update(params: np.ndarray, velocity: np.ndarray, grads: Sequence[np.ndarray],
                    learning_rate: float, momentum: float, bounds: np.ndarray, keeps: np.ndarray) -> None:
    """Multiply each run of ``params`` by its L2 factor, then apply Nesterov(``learning_rate``,
    ``momentum``) with the gradient ``grads[0] + grads[1]`` (or ``grads[0]``), in place and in one
    pass. ``bounds`` and ``keeps`` come from :func:`segments`. Needs numba (:func:`available`).
    """
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError("the one-pass update needs numba: pip install numba")
    if not 1 <= len(grads) <= 2:
        raise ValueError(f"the one-pass update sums one or two gradients, got {len(grads)}")
    # The kernel runs without bounds checks: a shorter vector would be read and written past its end.
    # (Checked on every step, so the message is made only for a mismatch.)
    shape, dtype = params.shape, params.dtype
    first, last = grads[0], grads[-1]
    if (velocity.shape != shape or first.shape != shape or last.shape != shape or velocity.dtype != dtype
            or first.dtype != dtype or last.dtype != dtype or bounds[-1] != params.size):
        _refuse(params, velocity, grads, bounds)
    arguments = (params, velocity, first, last, len(grads) == 2, bounds, keeps, dtype.type(learning_rate),
                 dtype.type(momentum))
    # numba compiles (or loads from its cache) a kernel for each new set of argument types at its
    # first call; a Ctrl-C then lands in numba's callbacks, which swallow it (the run went on to
    # its end) or break off the compiling with a traceback. Held until the call is done. What
    # varies between calls: the dtype, and whether the gradients are writable (Ray hands them
    # over read-only; numba types those apart); the rule's own vectors are always contiguous and
    # writable. (A key of every array's every flag would cost a microsecond a step.)
    types = (dtype, first.flags.writeable, last.flags.writeable)
    if types in _compiled_for:
        kernel(*arguments)
        return
    with interruptions_held():
        kernel(*arguments)
    _compiled_for.add(types)


# The argument types nesterov_update has called the kernel with (see there).
_compiled_for: set[tuple] = set()


def _refuse(params: np.ndarray, velocity: np.ndarray, grads: Sequence[np.ndarray], bounds: np.ndarray) -> None:
    """ValueError naming the vector that does not fit ``params`` (see :func:`nesterov_update`)."""
    for name, vector in (("velocity", velocity), *((f"gradient {i}", grad) for i, grad in enumerate(grads))):
        if vector.shape != params.shape or vector.dtype != params.dtype:
            raise ValueError(f"the one-pass update needs the {name} shaped as the parameters "
                             f"{params.shape} {params.dtype}, got {vector.shape} {vector.dtype}")
    raise ValueError(f"the runs end at {bounds[-1]}, the parameters at {params.size}")
