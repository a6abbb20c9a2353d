"""Activation functions, each a tiny class with the function and its derivative side by side.

As in the original, the derivative is expressed through the layer's *output* ``a = fn(z)``:
``input_gradient(a, dC_da)`` returns dC/dz for a whole batch (one row per sample). Element-wise
activations multiply by ``derivative(a)``; Softmax overrides the product with its Jacobian.

Both take ``overwrite=True`` from callers that no longer need their input array (the training hot
path passes its own temporaries): the result may then reuse that array's memory, which saves an
allocation and a pass over the data on every layer of every step. Both also take ``scratch``, an
array of the input's shape and type that the function may use for its temporaries, so that a
training step allocates no layer-sized array for hidden layers of Leaky ReLU (the seed preset's)
(see :class:`~distnet.nn.network.BackpropBuffers`); the other activations, and the cost at the
output layer, still make a temporary or two. Results are the same either way.
"""
from __future__ import annotations

import numpy as np

from ..checks import Checked, fraction
from ..spec import Component, component


class Activation(Component):
    """Base class: subclasses define ``__call__`` and ``derivative``."""

    def __call__(self, z: np.ndarray, overwrite: bool = False, scratch: np.ndarray | None = None) -> np.ndarray:
        """fn(z), element by element (or row by row); ``overwrite``: the result may reuse ``z``;
        ``scratch``: room for temporaries."""
        raise NotImplementedError

    def derivative(self, a: np.ndarray) -> np.ndarray:
        """d fn / dz, written as a function of the output ``a``."""
        raise NotImplementedError

    def input_gradient(self, a: np.ndarray, output_gradient: np.ndarray, overwrite: bool = False,
                       scratch: np.ndarray | None = None) -> np.ndarray:
        """dC/dz from the output ``a`` and dC/da (the chain rule's last factor); ``overwrite``: the
        result may reuse ``output_gradient``; ``scratch``: room for temporaries."""
        return np.multiply(self.derivative(a), output_gradient, out=output_gradient if overwrite else None)


class Identity(Activation):
    """identity(z) = z; derivative 1, so the gradient passes through unchanged."""

    name = "identity"

    def __call__(self, z: np.ndarray, overwrite: bool = False, scratch: np.ndarray | None = None) -> np.ndarray:
        return z if overwrite else z.copy()

    def derivative(self, a: np.ndarray) -> np.ndarray:
        return np.ones_like(a)

    def input_gradient(self, a: np.ndarray, output_gradient: np.ndarray, overwrite: bool = False,
                       scratch: np.ndarray | None = None) -> np.ndarray:
        return output_gradient if overwrite else output_gradient.copy()


class Sigmoid(Activation):
    """σ(z) = 1/(1+e^−z), computed without overflow for either sign of z; σ'(z) = σ(z)(1 − σ(z)),
    that is a(1 − a)."""

    name = "sigmoid"

    def __call__(self, z: np.ndarray, overwrite: bool = False, scratch: np.ndarray | None = None) -> np.ndarray:
        # exp of a negative magnitude never overflows, whatever the sign of z.
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e))

    def derivative(self, a: np.ndarray) -> np.ndarray:
        return a * (1 - a)


class Tanh(Activation):
    """tanh(z); tanh'(z) = 1 − tanh²(z) = 1 − a²."""

    name = "tanh"

    def __call__(self, z: np.ndarray, overwrite: bool = False, scratch: np.ndarray | None = None) -> np.ndarray:
        return np.tanh(z, out=z if overwrite else None)

    def derivative(self, a: np.ndarray) -> np.ndarray:
        return 1 - a * a


