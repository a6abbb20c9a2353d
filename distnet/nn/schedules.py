"""Learning-rate schedules: the factor the base learning rate is multiplied by in each epoch.

A schedule is a pure function of (epoch, total epochs), so any epoch's rate can be rebuilt from
the run's configuration: a resumed run needs no schedule state, and the parameter server of a
distributed run simply receives each epoch's rate. Not in the original, which kept the rate
constant.
"""
from __future__ import annotations

import math
import numbers

from ..checks import Checked, checked_number, whole_number
from ..spec import Component, component


class Schedule(Component):
    """The learning rate of epoch ``e`` (0-based) of ``E`` is ``base · factor(e, E)``."""

    def factor(self, epoch: int, epochs: int) -> float:
        """What the base learning rate is multiplied by in epoch ``epoch`` (0-based) of ``epochs``;
        ConfigError unless ``epochs`` >= 1 and ``epoch`` is one of them, 0..epochs-1."""
        raise NotImplementedError


class CosineDecay(Schedule):
    """Half a cosine from the base rate down towards ``final`` times it over the run:
    factor = final + (1 − final)·(1 + cos(π·e/E))/2. Large steps early, fine ones at the end.
    """

    name = "cosine"
    final = Checked(lambda name, value: checked_number("the cosine schedule's final factor", value, numbers.Real,
                                                       lambda v: 0 <= v <= 1, "in [0, 1]"))

    def __init__(self, final: float = 0.0):
        self.final = final

    def factor(self, epoch: int, epochs: int) -> float:
        check_epoch(epoch, epochs)
        return self.final + (1 - self.final) * (1 + math.cos(math.pi * epoch / epochs)) / 2

    def spec(self) -> dict:
        return {**super().spec(), "final": self.final}


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``every`` epochs."""

    name = "step"
    every = Checked(lambda name, value: checked_number("the step schedule's every", value, numbers.Integral,
                                                       lambda v: v >= 1, "a whole number of epochs >= 1"))
    gamma = Checked(lambda name, value: checked_number("the step schedule's gamma", value, numbers.Real,
                                                       lambda v: 0 < v <= 1, "a factor in (0, 1]"))

    def __init__(self, every: int = 30, gamma: float = 0.1):
        self.every, self.gamma = every, gamma

    def factor(self, epoch: int, epochs: int) -> float:
        check_epoch(epoch, epochs)
        return self.gamma ** (epoch // self.every)

    def spec(self) -> dict:
        return {**super().spec(), "every": self.every, "gamma": self.gamma}


def check_epoch(epoch: int, epochs: int) -> None:
    """ConfigError unless ``epoch`` is one of ``epochs`` >= 1 (0-based): a schedule is defined over
    the run only (past its end a cosine would rise again, and 0 epochs would divide by 0)."""
    epochs = whole_number("a schedule's number of epochs", epochs, 1)
    checked_number("a schedule's epoch", epoch, numbers.Integral, lambda v: 0 <= v < epochs,
                   f"a whole number from 0 to {epochs - 1} (0-based: one of the run's {epochs} epochs)")


SCHEDULES: dict[str, type[Schedule]] = {cls.name: cls for cls in (CosineDecay, StepDecay)}


def schedule_from_spec(spec: Schedule | dict | str | None) -> Schedule | None:
    """Build a schedule from its name or from :meth:`Schedule.spec` (a :class:`Schedule` is
    returned as it is); ``None`` (a constant rate, as in the original) stays ``None``."""
    return None if spec is None else component(spec, Schedule, SCHEDULES, "learning-rate schedule")
