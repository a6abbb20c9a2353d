"""Cost functions: the per-sample cost and its derivative dC/da side by side.

``value(a, y)`` returns one cost per row; networks report the mean over rows. The derivative is
per sample as well: the network divides by the batch size once, when it averages.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

from .activations import Activation, Softmax


class Cost:
    name: str = ""

    def value(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def derivative(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def output_layer_gradient(self, activation: Activation, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dC/dz of the output layer; a cost may fuse this with the activation."""
        return activation.input_gradient(a, self.derivative(a, y))

    def spec(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Quadratic(Cost):
    """C = Σ(a − y)²; the original's builder default."""

    name = "quadratic"

    def value(self, a, y):
        d = a - y
        return np.einsum("ij,ij->i", d, d)

    def derivative(self, a, y):
        return 2 * (a - y)


class HalfQuadratic(Cost):
    """C = ½ Σ(a − y)²."""

    name = "half_quadratic"

    def value(self, a, y):
        d = a - y
        return 0.5 * np.einsum("ij,ij->i", d, d)

    def derivative(self, a, y):
        return a - y


class MSE(Cost):
    """C = (1/n) Σ(a − y)², n = the output size."""

    name = "mse"

    def value(self, a, y):
        d = a - y
        return np.einsum("ij,ij->i", d, d) / a.shape[-1]

    def derivative(self, a, y):
        return 2 * (a - y) / a.shape[-1]


class CrossEntropy(Cost):
    """C = −Σ y ln a, for outputs that are probabilities (Softmax, or Sigmoid per class).

    The original had this with log10 and a "fixme"; this one uses the natural log, clips a away
    from 0 so a confident wrong answer costs a large finite number, and fuses with Softmax into
    the exact, stable dC/dz = a − y.
    """

    name = "cross_entropy"

    def value(self, a, y):
        tiny = np.finfo(a.dtype).tiny
        return -np.einsum("ij,ij->i", y, np.log(np.maximum(a, tiny)))

    def derivative(self, a, y):
        tiny = np.finfo(a.dtype).tiny
        return -y / np.maximum(a, tiny)

    def output_layer_gradient(self, activation, a, y):
        if isinstance(activation, Softmax):
            # Exact when each row of y sums to 1 (one-hot labels).
            return a - y
        return super().output_layer_gradient(activation, a, y)


COSTS: dict[str, type[Cost]] = {cls.name: cls for cls in (Quadratic, HalfQuadratic, MSE, CrossEntropy)}


def cost_from_spec(spec: dict | str) -> Cost:
    """Build a cost from its name or from the dict :meth:`Cost.spec` returns."""
    name = spec if isinstance(spec, str) else spec.get("name")
    if name not in COSTS:
        raise ConfigError(f"unknown cost {name!r}; known: {', '.join(COSTS)}")
    return COSTS[name]()
