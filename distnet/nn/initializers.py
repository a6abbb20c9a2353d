"""Weight initializers. fan_in = inputs of the layer (rows of W), fan_out = its size (columns).

The original flipped its weight matrices to (inputs, outputs) and then used fan_out in the He
and LeCun rules; here they use fan_in, as their papers define them.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..checks import checked_number
from ..errors import ConfigError
from ..spec import Component, component


class Initializer(Component):
    """Base class: calling one draws a layer's weight matrix from its fan_in and fan_out."""

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        """A (fan_in, fan_out) float64 weight matrix."""
        raise NotImplementedError


class Random(Initializer):
    """Uniform in [low, high); the original's builder default is Random(−0.5, 0.5)."""

    name = "random"

    def __init__(self, low: float = -0.5, high: float = 0.5):
        low, high = (checked_number(f"Random initializer's {bound}", value, numbers.Real, math.isfinite,
                                    "a finite number") for bound, value in (("low", low), ("high", high)))
        if not low < high:
            raise ConfigError(f"Random initializer needs low < high, got {low}, {high}")
        self.low, self.high = low, high

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=(fan_in, fan_out))

    def spec(self) -> dict:
        return {**super().spec(), "low": self.low, "high": self.high}


class _Uniform(Initializer):
    def limit(self, fan_in: int, fan_out: int) -> float:
        """The bound L of U(−L, L) for a weight matrix of ``fan_in`` rows and ``fan_out`` columns."""
        raise NotImplementedError

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        limit = self.limit(fan_in, fan_out)
        return rng.uniform(-limit, limit, size=(fan_in, fan_out))


class _Normal(Initializer):
    def sigma(self, fan_in: int, fan_out: int) -> float:
        """The standard deviation σ of N(0, σ) for a weight matrix of ``fan_in`` rows and ``fan_out``
        columns."""
        raise NotImplementedError

    def __call__(self, fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, self.sigma(fan_in, fan_out), size=(fan_in, fan_out))


class XavierUniform(_Uniform):
    """U(±√(6 / (fan_in + fan_out)))."""

    name = "xavier_uniform"

    def limit(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(6 / (fan_in + fan_out))


class XavierNormal(_Normal):
    """N(0, σ = √(2 / (fan_in + fan_out)))."""

    name = "xavier_normal"

    def sigma(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(2 / (fan_in + fan_out))


class LeCunUniform(_Uniform):
    """U(±√(3 / fan_in))."""

    name = "lecun_uniform"

    def limit(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(3 / fan_in)


class LeCunNormal(_Normal):
    """N(0, σ = 1/√fan_in)."""

    name = "lecun_normal"

    def sigma(self, fan_in: int, fan_out: int) -> float:
        return 1 / math.sqrt(fan_in)


class HeUniform(_Uniform):
    """U(±√(6 / fan_in))."""

    name = "he_uniform"

    def limit(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(6 / fan_in)


class HeNormal(_Normal):
    """N(0, σ = √(2 / fan_in))."""

    name = "he_normal"

    def sigma(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(2 / fan_in)


INITIALIZERS: dict[str, type[Initializer]] = {
    cls.name: cls
    for cls in (Random, XavierUniform, XavierNormal, LeCunUniform, LeCunNormal, HeUniform, HeNormal)
}


def initializer_from_spec(spec: Initializer | dict | str) -> Initializer:
    """Build an initializer from its name or from the dict :meth:`Initializer.spec` returns (an
    :class:`Initializer` is returned as it is)."""
    return component(spec, Initializer, INITIALIZERS, "initializer")
