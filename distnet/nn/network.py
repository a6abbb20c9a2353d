"""The network: dense layers over one flat, contiguous parameter vector.

``params`` holds, for each layer in order, its weights (inputs × size, row-major) and then its
bias. Layers see views into it, so a parameter server can ship and update a single array, and
gradients come back in the same layout.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelFormatError
from ..io import atomic_writer, npz_bytes, parse_meta, read_npz, write_json
from .costs import Cost, Quadratic, cost_from_spec
from .initializers import Initializer, Random
from .layers import Dense

FORMAT = "distnet.network"
# The initializer of networks whose parameters come from elsewhere (from_spec): none at all. The
# zeros of a fresh array are pages not yet touched, which cost no memory until written; a worker
# of a large network, which computes on parameters it is sent, saves their size twice over.
_LEFT_ZERO = object()


class Network:
    """A feed-forward network of :class:`Dense` layers.

    >>> from distnet import Network, Dense
    >>> net = Network([Dense(3, "sigmoid"), Dense(2, "softmax")], input_size=4, seed=1)
    >>> net.predict(np.zeros((5, 4))).shape
    (5, 2)
    """

    def __init__(self, layers: list[Dense], input_size: int, cost: Cost | None = None,
                 initializer: Initializer | None = None, seed: int | None = None,
                 dtype: np.dtype | type | str = np.float32):
        if not layers:
            raise ConfigError("a network needs at least one layer")
        if not isinstance(input_size, (int, np.integer)) or input_size <= 0:
            raise ConfigError(f"input_size must be a positive integer, got {input_size!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype}")
        self.input_size = int(input_size)
        self.cost = cost if cost is not None else Quadratic()
        # Fresh layer objects: the network owns its views, callers may reuse their descriptions.
        self.layers = [Dense(layer.size, layer.activation) for layer in layers]
        self.params = np.zeros(self.parameter_count, dtype=self.dtype)
        self.weight_slices: list[slice] = []
        self._grad_slices: list[tuple[slice, slice]] = []
        offset, fan_in = 0, self.input_size
        for layer in self.layers:
            w = slice(offset, offset + fan_in * layer.size)
            b = slice(w.stop, w.stop + layer.size)
            self.weight_slices.append(w)
            self._grad_slices.append((w, b))
            offset, fan_in = b.stop, layer.size
        self._view_layers()
        self._buffers: BackpropBuffers | None = None  # see backprop(reuse_buffers=True)
        if initializer is _LEFT_ZERO:
            return
        initializer = initializer if initializer is not None else Random(-0.5, 0.5)
        rng = np.random.default_rng(seed)
        fan_in = self.input_size
        for layer in self.layers:
            layer.weights[...] = initializer(fan_in, layer.size, rng)
            fan_in = layer.size

    # -- structure --------------------------------------------------------------------------
    @property
    def sizes(self) -> list[int]:
        """Layer sizes, input first: e.g. [784, 36, 14, 10]."""
        return [self.input_size] + [layer.size for layer in self.layers]

    @property
    def parameter_count(self) -> int:
        return count_parameters(self.sizes)

    @property
    def output_size(self) -> int:
        return self.layers[-1].size

    def spec(self) -> dict:
        """The architecture as JSON-able data (no parameters)."""
        return {"input_size": self.input_size, "layers": [layer.spec() for layer in self.layers],
                "cost": self.cost.spec(), "dtype": self.dtype.name}

    @classmethod
    def from_spec(cls, spec: dict, params: np.ndarray | None = None) -> "Network":
        """Rebuild a network from :meth:`spec` with the given parameters (all zero without)."""
        net = cls([Dense(layer["size"], layer["activation"]) for layer in spec["layers"]],
                  input_size=spec["input_size"], cost=cost_from_spec(spec["cost"]),
                  dtype=spec.get("dtype", "float32"), initializer=_LEFT_ZERO)
        if params is not None:
            net.set_params(params)
        return net

    def set_params(self, params: np.ndarray) -> None:
        """Copy ``params`` (same layout and length) into this network."""
        params = np.asarray(params)
        if params.shape != self.params.shape:
            raise ConfigError(f"expected {self.params.size} parameters for layers {self.sizes}, "
                              f"got an array of shape {params.shape}")
        self.params[...] = params

    def use_params_memory(self, memory: np.ndarray) -> None:
        """Make ``memory`` this network's parameter vector, without copying: its values are the
        parameters from now on, and whoever writes to it (another process, through shared memory)
        changes this network. ``memory`` is 1-D, of ``params``' length and dtype."""
        if memory.shape != self.params.shape or memory.dtype != self.dtype:
            raise ConfigError(f"expected {self.params.size} {self.dtype} parameters for layers {self.sizes}, "
                              f"got an array of shape {memory.shape} and type {memory.dtype}")
        self.params = memory
        self._view_layers()

    def _view_layers(self) -> None:
        # Each layer's weights and bias are views of ``params``, so that one flat vector is all a
        # parameter server ships and updates.
        fan_in = self.input_size
        for layer, (w, b) in zip(self.layers, self._grad_slices):
            layer.weights = self.params[w].reshape(fan_in, layer.size)
            layer.bias = self.params[b]
            fan_in = layer.size

    def copy(self) -> "Network":
        return Network.from_spec(self.spec(), self.params)

    def astype(self, dtype) -> "Network":
        """A copy with parameters in another float type."""
        return Network.from_spec({**self.spec(), "dtype": np.dtype(dtype).name}, self.params)

    # -- math ---------------------------------------------------------------------------------
    def _inputs(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.input_size:
            raise ConfigError(f"the network takes rows of {self.input_size} inputs, "
                              f"got data of shape {X.shape}")
        return X

    def _targets(self, Y, rows: int) -> np.ndarray:
        Y = np.asarray(Y, dtype=self.dtype)
        if Y.ndim == 1 and rows == 1:  # one sample's targets, as predict() takes one sample's inputs
            Y = Y[None, :]
        if Y.shape != (rows, self.output_size):
            raise ConfigError(f"the targets must be one row of {self.output_size} values per sample (one-hot "
                              f"labels), got data of shape {Y.shape} for {rows} samples")
        return Y

    def predict(self, X, batch_size: int = 1_000) -> np.ndarray:
        """Outputs for each row of ``X`` (one row of ``output_size`` values per sample), computed
        ``batch_size`` rows at a time: the layers' outputs then take batch_size × width each,
        whatever the number of rows (all 10,000 test images at once would take 41 MB per
        1,024-wide layer)."""
        X = self._inputs(X)
        outputs = np.empty((len(X), self.output_size), self.dtype)
        for start in range(0, len(X), batch_size):
            a = X[start:start + batch_size]
            for layer in self.layers:
                a = layer.forward(a)
            outputs[start:start + len(a)] = a
        return outputs

    def cost_value(self, X, Y) -> float:
        """The mean cost over the rows of ``X`` against the targets ``Y`` (one-hot rows)."""
        X = self._inputs(X)
        return float(self.cost.value(self.predict(X), self._targets(Y, len(X))).mean())

    def error_rate(self, X, labels, batch_size: int = 1_000) -> float:
        """The fraction of rows whose largest output is not the label."""
        labels = np.asarray(labels)
        return self.error_count(X, labels, batch_size) / len(labels) if len(labels) else 0.0

    def error_count(self, X, labels, batch_size: int = 1_000) -> int:
        """The number of rows whose largest output is not the label (see :meth:`predict` for
        ``batch_size``)."""
        return int(np.count_nonzero(self.predict(X, batch_size).argmax(axis=1) != np.asarray(labels)))

    def backprop(self, X, Y, out: np.ndarray | None = None,
                 reuse_buffers: bool = False) -> tuple[np.ndarray, float, int]:
        """The gradient of the *summed* cost over the rows, in the layout of ``params``.

        Returns (gradient, summed cost, number of rows whose argmax matches Y's). ``out``, a
        preallocated vector of ``params``' shape, receives the gradient without a new allocation.
        ``reuse_buffers=True`` (training loops, which call this every step with the same number of
        rows) keeps the arrays the computation writes for the next call: see
        :class:`BackpropBuffers` (so two threads must not run it on one network at once). This is
        the one gradient routine: :meth:`gradient`, the trainer and the Ray workers all call it.
        """
        X = self._inputs(X)
        Y = self._targets(Y, len(X))
        grad = np.empty_like(self.params) if out is None else out
        if reuse_buffers:
            buffers = self._kept_buffers(len(X))
            into_outputs, scratch, into_output_gradients = buffers.outputs, buffers.scratch, buffers.output_gradients
        else:  # a one-off call keeps nothing: each array is fresh and freed once used up
            into_outputs = scratch = into_output_gradients = [None] * len(self.layers)
        outputs = [X]
        for layer, into, room in zip(self.layers, into_outputs, scratch):
            outputs.append(layer.forward(outputs[-1], out=into, scratch=room))
        a = outputs[-1]
        correct = int(np.count_nonzero(a.argmax(axis=1) == Y.argmax(axis=1)))
        cost_sum, delta = self.cost.total_and_output_layer_gradient(self.layers[-1].activation, a, Y)
        # Every delta is a temporary of this loop, so the activations may overwrite it in place.
        for i in range(len(self.layers) - 1, -1, -1):
            w, b = self._grad_slices[i]
            layer = self.layers[i]
            np.matmul(outputs[i].T, delta, out=grad[w].reshape(layer.weights.shape))
            np.add.reduce(delta, axis=0, out=grad[b])
            if i:
                output_gradient = np.matmul(delta, layer.weights.T, out=into_output_gradients[i - 1])
                delta = self.layers[i - 1].activation.input_gradient(outputs[i], output_gradient, overwrite=True,
                                                                     scratch=scratch[i - 1])
        return grad, cost_sum, correct

    def _kept_buffers(self, rows: int) -> "BackpropBuffers":
        if self._buffers is None or self._buffers.rows != rows:
            self._buffers = BackpropBuffers(self.sizes, rows, self.dtype)
        return self._buffers

    def gradient(self, X, Y) -> np.ndarray:
        """The gradient of the mean cost over the rows of ``X``, flat, in ``params`` order."""
        X = self._inputs(X)
        if not len(X):
            raise ConfigError("the gradient of the mean cost needs at least one sample")
        grad, _, _ = self.backprop(X, Y)
        grad /= len(X)
        return grad

    # -- files ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the network to ``path`` (``.npz``: the parameters plus JSON metadata), atomically.

        The file loads without pickle, in Python with :meth:`load` or any NumPy.
        """
        path = Path(path)
        with atomic_writer(path) as f:
            f.write(self.to_npz_bytes())
        return path

    def to_npz_bytes(self) -> bytes:
        """The bytes :meth:`save` writes."""
        return npz_bytes({"params": self.params}, {"format": FORMAT, "version": 1, **self.spec()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Network":
        """Read a network written by :meth:`save`; refuses anything else with ModelFormatError."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ModelFormatError(f"{path}: no such model file") from None
        except OSError as e:
            raise ModelFormatError(f"{path}: cannot read the model file ({e.strerror})") from None
        return cls.from_npz_bytes(data, str(path))

    @classmethod
    def from_npz_bytes(cls, data: bytes, name: str = "model") -> "Network":
        """Parse the bytes of a saved network (see :meth:`save`)."""
        arrays = read_npz(data, name, required=("params", "meta"))
        meta = parse_meta(arrays["meta"], name, FORMAT, version=1)
        params = arrays["params"]
        # Sizes are checked against the file's parameters before anything is allocated, so
        # metadata that claims a huge network cannot make loading a small file use much memory.
        sizes = spec_sizes(meta, name)
        if params.ndim != 1 or params.size != count_parameters(sizes):
            raise ModelFormatError(f"{name}: the metadata does not describe a valid network for its {params.size} "
                                   f"parameters (shape {params.shape}): layers {sizes} need "
                                   f"{count_parameters(sizes)}")
        try:
            net = cls.from_spec(meta)
        # AttributeError: a null or a list where a spec should be (found by tests/test_fuzz_loaders.py)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelFormatError(f"{name}: the metadata does not describe a valid network ({e})") from None
        if params.dtype != net.dtype:
            raise ModelFormatError(f"{name}: holds {params.dtype} parameters, but its metadata says {net.dtype}")
        net.params[...] = params
        return net

    def to_original_json(self) -> dict:
        """The original Java library's JSON form: each layer with size, activation, weights, bias."""
        layers = [{"size": self.input_size, "activation": None, "weights": None, "bias": None}]
        for layer in self.layers:
            layers.append({"size": layer.size, "activation": layer.activation.spec()["name"],
                           **({"alpha": layer.activation.alpha} if hasattr(layer.activation, "alpha") else {}),
                           "weights": layer.weights.tolist(), "bias": layer.bias.tolist()})
        return {"layers": layers, "cost": self.cost.spec()["name"]}

    def save_original_json(self, path: str | os.PathLike) -> Path:
        write_json(path, self.to_original_json())
        return Path(path)

    def __repr__(self) -> str:
        layers = ", ".join(repr(layer) for layer in self.layers)
        return f"Network(input_size={self.input_size}, layers=[{layers}], cost={self.cost!r}, dtype={self.dtype.name})"


class BackpropBuffers:
    """The arrays one :meth:`Network.backprop` over ``rows`` rows writes: each layer's output, the
    gradient flowing back into each hidden layer's output, and room for the activations'
    temporaries.

    A training loop keeps one set and reuses it every step (``backprop(reuse_buffers=True)``).
    Fresh arrays every step cost an allocation each and, in a process whose allocator hands freed
    memory back to the system between steps (as it did in distnet's Ray workers), page faults on
    every page of them again: measured for the 784-1024-1024-10 network, about 4,400 faults and
    13 ms of kernel time per step of a worker's 512 rows (the step took 86 ms instead of 70), and
    2,200 faults and 5 ms per step of 256 rows.
    """

    def __init__(self, sizes: list[int], rows: int, dtype: np.dtype):
        self.rows = rows
        self.outputs = [np.empty((rows, size), dtype) for size in sizes[1:]]
        self.scratch = [np.empty((rows, size), dtype) for size in sizes[1:]]
        # The output layer's comes from the cost.
        self.output_gradients = [np.empty((rows, size), dtype) for size in sizes[1:-1]]


def count_parameters(sizes: list[int]) -> int:
    """The number of weights and biases of dense layers with these sizes, input first."""
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))


def spec_sizes(spec: dict, name: str = "model") -> list[int]:
    """The layer sizes, input first, of a :meth:`Network.spec` read from a file; ModelFormatError
    unless they are positive whole numbers."""
    try:
        sizes = [spec["input_size"]] + [layer["size"] for layer in spec["layers"]]
    except (KeyError, TypeError):
        raise ModelFormatError(f"{name}: the metadata does not describe a valid network "
                               f"(its input_size or layer sizes are missing)") from None
    if len(sizes) < 2 or not all(type(size) is int and size > 0 for size in sizes):
        raise ModelFormatError(f"{name}: the metadata does not describe a valid network (layer sizes {sizes})")
    return sizes
