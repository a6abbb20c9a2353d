"""Cost functions: the per-sample cost and its derivative dC/da side by side.

``value(a, y)`` returns one cost per row; networks report the mean over rows. The derivative is
per sample as well: the network divides by the batch size once, when it averages.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..spec import Component, component
from .activations import Activation, Softmax


class Cost(Component):
    """Base class: subclasses define ``value`` (the cost of each row) and ``derivative`` (dC/da)."""

    def value(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The cost of each row of outputs ``a`` against targets ``y`` (one value per row)."""
        raise NotImplementedError

    def derivative(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dC/da, element by element, for each row (not divided by the number of rows)."""
        raise NotImplementedError

    def check_output_activation(self, activation: Activation) -> None:
        """ConfigError if this cost is not defined on what ``activation`` outputs."""

    def output_layer_gradient(self, activation: Activation, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dC/dz of the output layer; a cost may fuse this with the activation."""
        return activation.input_gradient(a, self.derivative(a, y), overwrite=True)

    def total_and_output_layer_gradient(self, activation: Activation, a: np.ndarray,
                                        y: np.ndarray) -> tuple[float, np.ndarray]:
        """(the cost summed over the rows, dC/dz of the output layer): what backprop needs, which
        a cost may compute together."""
        return float(self.value(a, y).sum()), self.output_layer_gradient(activation, a, y)


class _SquaredError(Cost):
    """C = Σ(a − y)² / divisor; dC/da = 2 (a − y) / divisor."""

    def divisor(self, a: np.ndarray) -> int:
        """What each row's sum of squares (of outputs ``a`` minus targets) is divided by."""
        raise NotImplementedError

    def value(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        d = a - y
        return np.einsum("ij,ij->i", d, d) / self.divisor(a)

    def derivative(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self._derivative_from_difference(a, a - y)

    def _derivative_from_difference(self, a: np.ndarray, d: np.ndarray) -> np.ndarray:
        # In place: d is a temporary of ours. Skipping the division by 1, and dividing by 2 (exact)
        # instead of halving, leaves every cost's numbers exactly those of its formula.
        d *= 2
        divisor = self.divisor(a)
        if divisor != 1:
            d /= divisor
        return d

    def total_and_output_layer_gradient(self, activation: Activation, a: np.ndarray,
                                        y: np.ndarray) -> tuple[float, np.ndarray]:
        # One difference for both, and a dot product instead of per-row sums (the training step
        # needs only the total).
        d = a - y
        total = float(np.vdot(d, d)) / self.divisor(a)
        return total, activation.input_gradient(a, self._derivative_from_difference(a, d), overwrite=True)


class Quadratic(_SquaredError):
    """C = Σ(a − y)²; the original's builder default."""

    name = "quadratic"

    def divisor(self, a: np.ndarray) -> int:
        """1: each row's cost is its plain sum of squares."""
        return 1


class HalfQuadratic(_SquaredError):
    """C = ½ Σ(a − y)²."""

    name = "half_quadratic"

    def divisor(self, a: np.ndarray) -> int:
        """2: each row's cost is half its sum of squares."""
        return 2


class MSE(_SquaredError):
    """C = (1/n) Σ(a − y)², n = the output size."""

    name = "mse"

    def divisor(self, a: np.ndarray) -> int:
        """The output size (``a``'s last dimension): each row's cost is the mean of its squares."""
        return a.shape[-1]


class CrossEntropy(Cost):
    """C = −Σ y ln a, for outputs that are a probability distribution over the classes (Softmax).

    The original had this with log10 and a "fixme"; this one uses the natural log, clips a away
    from 0 so a confident wrong answer costs a large finite number, and fuses with Softmax into
    the exact, stable dC/dz = a Σy − y (a − y for one-hot or soft targets, whose rows sum to 1).
    """

    name = "cross_entropy"

    def check_output_activation(self, activation: Activation) -> None:
        # −Σ y ln a only rewards the labelled class's output. Softmax's outputs sum to 1, so
        # raising it lowers the others; any other activation lets every output rise together
        # (Sigmoid's all to 1, at a cost of 0; Softplus's without bound, below any cost), and
        # one that can output 0 or less overflows ln a.
        if not isinstance(activation, Softmax):
            raise ConfigError(f"cross-entropy is the cost of a probability distribution over the classes: end the "
                              f"network with 'softmax', not {activation.spec()['name']!r} (or use the 'quadratic' "
                              f"cost)")

    def value(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        tiny = np.finfo(a.dtype).tiny
        return -np.einsum("ij,ij->i", y, np.log(np.maximum(a, tiny)))

    def derivative(self, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        tiny = np.finfo(a.dtype).tiny
        return -y / np.maximum(a, tiny)

    def output_layer_gradient(self, activation: Activation, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        # Softmax's, the only output allowed (check_output_activation). a − y alone holds only for
        # rows of y that sum to 1; Trainer.step takes any targets (multi-hot, all zero). For one-hot
        # rows the sum is exactly 1.0, so this is bit for bit a − y.
        return a * y.sum(axis=-1, keepdims=True) - y


COSTS: dict[str, type[Cost]] = {cls.name: cls for cls in (Quadratic, HalfQuadratic, MSE, CrossEntropy)}


def cost_from_spec(spec: Cost | dict | str) -> Cost:
    """Build a cost from its name or from the dict :meth:`Cost.spec` returns (a :class:`Cost` is
    returned as it is)."""
    return component(spec, Cost, COSTS, "cost")
