"""StepStats: what the training loop sums over steps (cost, correct samples, samples).

Shared by the loop (:mod:`distnet.training`) and the parameter server, which sums a chunk's
steps on its side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Costs are summed in whole units of 2**-64: the sum of whole numbers does not depend on their order.
_UNITS_PER_COST = 2**64


@dataclass
class StepStats:
    """Sums over steps: cost, correctly classified samples, samples.

    The cost is summed exactly, as a whole number of ``2**-64`` (each step's cost cut to that
    once): an epoch's sum is then the same however its steps were grouped into chunks, which
    depends on how fast they ran, and wherever a resume split it. A non-finite cost stays a float
    (and so does the sum), which is how divergence shows.
    """

    cost_units: int | float = 0
    correct: int = 0
    samples: int = 0

    @classmethod
    def of_step(cls, cost: float, correct: int, samples: int) -> "StepStats":
        cost = float(cost)
        units = int(math.ldexp(cost, 64)) if math.isfinite(cost) else cost
        return cls(units, int(correct), int(samples))

    @classmethod
    def from_saved(cls, saved: dict) -> "StepStats":
        """From :func:`vars` of one, as a checkpoint keeps it (before 2026-12-01 with ``cost``, a
        float sum, which is cut to units like a step's cost)."""
        if "cost" in saved:
            return cls.of_step(saved["cost"], saved.get("correct", 0), saved.get("samples", 0))
        return cls(**saved)

    @property
    def cost(self) -> float:
        """The summed cost."""
        units = self.cost_units
        return units / _UNITS_PER_COST if isinstance(units, int) else units

    def __iadd__(self, other: "StepStats") -> "StepStats":
        self.cost_units += other.cost_units
        self.correct += other.correct
        self.samples += other.samples
        return self

    @property
    def error_rate(self) -> float:
        return 1 - self.correct / self.samples if self.samples else math.nan
