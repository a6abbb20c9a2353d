"""ParameterServer: holds the parameters and the optimizer state, applies every update.

A plain class; the trainer runs it as a Ray actor. Each step it combines the workers' summed
gradients in worker order, divides by the total sample count (the mean over the whole
mini-batch, whatever the split), and applies the same update (L2, then the optimizer) as the
single-process trainer's :class:`~distnet.nn.UpdateRule`, through a
:class:`~distnet.nn.ParallelUpdate` that splits it over threads for large networks.
"""
from __future__ import annotations

import numpy as np

from ..nn import Network, ParallelUpdate
from ..step_stats import StepStats
from . import channel as ch


class ParameterServer:
    """The run's parameters and optimizer state, at ``position`` (the (epoch, step) of the next
    update), and the update rule (``optimizer_spec``, ``l2``) every step applies."""

    def __init__(self, network_spec: dict, params: np.ndarray, optimizer_spec: dict, l2: float,
                 optimizer_state: dict | None = None, update_parts: int | None = None,
                 position: tuple[int, int] = (0, 0)):
        network = Network.from_spec(network_spec, params)
        self.params = network.params
        # ``update_parts=None`` splits a large network's update over every core this process may
        # use, although the trainer reserves no CPU for the server in Ray: each step the workers
        # hand in their gradients and then wait for the new parameters, so during the update the
        # cores they were given are idle.
        self.update = ParallelUpdate(optimizer_spec, l2, network.weight_slices, self.params.size, update_parts)
        if optimizer_state:
            self.update.load_state(optimizer_state)
        self.position = tuple(position)  # (epoch, step) of the next update to apply
        self._stats = StepStats()
        self._channel: ch.ServerEnd | None = None

    def _apply(self, epoch: int, step: int, grads, stats: np.ndarray) -> None:
        step_stats = StepStats.of_step(*stats.sum(axis=0))
        self.update.apply_sum(self.params, grads, scale=1 / stats[:, 2].sum())
        self._stats += step_stats
        self.position = (epoch, step + 1)

    # -- state ----------------------------------------------------------------------------------
    def get_params(self) -> np.ndarray:
        return self.params.copy()

    def params_finite(self) -> bool:
        return bool(np.isfinite(self.params).all())

    def optimizer_state(self) -> dict:
        """The optimizer's state (with :meth:`get_params`, what a checkpoint needs)."""
        return self.update.state()

    def next_position(self) -> tuple[int, int]:
        """(epoch, step) of the next update to apply."""
        return self.position

    def load_state(self, params: np.ndarray, optimizer_state: dict, position: tuple[int, int]) -> None:
        """Continue from a checkpoint's state, which stands before step ``position`` = (epoch, step)."""
        self.params[...] = params
        self.update.load_state(optimizer_state)
        self.position = tuple(position)

    def set_learning_rate(self, learning_rate: float) -> None:
        """The rate for the coming epoch (the driver's learning-rate schedule decides it)."""
        self.update.learning_rate = learning_rate

    def take_stats(self) -> tuple[int | float, int, int, bool]:
        """The :class:`StepStats` sums (cost units, correct, samples) since the last call, and
        reset; then whether every parameter is finite (one call per chunk of steps answers both)."""
        stats, self._stats = self._stats, StepStats()
        return stats.cost_units, stats.correct, stats.samples, self.params_finite()

    # -- the plain-call and compiled-graph step ---------------------------------------------------
    def apply(self, epoch: int, step: int, *results) -> tuple[np.ndarray, int]:
        """Update ``step`` of ``epoch`` from each worker's (gradient, cost, correct, samples);
        returns the new parameters for the next step, and the step (two results, so that the
        driver can wait for a step without fetching the parameters)."""
        self._apply(epoch, step, [r[0] for r in results], np.array([r[1:] for r in results], dtype=np.float64))
        return self.params, step

    def params_for(self, epoch: int, step: int) -> np.ndarray:
        """The parameters ``step`` of ``epoch`` computes on: the compiled graph's first node, which
        takes the step only so that it runs once per execution."""
        return self.params

    def apply_step(self, epoch: int, step: int, *results) -> int:
        """:meth:`apply`, returning only the step applied: the compiled graph's last node, whose
        result travels to the driver every step."""
        self.apply(epoch, step, *results)
        return step

    # -- the same-host channel step ---------------------------------------------------------------
    def create_channel(self, workers: int) -> ch.ChannelSpec:
        """Create a channel on this host (the workers then say whether they can reach it)."""
        return ch.create_channel(workers, self.params.size, self.params.dtype)

    def remove_channel(self, spec: ch.ChannelSpec) -> None:
        ch.remove_channel(spec)

    def connect(self, spec: ch.ChannelSpec) -> None:
        """Attach to the channel; from now on the parameters live in its shared memory."""
        self.disconnect()
        self._channel = ch.ServerEnd(spec)
        self._channel.params[...] = self.params
        self.params = self._channel.params

    def disconnect(self) -> None:
        if self._channel is not None:
            self.params = self._channel.params.copy()
            self._channel.close()
            self._channel = None

    def serve_steps(self, epoch: int, start: int, stop: int,
                    step_timeout: float = ch.STEP_TIMEOUT_S) -> tuple[int, tuple | None]:
        """Run steps [start, stop) of ``epoch`` over the channel; returns the steps completed and,
        when that is all of them, :meth:`take_stats` (which saves the driver a call per chunk).

        Stops early (and reports how far it got, with no summary) if a worker fails, dies or has
        not finished a step within ``step_timeout`` s: every completed step was applied exactly
        once, the interrupted one not at all, and the completed steps' statistics wait for the next
        summary.
        """
        channel = self._channel
        for step in range(start, stop):
            try:
                channel.start_step(epoch, step)
                failed = channel.wait_step(step_timeout)
            except ch.PeerLost:
                return step - start, None
            if failed:
                return step - start, None
            self._apply(epoch, step, channel.grads, channel.stats)
        return stop - start, self.take_stats()
