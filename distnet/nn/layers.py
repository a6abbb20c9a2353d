"""The dense layer: out = activation(in · W + b), owning the weights and bias *into* it."""
from __future__ import annotations

import numpy as np

from ..checks import positive_int
from .activations import Activation, activation_from_spec


class Dense:
    """A fully connected layer of ``size`` neurons.

    Before it joins a :class:`~distnet.nn.network.Network` it is only a description; the network
    then gives it ``weights`` (shape (inputs, size)) and ``bias`` (shape (size,)), which are
    views into the network's flat parameter vector.
    """

    def __init__(self, size: int, activation: Activation | str | dict):
        self.size = positive_int("a layer's size", size)
        self.activation = activation_from_spec(activation)
        self.weights: np.ndarray | None = None
        self.bias: np.ndarray | None = None

    def forward(self, x: np.ndarray, out: np.ndarray | None = None, scratch: np.ndarray | None = None) -> np.ndarray:
        """The layer's output for each row of ``x``; ``out`` (rows × size) receives it without an
        allocation, ``scratch`` (the same shape) holds the activation's temporaries."""
        z = np.matmul(x, self.weights, out=out)
        z += self.bias
        return self.activation(z, overwrite=True, scratch=scratch)  # z is ours: the activation may reuse it

    def spec(self) -> dict:
        """A JSON-able description: the size and the activation's spec."""
        return {"size": self.size, "activation": self.activation.spec()}

    def __repr__(self) -> str:
        return f"Dense({self.size}, {self.activation!r})"
