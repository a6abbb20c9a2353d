"""What a trainer is made with, and the settings it takes between fits.

:class:`TrainerSettings` holds a trainer's network, optimizer and settings, each checked whenever it
is set (a misspelt or read-only one refused), and the run configuration they make;
:class:`distnet.training.TrainerBase` adds the fit loop to it.
"""
from __future__ import annotations

import difflib
import inspect

import numpy as np

from .checks import Checked, instance_of, positive_int, seed_or_none
from .data.augment import RandomAffine
from .errors import ConfigError
from .nn import Network, Optimizer, UpdateRule
from .nn.schedules import Schedule


class _TakesItsArguments(type):
    """Refuses a trainer's arguments in the trainer's own name: Python's refusal named
    TrainerSettings.__init__, which no user calls, and said nothing of where an unknown one belongs.
    (Only a call of the class comes here, not copy or pickle.)"""

    def __call__(cls, *args, **kwargs):
        signature = cls.__signature__
        try:
            signature.bind(*args, **kwargs)
        except TypeError as refusal:
            names = list(signature.parameters)
            unknown = next((name for name in kwargs if name not in signature.parameters), None)
            close = difflib.get_close_matches(unknown, names, n=1) if unknown else []
            hint = f" (did you mean {close[0]}?)" if close else cls._belongs_elsewhere(unknown) if unknown else ""
            raise TypeError(f"{cls.__name__}(): {refusal}{hint}; {cls.__name__} takes {', '.join(names)}") from None
        return super().__call__(*args, **kwargs)

    @property
    def __signature__(cls) -> inspect.Signature:
        # What inspect and help() show for the class: its __init__'s, not this __call__'s.
        signature = inspect.signature(cls.__init__)
        return signature.replace(parameters=list(signature.parameters.values())[1:])


