"""What a resumed run is checked against and takes from the run folder it continues.

:meth:`distnet.training.TrainerBase.fit` with ``resume=True`` refuses a resume whose trainer, data or
stop rule differ from the run's (:func:`check_resumable`, on what :func:`data_config` records), warns
when it draws its batches from another number of workers (:func:`other_workers_message`), and picks
up the best network and a last evaluation the run still owes.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from .checkpoint import Checkpoint
from .data import Dataset
from .checks import count, listed
from .errors import ConfigError, DistnetError
from .nn import Network
from .rundir import RunDir

__all__ = ["best_params_of", "check_resumable", "data_config", "evaluation_owed", "holds_best", "loads_as_network",
           "other_mode_message", "other_workers_message"]


_DIFFERENCES_SHOWN = 4  # of the settings a refused resume differs in


def check_resumable(saved: dict, current: dict) -> None:
    """ConfigError unless a resume's ``current`` config (trainer, data, stop rule) is the one its run
    was ``saved`` with. Not "workers": a resume may draw its batches from another number of shards."""
    keys = ("network", "optimizer", "l2", "batch_size", "seed", "schedule", "augmentation", "eval_every", "window",
            "acceptable_error")
    differ = [line for k in keys for line in _differences(k, saved.get(k), current.get(k))]
    if differ:
        if len(differ) > _DIFFERENCES_SHOWN + 1:  # a trainer of another preset differs in a dozen fields
            differ = [*differ[:_DIFFERENCES_SHOWN], f"{len(differ) - _DIFFERENCES_SHOWN} other settings of its own"]
        raise ConfigError(f"cannot resume: the run was started with {'; with '.join(differ)}; resume with the "
                          f"run's own settings, which its config.json records (if that file was edited, undo "
                          f"the edit)")
    for data, (samples, checksum), why, fix in (
            ("training", ("train_samples", "train_crc32"), "", "the data"),
            ("validation", ("validation_samples", "validation_crc32"), ", and the stop rule compares their errors",
             "the validation set")):
        recorded = [key for key in (samples, checksum) if key in saved]  # the checksums since 2026-12-01
        if [saved[key] for key in recorded] != [current[key] for key in recorded]:
            then, now = saved[samples], current[samples]
            differ = f"{now} samples as then, but other values" if then == now else f"{then} samples then, {now} now"
            raise ConfigError(f"cannot resume: the {data} data differ from the run's ({differ}){why}; resume with "
                              f"{fix} the run was started with")
    if "classes" in saved and saved["classes"] != current["classes"]:  # recorded since 2026-12-03
        raise ConfigError(f"cannot resume: the run's outputs are the classes {listed(saved['classes'])}, in that "
                          f"order, and the data resumed on names them {listed(current['classes'])}; give the "
                          f"training data the run's class names: Dataset(images, labels, classes=[...]) as then")


def other_workers_message(run: RunDir, checkpoint: Checkpoint, then: int, now: int) -> str:
    """The warning for a resume with another number of workers (shards of the training set)."""
    message = (f"{run.path} trains on with its mini-batches drawn from {count(now, 'shard')} of the training "
               f"set (as {count(now, 'worker')} {'draws' if now == 1 else 'draw'} them), where it drew them "
               f"from {then} so far: from here it is another draw of the same training, not bit-identical to "
               f"a run that kept {count(then, 'worker')}")
    if checkpoint.step:
        drawn = checkpoint.epoch_shards or then
        message += (f"; epoch {checkpoint.epoch + 1}, which it resumes at step {checkpoint.step}, ends with the "
                    f"batches it began with (of {count(drawn, 'shard')}: no sample twice in that epoch), and "
                    f"the new ones start with epoch {checkpoint.epoch + 2}")
    return message


def other_mode_message(run: RunDir, shards: int, distributed: bool) -> str:
    """The warning for a resume of a run of ``shards`` workers' batches (2 or more) in one process
    that ran on Ray, or the other way round: the same batches, their gradients summed in another
    order."""
    now, then = ("on Ray", "in one process") if distributed else ("in one process", "on Ray")
    return (f"{run.path} now trains {now}, where it trained {then} so far, with the same mini-batches of "
            f"{count(shards, 'shard')}: their gradients are summed in another order, so from here its numbers "
            f"differ from a run that stayed {then} by rounding (in float32, visibly within an epoch or two)")


def _differences(name: str, then, now) -> list[str]:
    """Where the setting ``name`` differs between a run's checkpoint (``then``) and a resume
    (``now``): one phrase per differing value, down to the field of a spec that differs
    ("another network layer 1 size (36 in its checkpoint, 64 now)")."""
    if then == now:
        return []
    if isinstance(then, dict) and isinstance(now, dict):
        return [line for key in [*then, *(k for k in now if k not in then)]
                for line in _differences(f"{name} {key}", then.get(key), now.get(key))]
    if isinstance(then, list) and isinstance(now, list) and len(then) == len(now):
        singular = name[:-1] if name.endswith("s") else name  # "network layers" -> "network layer 1"
        return [line for i, (a, b) in enumerate(zip(then, now)) for line in _differences(f"{singular} {i + 1}", a, b)]
    return [f"another {name} ({_brief(then)} in its checkpoint, {_brief(now)} now)"]


def _brief(value) -> str:
    """``value`` as a difference names it: a list of layer specs as their sizes and activations
    ("36 leaky_relu, 10 softmax"), anything else as its repr."""
    if isinstance(value, list) and value and all(isinstance(layer, dict) and {"size", "activation"} <= layer.keys()
                                                 for layer in value):
        names = [layer["activation"].get("name") if isinstance(layer["activation"], dict) else layer["activation"]
                 for layer in value]
        return ", ".join(f"{layer['size']} {name}" for layer, name in zip(value, names))
    return repr(value)


def evaluation_owed(checkpoint: Checkpoint, epochs: int, eval_every: int) -> bool:
    """Whether a resume from ``checkpoint`` owes the epoch it stands after the evaluation that the
    run, resumed to ``epochs`` epochs evaluating every ``eval_every``, makes there: one checkpointed
    before its evaluation (a run's first, which is checkpointed before its first best.npz), or the
    last where the run, bound for more epochs, did not evaluate it. ConfigError where the
    checkpoint lacks that epoch's statistics (written before checkpoints kept them), so that no
    resume can end the run as a run ending there would."""
    history = checkpoint.history
    if checkpoint.step or not checkpoint.epoch or (history and history[-1].get("epoch") == checkpoint.epoch):
        return False
    if checkpoint.epoch != epochs and checkpoint.epoch % eval_every:
        return False  # an epoch the run does not evaluate, short of its end
    if checkpoint.finished_epoch is None:
        raise ConfigError(f"the run has trained {checkpoint.epoch} epochs without evaluating the last, and its "
                          f"checkpoint, written before checkpoints kept an epoch's statistics, cannot evaluate it as "
                          f"a run ending there would: resume it with more epochs")
    return True


def best_params_of(run: RunDir, checkpoint: Checkpoint) -> np.ndarray | None:
    """The best network's parameters as of ``checkpoint``: those it holds, or, from a checkpoint
    written before checkpoints held them, those of the run's best.npz; None if there are none."""
    if checkpoint.best_params is not None:
        return checkpoint.best_params
    return Network.load(run.best_path).params if run.best_path.exists() else None


def holds_best(run: RunDir, params: np.ndarray, epoch: int) -> bool:
    """Whether the run directory's best.npz and best.json are the best network ``params`` of ``epoch``."""
    try:
        saved = Network.load(run.best_path).params
        record = json.loads(run.best_path.with_suffix(".json").read_text())
    except (DistnetError, OSError, ValueError, RecursionError):
        return False
    return isinstance(record, dict) and record.get("epoch") == epoch and np.array_equal(saved, params)


def loads_as_network(path: Path) -> bool:
    """Whether ``path`` holds a network that loads (not when it is missing or damaged)."""
    try:
        Network.load(path)
    except (DistnetError, OSError, ValueError):
        return False
    return True


def data_config(train: Dataset, validation: Dataset | None) -> dict:
    """What a run records of its data, so that a resume on other data is refused."""
    return {"classes": list(train.classes), "train_samples": len(train), "train_crc32": _checksum(train),
            "validation_samples": len(validation) if validation is not None else 0,
            "validation_crc32": _checksum(validation) if validation is not None else None}


def _checksum(data: Dataset) -> int:
    """CRC-32 of the samples and labels: a resume on other data of the same size is refused."""
    return zlib.crc32(np.ascontiguousarray(data.labels), zlib.crc32(np.ascontiguousarray(data.images)))
