"""The dense layer: out = activation(in · W + b), owning the weights and bias *into* it."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..checks import positive_int, real_numbers
from ..errors import ConfigError
from .activations import Activation, activation_from_spec


class Dense:
    """A fully connected layer of ``size`` neurons.

    Before it joins a :class:`~distnet.nn.network.Network` it is only a description; the network
    then gives it ``weights`` (shape (inputs, size)) and ``bias`` (shape (size,)), which are
    views into the network's flat parameter vector. Assigning either copies the values into that
    view, in the network's dtype (``layer.weights = W`` does what ``layer.weights[...] = W`` does).
    """

    def __init__(self, size: int, activation: Activation | str | dict):
        self._weights: np.ndarray | None = None
        self._bias: np.ndarray | None = None
        self.size = size
        self.activation = activation

    @property
    def size(self) -> int:
        """The number of neurons (the layer's outputs); fixed once the layer is in a network."""
        return self._size

    @size.setter
    def size(self, size: int) -> None:
        if self._weights is not None:  # its weights are a part of the network's parameter vector
            raise ConfigError(f"a layer's size is fixed once it is in a network (this one has {self._size} "
                              f"neurons): build a new network with a Dense layer of the size you want")
        self._size = positive_int("a layer's size", size)

    @property
    def activation(self) -> Activation:
        """The activation applied to ``in · W + b``; fixed once the layer is in a network."""
        return self._activation

    @activation.setter
    def activation(self, activation: Activation | str | dict) -> None:
        if self._weights is not None:  # the network's cost was checked against it, its files record it
            raise ConfigError(f"a layer's activation is fixed once it is in a network (this one's is "
                              f"{self._activation!r}): to keep the parameters with another activation, edit the "
                              f"spec: spec = net.spec(); spec['layers'][i]['activation'] = 'tanh'; "
                              f"Network.from_spec(spec, net.params)")
        self._activation = activation_from_spec(activation)

    def use_views(self, weights: np.ndarray, bias: np.ndarray) -> None:
        """Make ``weights`` and ``bias``, views into a network's parameters, this layer's."""
        self._weights, self._bias = weights, bias

    @property
    def weights(self) -> np.ndarray | None:
        """The (inputs, size) weight matrix, a view into its network's parameters (None outside a network)."""
        return self._weights

    @weights.setter
    def weights(self, values: ArrayLike) -> None:
        self._copy_into(self._weights, values, "weights")

    @property
    def bias(self) -> np.ndarray | None:
        """The (size,) bias vector, a view into its network's parameters (None outside a network)."""
        return self._bias

    @bias.setter
    def bias(self, values: ArrayLike) -> None:
        self._copy_into(self._bias, values, "bias")

    def _copy_into(self, view: np.ndarray | None, values: ArrayLike, what: str) -> None:
        # Into the view, never a new array in its place: one that the network's params, its copies,
        # its files and training would never see.
        if view is None:
            raise ConfigError(f"{self!r} belongs to no network, so it has no {what} to set: a network makes its "
                              f"own layers from the ones it is given; set theirs, such as net.layers[0].{what}")
        values = real_numbers(f"a layer's {what}", np.asarray(values))
        if values.shape != view.shape:
            raise ConfigError(f"{self!r} takes {what} of shape {view.shape}, got an array of shape {values.shape}")
        view[...] = values

    def forward(self, x: np.ndarray, out: np.ndarray | None = None, scratch: np.ndarray | None = None) -> np.ndarray:
        """The layer's output for each row of ``x``; ``out`` (rows × size) receives it without an
        allocation, ``scratch`` (the same shape) holds the activation's temporaries."""
        try:
            z = np.matmul(x, self.weights, out=out)
        except (TypeError, ValueError):  # looked into only then: every training step passes here
            if self._weights is None:
                raise ConfigError(f"{self!r} belongs to no network, so it has no weights to compute with: a "
                                  f"network makes its own layers from the ones it is given; use net.predict(X), or "
                                  f"net.layers[0].forward(X)") from None
            raise
        z += self.bias
        return self.activation(z, overwrite=True, scratch=scratch)  # z is ours: the activation may reuse it

    def spec(self) -> dict:
        """A JSON-able description: the size and the activation's spec."""
        return {"size": self.size, "activation": self.activation.spec()}

    def __repr__(self) -> str:
        return f"Dense({self.size}, {self.activation!r})"


def count_parameters(sizes: list[int]) -> int:
    """The number of weights and biases of dense layers with these sizes, input first."""
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
