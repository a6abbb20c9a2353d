"""GradientWorker: holds one shard of the training data and computes gradients on it.

A plain class; the trainer runs it as a Ray actor. Each step it computes, on its slice of the
current mini-batch, the *summed* gradient, the summed cost and the sample count; the parameter
server turns those into the mean over the whole mini-batch.
"""
from __future__ import annotations

import os
from contextlib import contextmanager, suppress

import numpy as np

from ..batches import BatchGather, BatchPlan, split_sizes
from ..data.augment import augmentation_from_spec
from ..nn import Network
from . import channel as ch


class GradientWorker:
    """Worker ``index`` of a run: its shard (``images``, ``labels``), the run's batch plan, and a
    network of ``network_spec`` whose parameters each step supplies."""

    def __init__(self, index: int, network_spec: dict, images: np.ndarray, labels: np.ndarray,
                 plan: dict, augmentation: dict | None = None):
        # ``images`` arrives from the object store: on this node a read-only view, never a copy.
        self.index = index
        self.network = Network.from_spec(network_spec)
        self.images = images if images.dtype == self.network.dtype else images.astype(self.network.dtype)
        self.labels = labels
        self.plan = BatchPlan(**plan)
        self.augmentation = augmentation_from_spec(augmentation)
        self._epoch, self._steps, self._epoch_images = None, [], self.images
        self._augmented = np.empty_like(self.images) if self.augmentation is not None else None
        self._grad = np.empty_like(self.network.params)
        self._gather = BatchGather(self.network.output_size, self.network.dtype)
        self._channel: ch.WorkerEnd | None = None

    def where(self) -> dict:
        """Where this worker runs: node, host and process, for the run summary."""
        import ray

        return {"worker": self.index, "node_id": ray.get_runtime_context().get_node_id(),
                "host": os.uname().nodename, "pid": os.getpid()}

    def _rows(self, epoch: int, step: int) -> np.ndarray:
        if self._epoch != epoch:
            self._steps = self.plan.shard_steps(epoch, self.index)
            self._epoch = epoch
            if self.augmentation is not None:
                # This shard only, keyed like the single-process trainer's (seed, epoch, shard).
                self._epoch_images = self.augmentation.epoch(self.images, self.plan.seed, epoch, self.index,
                                                             out=self._augmented)
        return self._steps[step]

    def _batch(self, epoch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """This worker's rows of the step's mini-batch: (inputs, targets), in buffers that the next
        call overwrites."""
        return self._gather(self._rows(epoch, step), self._epoch_images, self.labels)

    def _backprop(self, batch: tuple[np.ndarray, np.ndarray], out: np.ndarray) -> tuple[float, int, int]:
        X, Y = batch
        # Overflow shows up as a non-finite cost, which the driver reports as divergence.
        with np.errstate(over="ignore", invalid="ignore"):
            _, cost, correct = self.network.backprop(X, Y, out=out, reuse_buffers=True)
        return cost, correct, len(X)

    # -- the plain-call and compiled-graph step ---------------------------------------------------
    def gradient(self, params: np.ndarray, epoch: int, step: int):
        """(summed gradient, summed cost, correct, samples) of this worker's part of the step."""
        with self._computing_on(params):
            cost, correct, samples = self._backprop(self._batch(epoch, step), self._grad)
        return self._grad, cost, correct, samples

    @contextmanager
    def _computing_on(self, params: np.ndarray):
        """The network computes on ``params`` in place, without a copy, until the block ends: steps
        and evaluations only read them. After it the network holds no reference to them, so that
        whoever handed them over (Ray's object store, a compiled graph's channel buffer, the step
        channel) can reuse or release their memory."""
        own_params = self.network.params
        self.network.use_params_memory(params)
        try:
            yield
        finally:
            self.network.use_params_memory(own_params)

    # -- the same-host channel step ---------------------------------------------------------------
    def can_reach(self, spec: ch.ChannelSpec) -> bool:
        return ch.reachable(spec)

    def connect(self, spec: ch.ChannelSpec) -> None:
        self.disconnect()
        self._channel = ch.WorkerEnd(spec, self.index)

    def disconnect(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def serve_steps(self, epoch: int, start: int, stop: int, server_timeout: float = 2 * ch.STEP_TIMEOUT_S) -> int:
        """Compute steps [start, stop) of ``epoch`` as the parameter server calls for them; returns
        how many it called for: fewer where the chunk was given up (a peer lost), or the server
        called for no step within ``server_timeout`` s (stuck, or stopped)."""
        # The steps compute straight on the parameters in shared memory (the server changes them
        # only between steps): no copy per step.
        with self._computing_on(self._channel.params):
            return self._serve(self._channel, epoch, start, stop, server_timeout)

    def _serve(self, channel: ch.WorkerEnd, epoch: int, start: int, stop: int, server_timeout: float) -> int:
        batch = None
        for step in range(start, stop):
            try:
                command = channel.next_step(server_timeout)
            except ch.PeerLost:
                return step - start  # the chunk was given up; the driver knows how far it got
            try:
                if command != (epoch, step):
                    raise RuntimeError(f"worker {self.index} is at epoch {epoch} step {step}, but the "
                                       f"parameter server asked for another step")
                channel.stats[self.index] = self._backprop(batch or self._batch(epoch, step), channel.grad)
            except BaseException:
                channel.finish_step(ok=False)  # the server learns of the failure, and ends the chunk
                raise
            try:
                channel.finish_step()
            except ch.PeerLost:  # the server is gone, or gave up on this step (too slow) and closed its end
                return step + 1 - start
            # The next step's rows are gathered while the server applies this step's update, which
            # the worker would otherwise only wait for: the copy leaves the step's critical path.
            # Should that fail, the step gathers them again, where a failure reaches the server.
            batch = None
            if step + 1 < stop:
                with suppress(Exception):
                    batch = self._batch(epoch, step + 1)
        return stop - start

    # -- evaluation -----------------------------------------------------------------------------
    def count_errors(self, params: np.ndarray | None, images: np.ndarray, labels: np.ndarray, part: int,
                     parts: int) -> int:
        """Misclassified samples in part ``part`` of ``parts`` contiguous parts (sizes as
        :func:`~distnet.batches.split_sizes` makes them), by the network of parameters ``params``
        (None: those in the step channel, which the server changes only during steps)."""
        if params is None:
            if self._channel is None:
                raise RuntimeError(f"worker {self.index} was asked to evaluate the channel's parameters, but it "
                                   f"is connected to no channel")
            params = self._channel.params
        sizes = split_sizes(len(labels), parts)
        lo = sum(sizes[:part])
        hi = lo + sizes[part]
        with self._computing_on(params):
            # In the arrays of the training steps: evaluation adds no memory of its own.
            return self.network.error_count(images[lo:hi], labels[lo:hi], self.plan.shard_batch_sizes[self.index],
                                            reuse_buffers=True)
