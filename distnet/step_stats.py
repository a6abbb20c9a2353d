"""StepStats: what the training loop sums over steps (cost, correct samples, samples).

Shared by the loop (:mod:`distnet.training`) and the parameter server, which sums a chunk's
steps on its side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Costs are summed in whole units of 2**-64: the sum of whole numbers does not depend on their order.
_UNITS_PER_COST = 2**64
# A step cost this large has diverged: it counts as infinite (and its units could not become a float).
_DIVERGED_COST = 2.0**900


@dataclass(repr=False)
class StepStats:
    """Sums over steps: cost, correctly classified samples, samples.

    The cost is summed exactly, as a whole number of ``2**-64`` (each step's cost cut to that
    once): an epoch's sum is then the same however its steps were grouped into chunks, which
    depends on how fast they ran, and wherever a resume split it. A non-finite step cost, or one
    of 2**900 or more, is kept as a float infinity or NaN (and so is the sum): that is how
    divergence shows.
    """

    cost_units: int | float = 0
    correct: int = 0
    samples: int = 0

    @classmethod
    def of_step(cls, cost: float, correct: int, samples: int) -> "StepStats":
        """The sums of one step: its cost (summed over its samples), its correct samples and its samples."""
        cost = float(cost)
        if abs(cost) >= _DIVERGED_COST:
            cost = math.copysign(math.inf, cost)
        units = int(math.ldexp(cost, 64)) if math.isfinite(cost) else cost
        return cls(units, int(correct), int(samples))

    @classmethod
    def from_saved(cls, saved: dict) -> "StepStats":
        """From :func:`vars` of one, as a checkpoint keeps it (before 2026-12-01 with ``cost``, a
        float sum, which is cut to units like a step's cost); ValueError if it is neither."""
        if not saved:
            return cls()
        if not isinstance(saved, dict) or set(saved) not in ({"cost", "correct", "samples"},
                                                             {"cost_units", "correct", "samples"}):
            raise ValueError(f"not the sums of steps: {saved!r}")
        cost = saved.get("cost", saved.get("cost_units"))
        counts = saved["correct"], saved["samples"]
        if not all(type(c) is int and c >= 0 for c in counts) or type(cost) not in (int, float):
            raise ValueError(f"not the sums of steps: {saved!r}")
        if "cost" in saved:
            return cls.of_step(cost, *counts)
        if type(cost) is float and math.isfinite(cost):  # units are whole; only a diverged sum is a float
            raise ValueError(f"not the sums of steps: {saved!r}")
        return cls(cost, *counts)

    @property
    def cost(self) -> float:
        """The summed cost."""
        units = self.cost_units
        return units / _UNITS_PER_COST if isinstance(units, int) else units

    def __repr__(self) -> str:
        return f"StepStats(cost={self.cost!r}, correct={self.correct}, samples={self.samples})"

    def __iadd__(self, other: "StepStats") -> "StepStats":
        self.cost_units += other.cost_units
        self.correct += other.correct
        self.samples += other.samples
        return self

    @property
    def error_rate(self) -> float:
        """The fraction of samples misclassified; NaN with no samples."""
        return 1 - self.correct / self.samples if self.samples else math.nan
