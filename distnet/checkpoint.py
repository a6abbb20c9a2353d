"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one ``.npz`` (parameters, optimizer state and the best network's parameters as
arrays, plus JSON metadata with the position, the early-stopping state, the history and the run's
configuration), written atomically and read without pickle. Because every mini-batch is derived
from (seed, epoch, shard), the position (epoch, step) replaces any RNG state.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelFormatError
from .io import atomic_writer, npz_bytes, parse_meta, read_npz
from .nn.layers import count_parameters
from .nn.network_files import spec_sizes
from .step_stats import StepStats

FORMAT = "distnet.checkpoint"
_OPTIMIZER_PREFIX = "optimizer/"


@dataclass
class Checkpoint:
    """The state of a run after ``step`` steps of epoch ``epoch`` (0-based; step 0 = epoch start)."""

    epoch: int
    step: int
    params: np.ndarray
    optimizer_state: dict[str, np.ndarray]
    stopping_state: dict | None
    history: list[dict]
    config: dict
    epoch_stats: StepStats = field(default_factory=StepStats)  # of the steps of ``epoch`` before ``step``
    seconds: float = 0.0  # training wall time of the run so far, over every session that trained it
    # The best network's parameters as of this checkpoint (None before the first evaluation): a
    # resume needs no best.npz, which a crash can leave one improvement ahead of the newest
    # checkpoint (it is written at the evaluation, the checkpoint after it), or damaged.
    best_params: np.ndarray | None = None
    # How many shards the mini-batches of ``epoch`` are drawn from: the config's workers, but for an
    # epoch that a resume with another number of workers began within (see BatchPlan's ``carried``).
    # None in checkpoints written before it was kept: then the config's workers.
    epoch_shards: int | None = None
    # At an epoch's end (step 0): that epoch's statistics and seconds, for the evaluation a resume
    # that ends the run there owes it when the run, bound for more epochs, did not evaluate it.
    # None mid-epoch, and in checkpoints written before it was kept.
    finished_epoch: tuple[StepStats, float] | None = None

    def save(self, path: str | os.PathLike, keep_previous: str | os.PathLike | None = None) -> None:
        """Write the checkpoint to ``path`` as an .npz (arrays, and its metadata as JSON) atomically;
        the file it replaces moves to ``keep_previous``, if given, once the new one is complete."""
        arrays = {"params": self.params,
                  **{_OPTIMIZER_PREFIX + k: v for k, v in self.optimizer_state.items()}}
        if self.best_params is not None:
            arrays["best_params"] = self.best_params
        meta = {"format": FORMAT, "version": 1, "epoch": self.epoch, "step": self.step,
                "stopping_state": self.stopping_state, "history": self.history, "config": self.config,
                "epoch_stats": vars(self.epoch_stats), "seconds": self.seconds}
        if self.epoch_shards is not None:
            meta["epoch_shards"] = self.epoch_shards
        if self.finished_epoch is not None:
            stats, seconds = self.finished_epoch
            meta["finished_epoch"] = {"stats": vars(stats), "seconds": seconds}
        with atomic_writer(path, keep_previous=keep_previous) as f:
            f.write(npz_bytes(arrays, meta))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Checkpoint":
        """Read a checkpoint written by :meth:`save`; ModelFormatError for anything else, including
        a truncated or damaged file, and without ever unpickling."""
        path = Path(path)
        try:
            arrays = read_npz(path, str(path), required=("params", "meta"))
        except OSError as e:
            raise ModelFormatError(f"{path}: cannot read the checkpoint ({e.strerror})") from None
        meta = parse_meta(arrays.pop("meta"), str(path), FORMAT, version=1)
        params = arrays.pop("params")
        best_params = arrays.pop("best_params", None)  # absent from checkpoints written before it was kept
        fields = {"epoch": int, "step": int, "stopping_state": (dict, type(None)), "history": list,
                  "config": dict}
        wrong = [key for key, kind in fields.items() if key not in meta or not isinstance(meta[key], kind)]
        if wrong or meta["epoch"] < 0 or meta["step"] < 0:
            raise ModelFormatError(f"{path}: checkpoint metadata is incomplete or malformed "
                                   f"({', '.join(wrong) or 'negative epoch or step'})")
        for name, vector in (("parameters", params), ("best network's parameters", best_params)):
            if vector is not None and (vector.ndim != 1 or vector.dtype.kind != "f"):
                raise ModelFormatError(f"{path}: the {name} are not a vector of floats "
                                       f"({vector.dtype}, shape {vector.shape})")
        if best_params is not None and best_params.shape != params.shape:
            raise ModelFormatError(f"{path}: holds {best_params.size} parameters of the best network and "
                                   f"{params.size} of the last")
        if "network" in meta["config"]:
            needed = count_parameters(spec_sizes(meta["config"]["network"], str(path)))
            if params.size != needed:
                raise ModelFormatError(f"{path}: holds {params.size} parameters, but the network of its "
                                       f"configuration has {needed}")
        try:
            epoch_stats = StepStats.from_saved(meta.get("epoch_stats") or {})
        except (ValueError, TypeError):
            raise ModelFormatError(f"{path}: checkpoint metadata is malformed (epoch_stats)") from None
        seconds = meta.get("seconds", 0.0)  # absent from checkpoints written before it was kept
        if type(seconds) not in (int, float) or not seconds >= 0:
            raise ModelFormatError(f"{path}: checkpoint metadata is malformed (seconds)")
        epoch_shards = meta.get("epoch_shards")  # absent from checkpoints written before it was kept
        if epoch_shards is not None and (type(epoch_shards) is not int or epoch_shards < 1):
            raise ModelFormatError(f"{path}: checkpoint metadata is malformed (epoch_shards)")
        finished_epoch = meta.get("finished_epoch")  # absent mid-epoch, and from older checkpoints
        if finished_epoch is not None:
            try:
                finished_epoch = (StepStats.from_saved(finished_epoch["stats"]), float(finished_epoch["seconds"]))
            except (KeyError, ValueError, TypeError):
                raise ModelFormatError(f"{path}: checkpoint metadata is malformed (finished_epoch)") from None
        return cls(epoch=meta["epoch"], step=meta["step"], params=params,
                   optimizer_state={k[len(_OPTIMIZER_PREFIX):]: v for k, v in arrays.items()
                                    if k.startswith(_OPTIMIZER_PREFIX)},
                   stopping_state=meta["stopping_state"], history=meta["history"], config=meta["config"],
                   epoch_stats=epoch_stats, seconds=float(seconds), best_params=best_params,
                   epoch_shards=epoch_shards, finished_epoch=finished_epoch)
