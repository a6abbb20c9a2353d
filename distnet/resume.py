"""What a resumed run is checked against and takes from the run folder it continues.

:meth:`distnet.training.TrainerBase.fit` with ``resume=True`` refuses a resume whose trainer, data or
stop rule differ from the run's (:func:`check_resumable`, on what :func:`data_config` records), warns
when it draws its batches from another number of workers (:func:`other_workers_message`), and picks
up the best network and a last evaluation the run still owes. A resume finds where the run goes on
(:func:`resumed_start`), or returns a run that had ended as it ended (:func:`ended_run`).
"""
from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .checkpoint import Checkpoint
from .data import Dataset
from .checks import count, listed
from .errors import ConfigError, DistnetError, warn
from .fit_result import FitResult
from .nn import Network, Optimizer
from .progress import Reporter
from .rundir import RunDir
from .stop import EarlyStopping, StopEvaluator

__all__ = ["Start", "best_params_of", "check_resumable", "data_config", "ended_run", "evaluation_owed", "holds_best",
           "kept_extra_config", "loads_as_network", "other_mode_message", "other_workers_message", "resumed_start",
           "set_aside_newer_best"]


_DIFFERENCES_SHOWN = 4  # of the settings a refused resume differs in


def check_resumable(saved: dict, current: dict, from_config_json: bool = False) -> None:
    """ConfigError unless a resume's ``current`` config (trainer, data, stop rule) is the one its run
    was ``saved`` with. Not "workers": a resume may draw its batches from another number of shards.
    ``from_config_json``: the resume's settings are those the run's config.json records (the
    command line's), which only an edit of it, or a checkpoint of another run, makes differ."""
    keys = ("network", "optimizer", "l2", "batch_size", "seed", "schedule", "augmentation", "eval_every", "window",
            "acceptable_error")
    differ = [line for k in keys for line in _differences(k, saved.get(k), current.get(k))]
    if differ:
        if len(differ) > _DIFFERENCES_SHOWN + 1:  # a trainer of another preset differs in a dozen fields
            differ = [*differ[:_DIFFERENCES_SHOWN], f"{len(differ) - _DIFFERENCES_SHOWN} other settings of its own"]
        raise ConfigError(f"cannot resume: the run was started with {'; with '.join(differ)}; resume with the "
                          f"run's own settings, which its config.json records"
                          + (" (if that file was edited, undo the edit; if checkpoint.npz was copied in from "
                             "another run, put this run's back)" if from_config_json else ""))
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


class Start(NamedTuple):
    """Where a fit starts: its run settings and configuration, the checkpoint it resumes, and,
    once the resumed run trains on (its workers placed), what config.json is to record and the
    warning to give (another number of workers)."""

    settings: dict
    config: dict
    checkpoint: Checkpoint | None
    record: dict
    warning: str | None


def resumed_start(run: RunDir, checkpoint: Checkpoint, saved: dict, settings: dict, config: dict,
                  extra_config: dict, distributed: bool) -> Start:
    """Where a resume that trains on starts: at ``checkpoint``, with its run ``settings`` and
    ``config`` (already checked against the checkpoint's); the warning for a run that goes on with another
    number of workers, or in the other mode (``distributed``: on Ray now); and what config.json
    (``saved``) is to record once the training starts, ``extra_config`` it lacks included."""
    then = checkpoint.config.get("workers", config["workers"])
    other_mode = (saved.get("protocol") is None) != (config.get("protocol") is None)
    warning = None
    if then != config["workers"]:
        warning = other_workers_message(run, checkpoint, then, config["workers"])
    elif other_mode and then > 1:
        warning = other_mode_message(run, then, distributed)
    # Recorded once the training starts (its workers placed; a resume that fails to start changes
    # nothing), so that a later resume without them trains to the same end, as often checkpointed
    # (a run of a version that did not record its checkpoint interval: 0, epoch ends), with these
    # workers and (on Ray) as many failures recovered from in a session; and whether it trains on
    # Ray or in one process.
    record = {"epochs": settings["epochs"]} if saved.get("epochs") != settings["epochs"] else {}
    if saved.get("checkpoint_every", 0) != settings["checkpoint_every"]:
        record["checkpoint_every"] = settings["checkpoint_every"]
    record |= {key: config[key] for key in ("workers", "max_failures")
               if key in config and saved.get(key) != config[key]}
    if other_mode:
        record["protocol"] = config.get("protocol")
    record.update({key: value for key, value in extra_config.items() if key not in saved})
    return Start(settings, config, checkpoint, record, warning)