class ReLU(Activation):
    """max(z, 0); derivative 1 where z > 0 (that is, a > 0) and 0 elsewhere."""

    name = "relu"

    def __call__(self, z: np.ndarray, overwrite: bool = False, scratch: np.ndarray | None = None) -> np.ndarray:
        return np.maximum(z, 0, out=z if overwrite else None)

    def derivative(self, a: np.ndarray) -> np.ndarray:
        return (a > 0).astype(a.dtype)

    def input_gradient(self, a: np.ndarray, output_gradient: np.ndarray, overwrite: bool = False,
                       scratch: np.ndarray | None = None) -> np.ndarray:
        return np.where(a > 0, output_gradient, 0)


class LeakyReLU(Activation):
    """max(z, alpha·z); the original's alpha is 0.01."""

    name = "leaky_relu"
    alpha = Checked(lambda name, value: fraction("LeakyReLU alpha", value))

    def __init__(self, alpha: float = 0.01):
        self.alpha = alpha

    def __call__(self, z: np.ndarray, overwrite: bool = False, scratch: np.ndarray | None = None) -> np.ndarray:
        # max(z, alpha·z) picks z for z > 0 and alpha·z otherwise, since 0 <= alpha < 1: the
        # same values as a where() in two passes instead of three. alpha as a Python float is
        # taken in z's float type, and makes integer z float (z.dtype.type(alpha) made it 0 there).
        return np.maximum(z, np.multiply(z, self.alpha, out=scratch), out=z if overwrite else None)

    def derivative(self, a: np.ndarray) -> np.ndarray:
        return np.where(a > 0, 1, self.alpha).astype(a.dtype)

    def input_gradient(self, a: np.ndarray, output_gradient: np.ndarray, overwrite: bool = False,
                       scratch: np.ndarray | None = None) -> np.ndarray:
        # The slope is 1 where a > 0 (exactly where z > 0) and alpha elsewhere: max(sign(a), alpha)
        # is that slope, and measured faster than a where() or a masked multiply.
        slope = np.sign(a, out=scratch)
        np.maximum(slope, a.dtype.type(self.alpha), out=slope)
        return np.multiply(output_gradient, slope, out=output_gradient if overwrite else None)

    def spec(self) -> dict:
        return {**super().spec(), "alpha": self.alpha}


class Softplus(Activation):
    """ln(1 + e^z). Its derivative is sigmoid(z) = 1 − e^(−a); the original got this wrong."""

    name = "softplus"

    def __call__(self, z: np.ndarray, overwrite: bool = False, scratch: np.ndarray | None = None) -> np.ndarray:
        return np.logaddexp(0, z, out=z if overwrite else None)

    def derivative(self, a: np.ndarray) -> np.ndarray:
        return -np.expm1(-a)


class Softmax(Activation):
    """Row-wise softmax, shifted by the row maximum so exp never overflows."""

    name = "softmax"

    def __call__(self, z: np.ndarray, overwrite: bool = False, scratch: np.ndarray | None = None) -> np.ndarray:
        e = np.subtract(z, np.maximum.reduce(z, axis=-1, keepdims=True), out=z if overwrite else None)
        np.exp(e, out=e)
        e /= np.add.reduce(e, axis=-1, keepdims=True)
        return e

    def derivative(self, a: np.ndarray) -> np.ndarray:
        raise NotImplementedError("Softmax has a full Jacobian; use input_gradient")

    def input_gradient(self, a: np.ndarray, output_gradient: np.ndarray, overwrite: bool = False,
                       scratch: np.ndarray | None = None) -> np.ndarray:
        # The original's override: dC/dz = a ⊙ (dC/da − Σ a ⊙ dC/da), per row.
        weighted = np.add.reduce(a * output_gradient, axis=-1, keepdims=True)
        gradient = np.subtract(output_gradient, weighted, out=output_gradient if overwrite else None)
        gradient *= a
        return gradient


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Identity, Sigmoid, Tanh, ReLU, LeakyReLU, Softplus, Softmax)
}


def activation_from_spec(spec: Activation | dict | str) -> Activation:
    """Build an activation from its name or from the dict :meth:`Activation.spec` returns (an
    :class:`Activation` is returned as it is)."""
    return component(spec, Activation, ACTIVATIONS, "activation")
