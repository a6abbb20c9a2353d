"""Which samples form each mini-batch: one rule for the single-process and distributed paths.

The training set is cut into ``shards`` contiguous shards; shard i contributes ``b_i`` samples to
every mini-batch of ``batch_size`` (the b_i differ by at most one). Every epoch each shard is
shuffled by its own generator seeded with (seed, epoch, shard), so any step of any epoch can be
rebuilt from the seed alone: workers need only their shard, and a resumed run needs no RNG state.
Steps per epoch = n // batch_size; the few samples left over (others each epoch, by the shuffle)
are not used in that epoch. With one shard this is the familiar "shuffle, then slice" loop.

The number of shards is the run's number of workers, which a resume may change (the steps per
epoch stay, the batches' composition does not). A run resumed within an epoch finishes that epoch
with the batches it began it with (``carried``: every sample still at most once in it), and draws
from the new shards from the next epoch on.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from .checks import count
from .errors import ConfigError


def split_sizes(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` sizes that differ by at most one, larger first."""
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def check_batch_size(batch_size: int, shards: int) -> None:
    """ConfigError unless every one of ``shards`` workers gets at least one sample of each batch."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if shards < 1:
        raise ConfigError(f"the number of workers must be at least 1, got {shards}")
    if batch_size < shards:
        raise ConfigError(f"batch size {batch_size} is smaller than the number of workers {shards}: "
                          f"each worker needs at least one sample per step; use at most "
                          f"{count(batch_size, 'worker')} (--workers {batch_size}; "
                          f"workers={batch_size} in Python), or a batch size of at least {shards}")


class BatchPlan:
    """The mini-batches of every epoch of ``n_samples`` samples cut into ``shards`` shards, by the
    rule above: ``shard_ranges`` are the shards' [start, stop) in the training set, and
    ``shard_batch_sizes`` what each gives to a batch.

    ``carried=(epoch, shards_then)``: that epoch's mini-batches are those of ``shards_then``
    shards, every other epoch's those of ``shards``; each of this plan's shards then gives a step of
    that epoch the samples of its batch that lie in the shard, however many (none, at times).
    """

    def __init__(self, n_samples: int, batch_size: int, shards: int = 1, seed: int = 0,
                 carried: tuple[int, int] | None = None):
        check_batch_size(batch_size, shards)
        if n_samples < batch_size:
            if n_samples == 0:
                raise ConfigError("the training set is empty: there is nothing to train on")
            raise ConfigError(f"the training set has {count(n_samples, 'sample')}, fewer than one batch of "
                              f"{batch_size}; use a batch size of at most {n_samples} (batch_size, --batch-size)")
        self.n_samples, self.batch_size, self.shards, self.seed = n_samples, batch_size, shards, seed
        self.steps_per_epoch = n_samples // batch_size
        self.shard_batch_sizes = split_sizes(batch_size, shards)
        leftover = split_sizes(n_samples - self.steps_per_epoch * batch_size, shards)
        sizes = [b * self.steps_per_epoch + extra for b, extra in zip(self.shard_batch_sizes, leftover)]
        starts = np.cumsum([0] + sizes)
        self.shard_ranges = [(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]
        self.carried: tuple[int, int] | None = None
        self._then: BatchPlan | None = None
        if carried is not None and int(carried[1]) != shards:
            self.carried = (int(carried[0]), int(carried[1]))
            self._then = BatchPlan(n_samples, batch_size, self.carried[1], seed)

    def shards_of(self, epoch: int) -> int:
        """The number of shards the mini-batches of ``epoch`` are drawn from."""
        return self.carried[1] if self.is_carried(epoch) else self.shards

    def is_carried(self, epoch: int) -> bool:
        """Whether ``epoch`` is drawn from the shards of before (see ``carried``)."""
        return self.carried is not None and epoch == self.carried[0]

    def shard_steps(self, epoch: int, shard: int) -> list[np.ndarray]:
        """Step by step, the indices (local to shard ``shard``) of the samples the shard gives to
        each mini-batch of ``epoch``: its share of a fresh shuffle of its samples, or in the carried
        epoch the samples of that epoch's batches (drawn from the shards of before) that lie in the
        shard, however many."""
        lo, hi = self.shard_ranges[shard]
        if self.is_carried(epoch):
            return [batch[(batch >= lo) & (batch < hi)] - lo for batch in self._then.epoch_batches(epoch)]
        order = np.random.default_rng([self.seed, epoch, shard]).permutation(hi - lo)
        size = self.shard_batch_sizes[shard]
        return [order[step * size:(step + 1) * size] for step in range(self.steps_per_epoch)]

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """Every mini-batch of the epoch as indices into the whole training set."""
        if self.is_carried(epoch):
            return self._then.epoch_batches(epoch)
        shares = [[rows + self.shard_ranges[s][0] for rows in self.shard_steps(epoch, s)] for s in range(self.shards)]
        return [np.concatenate(batch) for batch in zip(*shares)]


class BatchGather:
    """Copies a mini-batch out of the data into arrays kept from call to call, for as long as the
    row count stays the same: the rows of the images, and one-hot targets for their labels. The
    targets come from a ``classes``-row identity matrix, not from a one-hot copy of every label,
    which a worker would hold beside its shard.

    A training loop gathers every step; fresh arrays would cost what fresh backprop arrays cost
    (see :class:`~distnet.nn.network.BackpropBuffers`).
    """

    def __init__(self, classes: int, dtype: DTypeLike):
        self._identity = np.eye(classes, dtype=dtype)
        self._buffers: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, rows: np.ndarray, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, one-hot targets) of the samples ``rows``, in arrays the next call overwrites."""
        shape = (len(rows),) + images.shape[1:]
        if self._buffers is None or self._buffers[0].shape != shape or self._buffers[0].dtype != images.dtype:
            self._buffers = (np.empty(shape, images.dtype), np.empty((len(rows), len(self._identity)),
                                                                     self._identity.dtype))
        inputs, targets = self._buffers
        # mode="clip" copies straight into the buffer (the default, "raise", copies through a
        # temporary: twice as slow); rows come from a BatchPlan and labels from a Dataset, so
        # none is out of range. The batch's labels are a small new array (cheaper than a kept one).
        np.take(images, rows, axis=0, out=inputs, mode="clip")
        np.take(self._identity, labels[rows], axis=0, out=targets, mode="clip")
        return inputs, targets
