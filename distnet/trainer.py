"""The single-process trainer: the whole mini-batch in this process, one update per step."""
from __future__ import annotations

import inspect

import numpy as np
from numpy.typing import ArrayLike

from .batches import BatchGather, BatchPlan
from .checks import as_array, positive_int
from .data import Dataset
from .errors import ConfigError, TrainingDivergedError
from .fit_arguments import check_finite_state
from .step_stats import StepStats
from .training import TrainerBase


class Trainer(TrainerBase):
    """Train a :class:`~distnet.nn.Network` in this process.

    >>> trainer = Trainer(network, Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=942457)
    >>> result = trainer.fit(splits.train, splits.validation, epochs=30)

    Setting ``trainer.shards = N`` makes it draw exactly the mini-batches that N distributed
    workers would, which is how the tests show that distribution does not change the math. A
    trainer whose ``shards`` was not set takes a resumed run's number of workers, for that fit: it
    continues a distributed run in this process with the batches the run's workers drew (and a
    new run after it draws one shard's again).
    """

    _grad_buffer: np.ndarray | None = None  # every step's gradient; allocated on first use

    @classmethod
    def _belongs_elsewhere(cls, name: str) -> str:
        from .distributed import DistributedTrainer  # (imports Ray: only for this message)
        if name in inspect.signature(DistributedTrainer.__init__).parameters:
            return " (DistributedTrainer takes it: it trains on Ray workers, a Trainer in this process)"
        return ""

    def step(self, X: ArrayLike, Y: ArrayLike) -> StepStats:
        """One update from one mini-batch: mean gradient over its rows, L2, optimizer step (a 1-D
        ``X`` is one sample, as :meth:`~distnet.nn.Network.predict` takes it); its summed cost,
        correct samples and samples. ``Y`` holds a target row per sample (one-hot for classes, any
        numbers for a regression with an Identity output and MSE), which :meth:`fit`'s data sets
        cannot hold. A batch with NaN or infinite values is refused (ConfigError). A step whose cost
        is not finite raises TrainingDivergedError (divergence), or, where the parameters or the
        optimizer's state were NaN or infinite already (as a diverged training leaves them), the
        ConfigError :meth:`fit` gives for them; either way the network and the optimizer stay as
        they were."""
        if isinstance(X, Dataset):  # (which NumPy would read as a list of images)
            raise ConfigError("a step takes arrays, not a data set: pass its .images and, as the targets, its "
                              ".one_hot() rows")
        X, Y = (self._finite_batch(what, values) for what, values in (("inputs", X), ("targets", Y)))
        with np.errstate(over="ignore", invalid="ignore"):  # named below, as a cost that is not finite
            return self._step(X, Y, finite_cost=True)

    def _finite_batch(self, what: str, values) -> np.ndarray:
        """``values`` as an array, float ones in the network's dtype; ConfigError for NaN or
        infinite values, and for values that became infinite in that dtype."""
        given = as_array(f"the mini-batch's {what}", values)
        if given.dtype.kind not in "fc":
            return given  # (the network names what it does not take)
        dtype = self.network.dtype
        with np.errstate(over="ignore"):  # named here: a float64 value beyond float32's range
            values = given.astype(dtype, copy=False) if given.dtype.kind == "f" else given
        if not np.isfinite(values).all():
            if np.isfinite(given).all():
                raise ConfigError(f"the mini-batch's {what} hold values too large for {dtype}, the network's dtype "
                                  f"(beyond ±{np.finfo(dtype).max:.1e} a value becomes infinite); scale them, as "
                                  f"values near [-1, 1] train best")
            raise ConfigError(f"the mini-batch's {what} hold NaN or infinite values; fix or drop those samples")
        return values

    def _step(self, X: np.ndarray, Y: np.ndarray, finite_cost: bool = False) -> StepStats:
        rows = len(X) if np.ndim(X) > 1 else 1
        if rows == 0:  # (before the backprop, which would keep buffers of no rows)
            raise ConfigError("a step needs at least one sample, and the mini-batch has none")
        grad, cost, correct = self.network.backprop(X, Y, out=self._grad, reuse_buffers=True)
        if finite_cost and not np.isfinite(cost):
            # Checked only now, not every step: a pass over the parameters and copies of the
            # optimizer's state, and NaN parameters make the cost NaN.
            check_finite_state(self.network, self.optimizer)
            raise TrainingDivergedError(f"the step's cost is {cost} ({self.network.dtype} overflowed): the "
                                        f"parameters have diverged (lower the learning rate, now "
                                        f"{self.optimizer.learning_rate:g}), or the inputs or targets are too "
                                        f"large; the step was not applied")
        self.rule.apply(self.network.params, grad, scale=1 / rows)  # the mean, without a pass over grad
        return StepStats.of_step(cost, correct, rows)

    @property
    def _grad(self) -> np.ndarray:
        params, kept = self.network.params, self._grad_buffer  # trainer.network may be another one now
        if kept is None or kept.shape != params.shape or kept.dtype != params.dtype:
            self._grad_buffer = np.empty_like(params)
        return self._grad_buffer

    _shards_told: int | None = None  # trainer.shards = N: every fit draws N workers' batches
    _fit_workers = 1  # else those of the fit under way, or the last: a resumed run's number, or 1

    @TrainerBase.shards.setter
    def shards(self, shards: int) -> None:
        # Never set: each fit takes a resumed run's number, or 1 for a new run.
        self._shards_told = positive_int("shards", shards)

    def _told_workers(self) -> int | None:
        return self._shards_told

    def _decide_workers(self, run_workers: int | None) -> None:
        self._fit_workers = run_workers or 1

    def _open(self, train: Dataset, validation: Dataset | None, plan: BatchPlan) -> None:
        self._train, self._validation, self._plan = train, validation, plan
        self._batches_epoch, self._batches, self._images = None, [], train.images
        self._gather = BatchGather(self.network.output_size, self.network.dtype)
        self._augmented = np.empty_like(train.images) if self.augmentation is not None else None

    def _close(self) -> None:
        # The data (and its augmented copy) belong to the fit: a trainer kept afterwards holds none.
        self._train = self._validation = self._images = self._augmented = self._gather = None
        self._batches, self._batches_epoch = [], None

    def _run_steps(self, epoch: int, start: int, stop: int) -> tuple[StepStats, bool]:
        if self._batches_epoch != epoch:
            self._batches, self._batches_epoch = self._plan.epoch_batches(epoch), epoch
            self._images = self._epoch_images(epoch)
        stats = StepStats()
        images, labels = self._images, self._train.labels
        # Overflow shows up as a non-finite cost, which the loop reports as divergence.
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(start, stop):
                stats += self._step(*self._gather(self._batches[k], images, labels))
        return stats, bool(np.isfinite(self.network.params).all())

    def _epoch_images(self, epoch: int) -> np.ndarray:
        """The training images of ``epoch``: augmented shard by shard, exactly as N workers would."""
        images = self._train.images
        if self.augmentation is None:
            return images
        for shard, (lo, hi) in enumerate(self._plan.shard_ranges):
            self.augmentation.epoch(images[lo:hi], self.seed, epoch, shard, out=self._augmented[lo:hi])
        return self._augmented

    def _validation_error_rate(self) -> float:
        return self.network.error_rate(self._validation.images, self._validation.labels)

    def _params(self) -> np.ndarray:
        return self.network.params

    def _optimizer_state(self) -> dict[str, np.ndarray]:
        return self.optimizer.state()

    def _load_state(self, params: np.ndarray, optimizer_state: dict[str, np.ndarray],
                    position: tuple[int, int]) -> None:
        self.network.set_params(params)
        self.optimizer.load_state(optimizer_state)
