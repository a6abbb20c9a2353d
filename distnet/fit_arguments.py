"""What :meth:`~distnet.training.TrainerBase.fit` checks of its arguments before any work starts
(before a run directory is written, or a distributed trainer starts Ray): each says what is wrong
and how to fix it. Also the run settings a fit takes where it is given none (:data:`FIT_DEFAULTS`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .checks import acceptable_error_or_none, json_object, listed, path_of, whole_number
from .data import Dataset
from .data.augment import RandomAffine
from .data.datasets import DIGIT_CLASSES
from .data.digits import PIXELS, SIDE
from .errors import ConfigError
from .nn import Network, Optimizer
from .progress import Reporter
from .rundir import RunDir


def check_fit_arguments(network: Network, train: Dataset, validation: Dataset | None,
                        augmentation: RandomAffine | None, **settings) -> dict:
    """``settings`` (epochs, eval_every, window, checkpoint_every, acceptable_error; None for the
    run's own or the default) as plain numbers, or ConfigError for anything fit cannot train with."""
    for name, data in (("train", train), ("validation", validation)):
        if not isinstance(data, Dataset) and not (name == "validation" and data is None):
            raise ConfigError(f"{name} must be a distnet Dataset (such as load_mnist().{name}, or "
                              f"Dataset(images, labels) for your own data), got {type(data).__name__}")
        if data is not None and (network.input_size != data.images.shape[1]
                                 or network.output_size != len(data.classes)):
            what = "training" if name == "train" else name
            default = (" (the ten digits, a Dataset's classes unless it is given classes=[...] of your own)"
                       if data.classes == DIGIT_CLASSES and network.output_size != len(data.classes) else "")
            raise ConfigError(f"the network does not fit the {what} data: it takes {network.input_size} inputs and "
                              f"gives {network.output_size} outputs, the data has {data.images.shape[1]} values per "
                              f"sample and {len(data.classes)} classes{default}")
    if validation is not None and validation.classes != train.classes:
        # Scored by label number, a validation set of other classes would pass for one of these.
        raise ConfigError(f"the validation data's classes ({listed(validation.classes)}) are not the training "
                          f"data's ({listed(train.classes)}): validate on data of the same classes, in the same "
                          f"order")
    if augmentation is not None and train.images.shape[1] != PIXELS:
        raise ConfigError(f"augmentation moves {SIDE}x{SIDE} images, and these samples have "
                          f"{train.images.shape[1]} values each; train without it (augmentation=None)")
    settings = checked_settings(settings)
    if validation is None or not len(validation):
        stop_rule = [f"{name}={settings[name]}" for name in ("window", "acceptable_error") if settings[name] is not None]
        if stop_rule:  # they would be taken, and never used: the run would train to its last epoch
            raise ConfigError(f"{' and '.join(stop_rule)} {'set' if len(stop_rule) > 1 else 'sets'} when to stop on "
                              f"the validation error, and there is no validation set: give one "
                              f"(fit(train, validation, ...)), or leave {'them' if len(stop_rule) > 1 else 'it'} out")
    return settings


def check_finite_state(network: Network, optimizer: Optimizer) -> None:
    """ConfigError unless the parameters and the optimizer's state are finite: a fit that
    diverged leaves them NaN or infinite, and a new fit from there would only diverge again."""
    params_broken = not np.isfinite(network.params).all()
    broken = ["the network's parameters"] if params_broken else []
    broken += [f"the optimizer's {key.replace('_', ' ')}" for key, slot in optimizer.state().items()
               if not np.isfinite(slot).all()]
    if broken:
        are = "are" if params_broken or len(broken) > 1 else "is"
        raise ConfigError(f"{' and '.join(broken)} {are} NaN or infinite (as a fit that diverged leaves them), so "
                          f"training from them would diverge at once: train a new network, or a saved one (such "
                          f"as a run's best.npz), with a new optimizer (in a new trainer)")


def check_starting_cost(network: Network, train: Dataset, rows: int) -> None:
    """ConfigError where the network's cost on the first ``rows`` training samples overflows before
    any training, its parameters finite: a fit that diverged can leave them so (its cost overflowed
    first), and the first step would diverge and blame the learning rate."""
    sample = train.subset(slice(0, rows))
    with np.errstate(over="ignore", invalid="ignore"):
        cost = network.cost(sample.images, sample.one_hot(network.dtype))
    if not np.isfinite(cost):
        raise ConfigError(f"the network's cost on the first {len(sample)} training samples is {cost} before any "
                          f"training ({network.dtype} overflowed): its largest parameter is "
                          f"{np.abs(network.params).max():.2g} (as a fit that diverged can leave them) and its largest "
                          f"input {np.abs(sample.images).max():.2g}: train a new network, or a saved one (such as a "
                          f"run's best.npz), with a new optimizer (in a new trainer), on inputs near [-1, 1]")


def checked_extra_config(extra_config) -> dict:
    """``extra_config`` (None: none) as a dict for a run's config.json, or ConfigError for one
    that is not a dict of JSON values by names."""
    return {} if extra_config is None else json_object("extra_config", extra_config, "{'preset': 'seed'}")


def checked_reporter(reporter) -> Reporter:
    """``reporter``, or the silent Reporter for None; ConfigError for anything that cannot
    receive the events (checked before a run directory is written)."""
    if reporter is None:
        return Reporter()
    events = ("on_start", "on_steps", "on_evaluation", "on_end")
    if isinstance(reporter, type) or not all(callable(getattr(reporter, e, None)) for e in events):
        given = (f"the class {reporter.__name__}, not an instance" if isinstance(reporter, type)
                 else f"{reporter!r}, which lacks {', '.join(e for e in events if not callable(getattr(reporter, e, None)))}")
        raise ConfigError(f"reporter must be a Reporter, such as TerminalReporter() (or an object with the methods "
                          f"{', '.join(events)}); got {given}")
    return reporter


def checked_run_dir(run_dir: str | Path | None, resume: bool, checkpoint_every: int,
                    extra_config: dict) -> RunDir | None:
    """The fit's run directory, checked to take what the fit will do there: a new run, or a run to
    resume (with a checkpoint, not in use); ConfigError otherwise, or for what goes into one
    (checkpoints, an ``extra_config``) without it, before a distributed trainer starts Ray."""
    if run_dir is not None:
        path_of("run_dir", run_dir)
    if resume and run_dir is None:
        raise ConfigError("resume=True continues the run in run_dir: give run_dir")
    if checkpoint_every and run_dir is None:
        raise ConfigError(f"checkpoint_every={checkpoint_every} writes checkpoints into run_dir: give run_dir, "
                          f"or leave checkpoint_every at 0")
    if extra_config and run_dir is None:  # it would be taken, and written nowhere
        raise ConfigError(f"extra_config ({', '.join(extra_config)}) goes into the config.json of run_dir: give "
                          f"run_dir, or leave extra_config out")
    if run_dir is None:
        return None
    run = RunDir(run_dir)
    if resume:
        run.check_resumable()
    else:
        run.check_new()
    return run


def checked_settings(settings: dict, resolved: bool = False) -> dict:
    """Run settings (epochs, eval_every, window, checkpoint_every, acceptable_error) as plain
    numbers, None staying None (once ``resolved``, only an acceptable_error may be None);
    ConfigError for one fit cannot train with."""
    def checked(name: str, value):
        if value is None and (name == "acceptable_error" or not resolved):
            return None
        if name == "acceptable_error":
            return acceptable_error_or_none(value)
        return whole_number(name, value, 0 if name == "checkpoint_every" else 1)

    return {name: checked(name, value) for name, value in settings.items()}


#: fit's settings for a new run when not given (a resumed run keeps its own).
FIT_DEFAULTS = {"epochs": 100, "eval_every": 5, "window": 4, "checkpoint_every": 0}


def resolved_settings(given: dict, defaults: dict) -> dict:
    """fit's run settings: each one given, else the default (for a resume, the run's own)."""
    return {key: defaults.get(key) if value is None else value for key, value in given.items()}


# How many samples check_finite reads at a time.
_ROWS_AT_ONCE = 4096


def check_finite(what: str, data: Dataset | None, given: Dataset | None = None) -> None:
    """ConfigError naming the first sample of ``data`` with a NaN or infinite value (a few rows at
    a time: no array of the data's size is made, and a memory-mapped file is read once); where
    that sample was finite as ``given`` (before ``data`` was cast to the network's dtype), the
    message says its values were too large for that dtype."""
    if data is None or data.images.dtype.kind != "f":
        return
    for start in range(0, len(data), _ROWS_AT_ONCE):
        finite = np.isfinite(data.images[start:start + _ROWS_AT_ONCE]).all(axis=1)
        if not finite.all():
            first = start + int(np.flatnonzero(~finite)[0])
            if given is not None and np.isfinite(given.images[first]).all():
                dtype = data.images.dtype
                raise ConfigError(f"the {what} data hold values too large for {dtype}, the network's dtype (sample "
                                  f"{first} is the first such: beyond ±{np.finfo(dtype).max:.1e} a value becomes "
                                  f"infinite); scale the data, as inputs near [-1, 1] train best")
            raise ConfigError(f"the {what} data hold NaN or infinite values (sample {first} is the first such); "
                              f"fix or drop those samples (training on them would only diverge)")
