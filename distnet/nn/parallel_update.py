"""ParallelUpdate: sum several gradients and apply one update, split over threads.

Every optimizer rule and the original's L2 act element by element, so the update of a large
parameter vector can run on contiguous parts of it side by side and give bit-for-bit the values
one :class:`~distnet.nn.UpdateRule` gives on the whole vector. NumPy releases the GIL inside its
loops over large arrays, and the one-pass update of :mod:`distnet.nn.fused` is compiled without it,
so threads are enough.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..checks import instance_of
from ..errors import ConfigError
from .optimizers import UpdateRule, check_gradients, optimizer_from_spec

# Below about this many elements per part, handing a part to a thread costs more than it saves.
MIN_PART_SIZE = 1 << 18


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the platform reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parts_for(size: int, min_part_size: int = MIN_PART_SIZE, cores: int | None = None) -> int:
    """How many parts to split an update of ``size`` parameters into: at most one per usable core,
    and none smaller than ``min_part_size``."""
    return max(1, min(cores or usable_cores(), size // min_part_size))


class _Part:
    """The update of ``params[start:stop]``, with its own optimizer state of that length."""

    def __init__(self, start: int, stop: int, optimizer_spec: dict, l2: float,
                 weight_slices: Sequence[slice]):
        self.start, self.stop = start, stop
        # The network's weight slices that fall inside this part, shifted to the part's origin.
        own_weights = [slice(max(w.start, start) - start, min(w.stop, stop) - start)
                       for w in weight_slices if max(w.start, start) < min(w.stop, stop)]
        # A part of biases only has nothing to decay (UpdateRule refuses L2 without weights).
        self.rule = UpdateRule(optimizer_from_spec(optimizer_spec), l2 if own_weights else 0.0, own_weights)

    def apply_sum(self, params: np.ndarray, grads: Sequence[np.ndarray], scale: float) -> None:
        own = slice(self.start, self.stop)
        self.rule.apply_sum(params[own], [grad[own] for grad in grads], scale)


class ParallelUpdate:
    """Sum the gradients of several workers and apply the original's update (L2, then the
    optimizer) to a parameter vector of ``size`` elements, in ``parts`` contiguous parts on threads.

    The parameters and optimizer state it produces are bit-for-bit those of one
    :class:`~distnet.nn.UpdateRule` applied to ``grads[0] + grads[1] + ...``; :meth:`state` and
    :meth:`load_state` use the whole-vector layout of a single optimizer, so checkpoints do not
    depend on the number of parts. ``parts=None`` picks ``parts_for(size)``; with one part it
    is one UpdateRule and no threads. Call :meth:`close` to stop the threads.
    """

    def __init__(self, optimizer_spec: dict, l2: float, weight_slices: Sequence[slice], size: int,
                 parts: int | None = None):
        parts = parts_for(size) if parts is None else parts
        if not 1 <= parts <= size:
            raise ConfigError(f"parts must be between 1 and the parameter count {size}, got {parts}")
        self.size = size
        bounds = [size * i // parts for i in range(parts + 1)]
        self._parts = [_Part(start, stop, optimizer_spec, l2, weight_slices)
                       for start, stop in zip(bounds, bounds[1:])]
        self._pool: ThreadPoolExecutor | None = None

    @property
    def parts(self) -> int:
        """Into how many contiguous parts (one thread each) the update is split."""
        return len(self._parts)

    @property
    def learning_rate(self) -> float:
        """The optimizer's learning rate, the same in every part (setting it sets each part's)."""
        return self._parts[0].rule.optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: float) -> None:
        for part in self._parts:
            part.rule.optimizer.learning_rate = learning_rate

    def apply_sum(self, params: np.ndarray, grads: Sequence[np.ndarray], scale: float = 1.0) -> None:
        """Update ``params`` in place from the mean gradient ``(grads[0] + grads[1] + ...) · scale``,
        as :meth:`UpdateRule.apply_sum` does; the gradients are only read."""
        if params.shape != (self.size,):
            raise ConfigError(f"expected {self.size} parameters, got an array of shape {params.shape}")
        # Here, before any part updates: each part takes its slice of every gradient, so one of
        # another length would be cut to fit, or refused by the last part after the others updated.
        check_gradients(params, grads)
        *others, last = self._parts
        if not others:
            last.apply_sum(params, grads, scale)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(others), thread_name_prefix="parallel-update")
        pending = [self._pool.submit(part.apply_sum, params, grads, scale) for part in others]
        try:
            last.apply_sum(params, grads, scale)  # this thread's share, rather than waiting idle
        finally:
            for future in pending:
                future.result()

    def state(self) -> dict[str, np.ndarray]:
        """The optimizer state as one optimizer over the whole vector would export it."""
        states = [part.rule.optimizer.state() for part in self._parts]
        # Per-element arrays are joined; scalars (Adam's step count) are the same in every part.
        return {key: np.concatenate([s[key] for s in states]) if np.ndim(value) else value
                for key, value in states[0].items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore whole-vector state, as :meth:`state` or a single optimizer exports it."""
        instance_of("an optimizer's state", state, dict, "the dict its state() returns")
        for key, value in state.items():
            if np.ndim(value) and np.shape(value) != (self.size,):
                raise ConfigError(f"optimizer state {key!r} has shape {np.shape(value)}, "
                                  f"expected ({self.size},)")
        for part in self._parts:
            part.rule.optimizer.load_state({key: value[part.start:part.stop] if np.ndim(value) else value
                                            for key, value in state.items()})

    def close(self) -> None:
        """Stop the threads (a later :meth:`apply_sum` starts them again)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
