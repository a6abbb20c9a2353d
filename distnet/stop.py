"""Early stopping: the original's StopEvaluator, plus the keeper of the best network.

Both are plain Python. The distributed trainer runs :class:`EarlyStopping` as a Ray actor (with
one method added that returns the verdict and the state together), so the single-process and the
distributed path share one stop rule.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .checks import acceptable_error_or_none, checked_number
from .errors import ConfigError
from .io import write_json
from .nn import Network


class StopEvaluator:
    """The original's stop rule over a moving window of error rates.

    ``stop(error_rate)``:
      1. a strictly lower error than any before becomes the best (``improved`` is then True);
      2. with ``acceptable_error`` set, stop once the best is below it;
      3. append the error to the window, dropping the oldest beyond ``window`` entries; never
         stop before the window is full;
      4. stop when the window's average is greater than the previous average; otherwise remember
         this average.
    """

    def __init__(self, window: int, acceptable_error: float | None = None):
        self.window = checked_number("the stop window", window, numbers.Integral, lambda v: v >= 1,
                                     "a positive number of evaluations")
        self.acceptable_error = acceptable_error_or_none(acceptable_error)
        self.lowest = math.inf
        self.improved = False
        self.errors: list[float] = []
        self.last_average = math.inf

    def stop(self, error_rate: float) -> bool:
        """Take the next evaluation's error rate and say whether to stop, by the rule above; sets
        ``improved``."""
        error_rate = checked_number("the error rate", error_rate, numbers.Real, math.isfinite, "a finite number")
        self.improved = error_rate < self.lowest
        if self.improved:
            self.lowest = error_rate
        if self._acceptable_reached():
            return True
        self.errors.append(error_rate)
        if len(self.errors) > self.window:
            self.errors.pop(0)
        if len(self.errors) < self.window:
            return False
        average = self._average()
        if average > self.last_average:
            return True
        self.last_average = average
        return False

    @property
    def stopped(self) -> bool:
        """Whether the last error rate it was given made it say stop. Read from its state alone
        (saying stop leaves the window's average above the remembered one, or the best below the
        acceptable error), so an evaluator restored from a checkpoint knows it too."""
        return self._acceptable_reached() or (len(self.errors) == self.window and self._average() > self.last_average)

    def _acceptable_reached(self) -> bool:
        return self.acceptable_error is not None and self.lowest < self.acceptable_error

    def _average(self) -> float:
        # fsum: the same errors in another order give the same average (a plain sum can come out a
        # rounding unit higher and stop on a window whose average has not risen). The original's
        # Java stream average is compensated too.
        return math.fsum(self.errors) / len(self.errors)

    def state(self) -> dict:
        """Everything it holds, as a dict of plain values for a checkpoint (see :meth:`from_state`)."""
        # No value yet (infinite) is None: JSON has no Infinity (Python's json writes it; jq and
        # JavaScript refuse the file's metadata then).
        return {"window": self.window, "acceptable_error": self.acceptable_error,
                "lowest": _finite_or_none(self.lowest), "improved": self.improved, "errors": list(self.errors),
                "last_average": _finite_or_none(self.last_average)}

    def __repr__(self) -> str:
        return (f"StopEvaluator(window={self.window}, acceptable_error={self.acceptable_error}, "
                f"lowest={self.lowest:.4f}, in_window={len(self.errors)}, stopped={self.stopped})")

    @classmethod
    def from_state(cls, state: dict) -> "StopEvaluator":
        """An evaluator exactly as the one whose :meth:`state` this is."""
        evaluator = cls(state["window"], state["acceptable_error"])
        evaluator.lowest = _infinite_if_none(state["lowest"])
        evaluator.improved = state["improved"]
        evaluator.errors = list(state["errors"])
        evaluator.last_average = _infinite_if_none(state["last_average"])
        return evaluator


def _finite_or_none(value: float) -> float | None:
    return None if math.isinf(value) else value


def _infinite_if_none(value: float | None) -> float:
    return math.inf if value is None else value


@dataclass(frozen=True)
class Verdict:
    """What early stopping concluded from one evaluation."""

    stop: bool
    improved: bool
    best_error: float
    best_epoch: int


class EarlyStopping:
    """A :class:`StopEvaluator` that also keeps the best network.

    It copies the parameters of every strictly better evaluation (a real copy: the caller may
    reuse or release its array) and, given ``best_path``, writes that network there atomically
    at once, with a JSON record beside it, so the best network survives any later crash;
    ``notes`` (a JSON object, such as what the network is trained on) go into that file with it
    (see :meth:`distnet.Network.save`).
    """

    def __init__(self, network_spec: dict, window: int, acceptable_error: float | None = None,
                 best_path: str | Path | None = None, notes: dict | None = None):
        self.network_spec = network_spec
        self.notes = notes
        self.evaluator = StopEvaluator(window, acceptable_error)
        self.best_path = Path(best_path) if best_path is not None else None
        if self.best_path is not None and not self.best_path.parent.is_dir():
            # (not found only at the first improvement, taken for a run directory moved away meanwhile)
            raise ConfigError(f"best_path {self.best_path}: the folder {self.best_path.parent} does not exist; create "
                              f"it, or give a path in a folder that does")
        self.best_params: np.ndarray | None = None
        self.best_epoch = -1

    def evaluate(self, epoch: int, error_rate: float, params: np.ndarray) -> Verdict:
        """Apply the stop rule to the validation ``error_rate`` of ``epoch``; if it is a new best,
        keep a copy of ``params`` (and write it to ``best_path``)."""
        # Both checked before anything changes: a call refused for either leaves all as it was.
        candidate = Network.from_spec(self.network_spec, params).params
        stop = self.evaluator.stop(error_rate)
        if self.evaluator.improved:
            self.best_params = candidate
            self.best_epoch = epoch
            self.save_best()
        return Verdict(stop, self.evaluator.improved, self.evaluator.lowest, self.best_epoch)

    def best_network(self) -> Network | None:
        """The best network so far (a new Network), or None before the first evaluation."""
        if self.best_params is None:
            return None
        return Network.from_spec(self.network_spec, self.best_params)

    def save_best(self) -> None:
        """Write the best network to ``best_path`` (if given, and once there is a best) atomically,
        with the notes, and a JSON record beside it of its epoch and validation error."""
        if self.best_path is not None and self.best_params is not None and self.best_epoch >= 0:
            if not self.best_path.parent.is_dir():  # moved or removed while the run trained: no new one in its place
                raise ConfigError(f"the run directory {self.best_path.parent} is gone (moved or removed), so the best "
                                  f"network was not written")
            self.best_network().save(self.best_path, notes=self.notes)
            write_json(self.best_path.with_suffix(".json"),
                       {"epoch": self.best_epoch, "validation_error": self.evaluator.lowest})

    def state(self) -> dict:
        """JSON-able state without the best parameters (a checkpoint stores those beside it, and
        :meth:`load_state` takes them back)."""
        return {"evaluator": self.evaluator.state(), "best_epoch": self.best_epoch}

    def load_state(self, state: dict, best_params: np.ndarray | None) -> None:
        """Restore from :meth:`state` and a copy of the best network's parameters (None: none yet,
        as before the first evaluation); writes nothing."""
        self.evaluator = StopEvaluator.from_state(state["evaluator"])
        self.best_epoch = state["best_epoch"]
        self.best_params = None if best_params is None else np.array(best_params, copy=True)


class Stopping(Protocol):
    """What the training loop asks of the stop rule and the keeper of the best network:
    :class:`EarlyStopping` in a single process, a handle to its actor in a distributed run."""

    def evaluate(self, epoch: int, error_rate: float, params: np.ndarray) -> Verdict:
        """The stop rule's :class:`Verdict` on ``epoch``'s validation ``error_rate``; keeps ``params`` if best yet."""

    def save_best(self) -> None:
        """Write the best network so far, with a JSON record of its epoch and error, to its file (if it has one)."""

    def state(self) -> dict:
        """The JSON-able state for a checkpoint, without the best parameters."""

    def load_state(self, state: dict, best_params: np.ndarray | None) -> None:
        """Restore from :meth:`state` and the best parameters (None: none yet); writes nothing."""