def kept_extra_config(saved: dict, config: dict, given: dict) -> dict:
    """The extra_config a resume keeps from its run (``saved``: its config.json) beside its
    ``config``: what the run recorded, which the resume's own (``given``) may repeat or add to,
    but not change (a run's two records, config.json and its checkpoints, would disagree);
    ConfigError where it does."""
    if changed := [key for key, value in given.items() if key in saved and saved[key] != value]:
        key = changed[0]
        raise ConfigError(f"cannot resume with extra_config {key}={given[key]!r}: the run recorded "
                          f"{key}={saved[key]!r}; leave it out (a resume keeps what the run recorded) or give that")
    # "protocol": what a distributed run records, which a resume in one process drops.
    return {key: value for key, value in saved.items() if key not in config and key != "protocol"}


def ended_run(run: RunDir, checkpoint: Checkpoint, epochs: int, eval_every: int, network: Network,
              optimizer: Optimizer, reporter: Reporter, notes: dict) -> FitResult | None:
    """If the run of this checkpoint had ended (its stop rule said stop, or it trained ``epochs``
    epochs, evaluating every ``eval_every``), its result as it ended, with nothing trained or
    started and the trainer's ``network`` and ``optimizer`` set as the run left them; else None. A
    best.npz removed, damaged or ahead of the checkpoint since (a later resume killed before its
    next checkpoint) is written again (with ``notes``) from the checkpoint, which holds it, and so
    is such a history.jsonl. ConfigError if it has trained more than ``epochs`` epochs."""
    state = checkpoint.stopping_state
    evaluator = StopEvaluator.from_state(state["evaluator"]) if state else None
    trained = (checkpoint.epoch, checkpoint.step)
    if evaluator is not None and evaluator.stopped:
        ending, advice = "early_stop", "its stop rule ended it; to train longer, start a new run"
    elif trained > (epochs, 0):
        raise ConfigError(f"{run.path} has trained {checkpoint.epoch} epochs"
                          f"{f' and {checkpoint.step} steps' if checkpoint.step else ''}, more than the "
                          f"{epochs} asked for; resume it with a larger number of epochs")
    elif trained == (epochs, 0) and evaluation_owed(checkpoint, epochs, eval_every):
        return None  # not ended: a run ending there evaluates its last epoch first
    elif trained == (epochs, 0):
        ending = "max_epochs"
        advice = "to train longer, resume it with more epochs (--epochs with --resume; fit(epochs=...) in Python)"
    else:
        return None
    warn(f"{run.path} had ended at epoch {checkpoint.epoch} ({ending.replace('_', ' ')}): nothing "
         f"left to train; {advice}")
    # As after the run, which ended there: a fit after this one goes on from both.
    network.set_params(checkpoint.params)
    optimizer.load_state(checkpoint.optimizer_state)
    scored = evaluator is not None and math.isfinite(evaluator.lowest)
    best_params = best_params_of(run, checkpoint) if scored else None
    evaluated = best_params is not None
    best = Network.from_spec(network.spec(), best_params) if evaluated else network.copy()
    # (a checkpoint that does not hold its best network took best.npz as it is: nothing to compare)
    as_checkpointed = not evaluated or checkpoint.best_params is None or \
        holds_best(run, best_params, state["best_epoch"])
    if not (loads_as_network(run.best_path) and as_checkpointed):
        if evaluated:  # as of the checkpoint (a crash left it ahead, or damaged); its window is the state's
            if not as_checkpointed:  # ahead: the newest checkpoint was lost, and what it held is not trained again
                set_aside_newer_best(run, "the run ends at that checkpoint",
                                     "best.npz is the best network as of the checkpoint")
            stopping = EarlyStopping(network.spec(), 1, best_path=run.best_path, notes=notes)
            stopping.load_state(state, best_params)
            stopping.save_best()
        elif not scored:
            best.save(run.best_path, notes=notes)  # a run without validation: its last network is its result
    if not run.history_holds(checkpoint.history):  # from the checkpoint, as a resume that trains
        run.rewrite_history(checkpoint.history)
    result = FitResult(best_network=best,
                       best_error=evaluator.lowest if evaluated else math.nan,
                       best_epoch=state["best_epoch"] if evaluated else checkpoint.epoch,
                       epochs=checkpoint.epoch, stop_reason=ending, history=checkpoint.history,
                       run_dir=run.path, seconds=checkpoint.seconds, already_ended=True)
    reporter.on_end(result)
    return result


def set_aside_newer_best(run: RunDir, why: str, then: str) -> None:
    """Keep ``run``'s best.npz, saved after the checkpoint a resume starts from, under a name of its
    own where it holds a network, since the run will not train that network again: ``why`` says
    why (it goes on with other workers, or ends at the checkpoint). ``then``: what becomes of
    best.npz."""
    if not loads_as_network(run.best_path):
        return
    warn(f"{run.best_path} came after the checkpoint this run resumes from, and {why}: it is kept as "
         f"{run.set_aside_best().name}, and {then}")