class TrainerSettings(metaclass=_TakesItsArguments):
    """A trainer's network, optimizer and settings (``settings()`` names them), and its run
    configuration (``config()``). The network and the learning rate cannot change during a fit,
    which :class:`~distnet.training.TrainerBase` runs; a subclass says how many workers it was told
    (``_told_workers``).
    """

    # Settings are checked whenever they are set: one changed between fits is checked as one given.
    batch_size = Checked(lambda name, value: positive_int("the batch size", value))
    seed = Checked(lambda name, value: _seed_of(value))
    schedule = Checked(lambda name, value: instance_of("schedule", value, Schedule, "CosineDecay()", optional=True))
    augmentation = Checked(lambda name, value: instance_of("augmentation", value, RandomAffine, "RandomAffine()",
                                                           optional=True))

    @classmethod
    def _belongs_elsewhere(cls, name: str) -> str:
        """Where argument ``name``, which this class does not take, belongs, as words in parentheses
        that follow its refusal ("" for nowhere known)."""
        return ""

    def __init__(self, network: Network, optimizer: Optimizer, l2: float = 0.0, batch_size: int = 32,
                 seed: int | None = None, schedule: Schedule | None = None,
                 augmentation: RandomAffine | None = None):
        self.batch_size = batch_size
        instance_of("network", network, Network, "Network([Dense(36, 'leaky_relu'), Dense(10, 'softmax')])")
        instance_of("optimizer", optimizer, Optimizer, "Nesterov(0.02, 0.87)")
        self.schedule = schedule
        self.augmentation = augmentation
        self.seed = seed
        self.rule = UpdateRule(optimizer, l2, network.weight_slices)
        self._network = network
        self._base_rate: float | None = None  # during a fit: the rate the schedule scales
        self._schedule_epochs: int | None = None  # during a fit: the schedule's horizon

    @property
    def l2(self) -> float:
        """The L2 factor: every weight is multiplied by (1 − l2) once per update."""
        return self.rule.l2

    @l2.setter
    def l2(self, l2: float) -> None:
        self.rule.l2 = l2

    @property
    def network(self) -> Network:
        """The network the trainer trains in place. Another may be given between fits: L2 then
        decays its weights (an optimizer that has stepped holds state for the first network's
        parameters, which a network of another size refuses)."""
        return self._network

    @network.setter
    def network(self, network: Network) -> None:
        if self._base_rate is not None:
            raise ConfigError("the network cannot change during a fit (the fit trains the one it began with); "
                              "set it before the fit or after it")
        instance_of("network", network, Network, "Network([Dense(36, 'leaky_relu'), Dense(10, 'softmax')])")
        self.rule = UpdateRule(self.optimizer, self.rule.l2, network.weight_slices)
        self._network = network

    @property
    def optimizer(self) -> Optimizer:
        """The optimizer the trainer was made with, fixed for its life (its state belongs to the
        parameters it updates); its learning rate is the setting :attr:`learning_rate`."""
        return self.rule.optimizer

    @property
    def shards(self) -> int:
        """The number of workers whose mini-batches the trainer draws (the shards of the training
        set): the number it was told; else that of the fit under way, or of the last (a resumed
        run's, or for a new run the trainer's own choice: one for :class:`~distnet.Trainer`, a
        ``DistributedTrainer`` one per CPU of the cluster, at most one per sample of a batch)."""
        workers = self._told_workers() or self._fit_workers
        if workers is None:
            raise ConfigError("a trainer told no number of workers decides it as a fit starts (the cluster's CPUs, "
                              "or a resumed run's number), and none has yet; pass workers=N to fix it")
        return workers

    _fit_workers: int | None = None  # told none: the number of the fit under way, or of the last

    def _told_workers(self) -> int | None:
        """The number of workers (shards) the trainer was told, which every fit uses; None: each
        fit decides (:meth:`~distnet.training.TrainerBase._decide_workers`)."""
        raise NotImplementedError

    @property
    def learning_rate(self) -> float:
        """The base learning rate: the optimizer's, which a schedule scales epoch by epoch during a
        fit (and puts back after it). Setting it sets the optimizer's."""
        return self._base_rate if self._base_rate is not None else self.optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: float) -> None:
        if self._base_rate is not None:
            raise ConfigError("the base learning rate cannot change during a fit (the run records it); set it "
                              "before the fit, or give the trainer a schedule")
        self.optimizer.learning_rate = learning_rate  # (checked by the optimizer)

    # Public attributes the trainer keeps in itself, rather than settings of the class.
    _INSTANCE_ATTRIBUTES: tuple[str, ...] = ("rule",)

    def __setattr__(self, name: str, value) -> None:
        # A misspelt setting (``trainer.batchsize = 64``) or another trainer's (``Trainer.workers``)
        # would be kept and never read: the fit would train as if it had not been set. A method or
        # a constant of distnet's replaced would break what reads it. A subclass of one's own may
        # keep what it likes.
        if not (name.startswith("_") or name in self._INSTANCE_ATTRIBUTES or self._is_setting(name)
                or not _defined_by_distnet(type(self), name)):
            settings = self.settings()
            close = difflib.get_close_matches(name, settings, n=1)
            what = f"{name} is read-only" if hasattr(type(self), name) else f"there is no setting {name!r}"
            if name in inspect.signature(type(self).__init__).parameters:  # such as the optimizer
                what += f", given as the trainer is made: for another, make a new {type(self).__name__}"
            hint = f" (did you mean {close[0]}?)" if close else "" if hasattr(type(self), name) else \
                self._belongs_elsewhere(name)
            raise ConfigError(f"{type(self).__name__}: {what}{hint}; the settings are {', '.join(settings)}")
        super().__setattr__(name, value)

    @classmethod
    def _is_setting(cls, name: str) -> bool:
        where = getattr(cls, name, None)
        return isinstance(where, Checked) or isinstance(where, property) and where.fset is not None

    @classmethod
    def settings(cls) -> list[str]:
        """The names of the settings a trainer of this class takes after it is made, each checked
        as one given to the constructor."""
        return [name for name in dir(cls) if not name.startswith("_") and cls._is_setting(name)]

    def config(self) -> dict:
        """The run's configuration as JSON-able data (stored in run directories and checkpoints)."""
        return {"network": self.network.spec(),
                "optimizer": {**self.optimizer.spec(), "learning_rate": self.learning_rate}, "l2": self.rule.l2,
                "batch_size": self.batch_size, "seed": self.seed, "workers": self.shards,
                "schedule": self.schedule.spec() if self.schedule else None,
                "augmentation": self.augmentation.spec() if self.augmentation else None}

    def __repr__(self) -> str:
        extras = "".join(f", {name}={value!r}" for name, value in self._repr_extras().items() if value is not None)
        sizes = "-".join(map(str, self.network.sizes))
        return (f"{type(self).__name__}(network={sizes}, optimizer={self.optimizer!r}, l2={self.rule.l2:g}, "
                f"batch_size={self.batch_size}, seed={self.seed}{extras})")

    def _repr_extras(self) -> dict:
        return {"schedule": self.schedule, "augmentation": self.augmentation}


def _defined_by_distnet(cls: type, name: str) -> bool:
    """Whether ``name`` on a ``cls`` is distnet's: defined by a class of distnet's, or, where no
    class defines it, asked of a class of distnet's own (not of a subclass elsewhere)."""
    owner = next((c for c in cls.__mro__ if name in vars(c)), cls)
    return owner.__module__.split(".")[0] == "distnet"


def _seed_of(seed) -> int:
    """``seed`` as the trainer keeps it: a whole number >= 0, or for None one drawn at random."""
    seed = seed_or_none(seed)
    return int(np.random.SeedSequence().entropy % 2**32) if seed is None else seed
