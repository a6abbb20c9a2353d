"""The network: dense layers over one flat, contiguous parameter vector.

``params`` holds, for each layer in order, its weights (inputs × size, row-major) and then its
bias. Layers see views into it, so a parameter server can ship and update a single array, and
gradients come back in the same layout.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ..checks import as_array, class_labels, count, float_dtype, positive_int, real_numbers, seed_or_none
from ..errors import ConfigError, ModelFormatError, OutOfMemoryError
from .activations import Softmax, activation_from_spec
from .costs import Cost, Quadratic, cost_from_spec
from .initializers import Initializer, Random, initializer_from_spec
from .layers import Dense, count_parameters
from . import network_files, original_json

# The initializer of networks whose parameters come from elsewhere (from_spec): none at all. The
# zeros of a fresh array are pages not yet touched, which cost no memory until written; a worker
# of a large network, which computes on parameters it is sent, saves their size twice over.
_LEFT_ZERO = object()


class Network:
    """A feed-forward network of :class:`Dense` layers.

    ``cost`` and ``initializer`` are instances (``Quadratic()``) or names (``"quadratic"``), as a
    layer's activation is; by default the original's: ``Quadratic()`` and ``Random(-0.5, 0.5)``
    (biases start at 0). ``seed`` makes the initial weights reproducible; ``dtype`` is float32
    (the default) or float64 (the original's precision).

    >>> import numpy as np
    >>> from distnet import Network, Dense
    >>> net = Network([Dense(3, "sigmoid"), Dense(2, "softmax")], input_size=4, seed=1)
    >>> net.predict(np.zeros((5, 4))).shape
    (5, 2)
    """

    def __init__(self, layers: list[Dense], input_size: int, cost: Cost | str | dict | None = None,
                 initializer: Initializer | str | dict | None = None, seed: int | None = None,
                 dtype: np.dtype | type | str = np.float32):
        if not isinstance(layers, (list, tuple)) or not all(isinstance(layer, Dense) for layer in layers):
            raise ConfigError(f"layers must be a list of Dense layers, such as [Dense(36, 'leaky_relu'), "
                              f"Dense(10, 'softmax')], got {layers!r}")
        if not layers:
            raise ConfigError("a network needs at least one layer")
        if any(layer.size == 1 and isinstance(layer.activation, Softmax) for layer in layers):
            raise ConfigError("Dense(1, 'softmax') always outputs 1.0 (a softmax's outputs sum to 1, and it has one), "
                              "so its gradient is zero and it never learns: for a single output use 'sigmoid' (or "
                              "'identity' for a regression), or give the softmax one neuron per class (2 or more)")
        positive_int("input_size", input_size)
        seed = seed_or_none(seed)
        self.dtype = float_dtype(dtype)
        if initializer is None:
            initializer = Random(-0.5, 0.5)
        elif initializer is not _LEFT_ZERO:
            initializer = initializer_from_spec(initializer)
        self.input_size = int(input_size)
        # Fresh layers and activations: the network owns its views, callers may reuse (and change)
        # their descriptions.
        self.layers = tuple(Dense(layer.size, activation_from_spec(layer.activation.spec())) for layer in layers)
        self.cost_function = Quadratic() if cost is None else cost
        self._params = _zeros_for_parameters(self.sizes, self.dtype)
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
        self._built = True
        if initializer is _LEFT_ZERO:
            return
        rng = np.random.default_rng(seed)
        fan_in = self.input_size
        for layer in self.layers:
            layer.weights[...] = initializer(fan_in, layer.size, rng)
            fan_in = layer.size

    _LAYOUT = ("dtype", "input_size", "layers", "weight_slices")

    def __setattr__(self, name: str, value: object) -> None:
        # The parameter vector, its layers' views and a saved file all follow the layout it was
        # made with: another input size, dtype or list of layers would no longer fit them.
        if name in self._LAYOUT and getattr(self, "_built", False):
            instead = "use astype(dtype) for a copy in another float type" if name == "dtype" else \
                "build a new Network for another layout"
            raise ConfigError(f"a network's {name} is fixed once it is made (its parameters are laid out for it); "
                              f"{instead}")
        if name == "cost":  # an attribute of that name would hide the method cost(X, Y)
            raise ConfigError("a network's cost(X, Y) is the mean cost over samples; set the cost function the "
                              "network is trained on as network.cost_function")
        super().__setattr__(name, value)

    @property
    def cost_function(self) -> Cost:
        """The cost the network is trained on (the original's costFunction); another may be set (by
        name, spec or object) if it fits the output layer's activation."""
        return self._cost

    @cost_function.setter
    def cost_function(self, cost: Cost | str | dict) -> None:
        cost = cost_from_spec(cost)
        cost.check_output_activation(self.layers[-1].activation)
        self._cost = cost

    # -- structure --------------------------------------------------------------------------
    @property
    def sizes(self) -> list[int]:
        """Layer sizes, input first: e.g. [784, 36, 14, 10]."""
        return [self.input_size] + [layer.size for layer in self.layers]

    @property
    def parameter_count(self) -> int:
        """The number of weights and biases: the length of :attr:`params`."""
        return count_parameters(self.sizes)

    @property
    def output_size(self) -> int:
        """The number of outputs (the last layer's size): one per class."""
        return self.layers[-1].size

    def spec(self) -> dict:
        """The architecture as JSON-able data (no parameters)."""
        return {"input_size": self.input_size, "layers": [layer.spec() for layer in self.layers],
                "cost": self.cost_function.spec(), "dtype": self.dtype.name}

    @classmethod
    def from_spec(cls, spec: dict, params: np.ndarray | None = None) -> "Network":
        """Rebuild a network from :meth:`spec` with the given parameters (all zero without)."""
        _check_spec_parts(spec)
        net = cls([Dense(layer["size"], layer["activation"]) for layer in spec["layers"]],
                  input_size=spec["input_size"], cost=cost_from_spec(spec["cost"]),
                  dtype=spec.get("dtype", "float32"), initializer=_LEFT_ZERO)
        if params is not None:
            net.set_params(params)
        return net

    @property
    def params(self) -> np.ndarray:
        """The flat parameter vector. Change it in place, or assign a whole vector, which
        :meth:`set_params` copies in: the layers' weights and biases are views of this one array,
        so a new array in its place would be one they never see."""
        return self._params

    @params.setter
    def params(self, params: np.ndarray) -> None:
        self.set_params(params)

    def set_params(self, params: ArrayLike) -> None:
        """Copy ``params`` (same layout and length) into this network."""
        params = real_numbers("a network's parameters", np.asarray(params))
        if params.shape != self._params.shape:
            raise ConfigError(f"expected {self._params.size} parameters for layers {self.sizes}, "
                              f"got an array of shape {params.shape}")
        self._params[...] = params

    def use_params_memory(self, memory: np.ndarray) -> None:
        """Make ``memory`` this network's parameter vector, without copying: its values are the
        parameters from now on, and whoever writes to it (another process, through shared memory)
        changes this network. ``memory`` is 1-D, of ``params``' length and dtype."""
        if not isinstance(memory, np.ndarray):  # a list would be a copy, which no one else writes to
            raise ConfigError(f"use_params_memory takes a NumPy array (such as one in shared memory), got "
                              f"{type(memory).__name__}; to copy values in, use set_params")
        if memory.shape != self.params.shape or memory.dtype != self.dtype:
            raise ConfigError(f"expected {self.params.size} {self.dtype} parameters for layers {self.sizes}, "
                              f"got an array of shape {memory.shape} and type {memory.dtype}")
        self._params = memory
        self._view_layers()

    def _view_layers(self) -> None:
        # Each layer's weights and bias are views of ``params``, so that one flat vector is all a
        # parameter server ships and updates.
        fan_in = self.input_size
        for layer, (w, b) in zip(self.layers, self._grad_slices):
            layer.use_views(self.params[w].reshape(fan_in, layer.size), self.params[b])
            fan_in = layer.size

    def __setstate__(self, state: dict) -> None:
        # copy.deepcopy and pickle copy each layer's weights and bias apart from the parameter
        # vector: made its views again, or training (on params) would never change what predicts.
        self.__dict__.update(state)
        self._view_layers()

    def copy(self) -> "Network":
        """An independent network with the same architecture, cost, dtype and (copied) parameters."""
        return Network.from_spec(self.spec(), self.params)

    def astype(self, dtype: np.dtype | type | str) -> "Network":
        """A copy with parameters in another float type."""
        return Network.from_spec({**self.spec(), "dtype": dtype}, self.params)

    # -- math ---------------------------------------------------------------------------------
    def _inputs(self, X: ArrayLike) -> np.ndarray:
        if hasattr(X, "images") and hasattr(X, "labels"):  # a Dataset, which the math does not know
            raise ConfigError("the network takes an array of inputs, one row per sample, not a data set: pass "
                              "its .images (and to error_rate its .labels too)")
        # As given first: a torch tensor's dtype says nothing to NumPy until converted.
        X = as_array("the network's inputs", X)
        if X.dtype == object and any(hasattr(x, "pixels") for x in X.flat):  # a Digit (dataset[i]), or several
            raise ConfigError("the network takes an array of inputs, one row per sample, not a Digit: pass its "
                              ".pixels (for several, np.stack([digit.pixels for digit in digits]))")
        if X.dtype.kind in ("u", "b"):
            raise ConfigError(f"the network takes floating-point inputs, got {X.dtype} values (image "
                              f"bytes? scale them as the network was trained: X.astype(np.float32) / 255)")
        X = real_numbers("the network's inputs", X).astype(self.dtype, copy=False)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.input_size:
            raise ConfigError(f"the network takes rows of {self.input_size} inputs, "
                              f"got data of shape {X.shape}")
        return X

    def _targets(self, Y: ArrayLike, rows: int) -> np.ndarray:
        Y = real_numbers("the targets", as_array("the targets", Y)).astype(self.dtype, copy=False)
        if Y.ndim == 1 and rows == 1:  # one sample's targets, as predict() takes one sample's inputs
            Y = Y[None, :]
        if Y.shape != (rows, self.output_size):
            column = ""
            if Y.shape == (rows,) and self.output_size == 1:
                column = " (a single target per sample: as a column, Y[:, None])"
            elif Y.shape == (rows,):
                column = (f" (class labels? as one-hot rows: np.eye({self.output_size})[labels], or a data set's "
                          f".one_hot())")
            raise ConfigError(f"the targets must be one row of {self.output_size} values per sample (one-hot labels "
                              f"for classes, the target values for a regression), got data of shape {Y.shape} for "
                              f"{count(rows, 'sample')}{column}")
        return Y

    def predict(self, X: ArrayLike, batch_size: int = 1_000) -> np.ndarray:
        """Outputs for each row of ``X`` (one row of ``output_size`` values per sample), computed
        ``batch_size`` rows at a time: the layers' outputs then take batch_size × width each,
        whatever the number of rows (all 10,000 test images at once would take 41 MB per
        1,024-wide layer)."""
        X = self._inputs(X)
        outputs = np.empty((len(X), self.output_size), self.dtype)
        for start, a in self._outputs_by_batch(X, batch_size):
            outputs[start:start + len(a)] = a
        return outputs

    def _outputs_by_batch(self, X: np.ndarray, batch_size: int,
                          reuse_buffers: bool = False) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, outputs) of every ``batch_size`` rows of ``X`` (inputs already checked), all
        computed in one set of arrays, so each batch's outputs last until the next is computed."""
        positive_int("batch_size", batch_size)
        if reuse_buffers:
            kept = self._kept_buffers(batch_size)
            into_outputs, scratch = kept.outputs, kept.scratch
        else:
            rows = min(batch_size, len(X))
            into_outputs = [np.empty((rows, size), self.dtype) for size in self.sizes[1:]]
            scratch = [np.empty((rows, size), self.dtype) for size in self.sizes[1:]]
        for start in range(0, len(X), batch_size):
            a = X[start:start + batch_size]
            rows = len(a)
            for layer, into, room in zip(self.layers, into_outputs, scratch):
                a = layer.forward(a, out=into[:rows], scratch=room[:rows])
            yield start, a

    def cost(self, X: ArrayLike, Y: ArrayLike) -> float:
        """The mean cost over the rows of ``X`` against the targets ``Y`` (one-hot rows)."""
        X = self._inputs(X)
        if not len(X):
            raise ConfigError("the mean cost needs at least one sample, and the data has none")
        return float(self.cost_function.value(self.predict(X), self._targets(Y, len(X))).mean())

    def error_rate(self, X: ArrayLike, labels: ArrayLike | None = None, batch_size: int = 1_000) -> float:
        """The fraction of rows whose largest output is not the label (see :meth:`error_count`);
        ConfigError for no rows, whose error rate is undefined."""
        X = self._inputs(X)
        errors = self.error_count(X, labels, batch_size)
        if not len(X):
            raise ConfigError("the error rate needs at least one sample, and the data has none")
        return errors / len(X)

    def error_count(self, X: ArrayLike, labels: ArrayLike | None = None, batch_size: int = 1_000,
                    reuse_buffers: bool = False) -> int:
        """The number of rows whose largest output is not the label: ``labels`` holds one class
        index 0..output_size-1 per row of ``X`` (see :meth:`predict` for ``batch_size``).
        ``reuse_buffers=True`` computes in the arrays :meth:`backprop` keeps for ``batch_size`` rows:
        a training loop that evaluates between its steps then allocates nothing for it."""
        X = self._inputs(X)
        if labels is None:
            raise ConfigError("the labels are missing: pass one class index per row of X, "
                              "error_rate(X, labels)")
        labels = class_labels(labels, len(X), self.output_size)
        errors = unscorable = 0
        for start, outputs in self._outputs_by_batch(X, batch_size, reuse_buffers):
            unscorable += unscorable_rows(outputs)
            errors += np.count_nonzero(outputs.argmax(axis=1) != labels[start:start + len(outputs)])
        check_scorable(unscorable, len(X))
        return int(errors)

    def backprop(self, X: ArrayLike, Y: ArrayLike, out: np.ndarray | None = None,
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
        if out is not None and not (isinstance(out, np.ndarray) and out.shape == self.params.shape
                                    and out.dtype == self.dtype):
            got = f"shape {out.shape}, {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
            raise ConfigError(f"out must be an array like params (shape {self.params.shape}, {self.dtype}), got {got}")
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
        cost_sum, delta = self.cost_function.total_and_output_layer_gradient(self.layers[-1].activation, a, Y)
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

    def gradient(self, X: ArrayLike, Y: ArrayLike) -> np.ndarray:
        """The gradient of the mean cost over the rows of ``X``, flat, in ``params`` order."""
        X = self._inputs(X)
        if not len(X):
            raise ConfigError("the gradient of the mean cost needs at least one sample")
        grad, _, _ = self.backprop(X, Y)
        grad /= len(X)
        return grad

    # -- files ----------------------------------------------------------------------------------
    # The work is network_files'; these methods are the API.
    def save(self, path: str | os.PathLike, notes: dict | None = None) -> Path:
        """Write the network to ``path`` (``.npz``: the parameters plus JSON metadata), atomically.

        ``notes``: a JSON object (a dict of strings, numbers, lists, dicts, booleans and None) to
        keep with the network, such as what it was trained on;
        :func:`~distnet.nn.network_files.saved_notes` reads them back (as JSON does: tuples come back
        as lists). The network itself never reads them.
        Anything JSON cannot hold is refused with ConfigError, and nothing is written.

        The file loads without pickle, in Python with :meth:`load` or any NumPy. A network whose
        parameters hold NaN or infinite values (a training that diverged leaves them so) is refused
        with ConfigError, and nothing is written: :meth:`load` would refuse the file, and a good
        network saved there before would be lost.
        """
        return network_files.save(self, path, notes)

    def to_npz_bytes(self, notes: dict | None = None) -> bytes:
        """The bytes :meth:`save` writes (ConfigError, as there, for NaN or infinite parameters)."""
        return network_files.to_npz_bytes(self, notes)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Network":
        """Read a network written by :meth:`save` (a run directory stands for its best network,
        ``best.npz``); refuses anything else with ModelFormatError."""
        return network_files.load(cls, path)

    @classmethod
    def from_npz_bytes(cls, data: bytes, name: str = "model") -> "Network":
        """Parse the bytes of a saved network (see :meth:`save`)."""
        return network_files.from_npz_bytes(cls, data, name)

    def to_original_json(self) -> dict:
        """The network in the layout the original Java library's ``NeuralNetwork.toJson`` writes;
        see :func:`distnet.nn.original_json.to_original_json`."""
        return original_json.to_original_json(self)

    def save_original_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_original_json` to ``path``, atomically."""
        return network_files.save_original_json(self, path)

    @classmethod
    def from_original_json(cls, doc: dict, dtype: np.dtype | type | str = np.float64) -> "Network":
        """The network a document in the original's JSON layout describes (parsed JSON); see
        :func:`distnet.nn.original_json.parse_original_json`. ``dtype`` defaults to float64, the
        original's double."""
        spec, params = original_json.parse_original_json(doc, dtype)  # (which checks dtype, the caller's)
        try:
            return cls.from_spec(spec, params)
        except ConfigError as e:  # what the original holds and distnet refuses, such as a softmax of one neuron
            raise ModelFormatError(f"not a network distnet takes ({e})") from None

    @classmethod
    def load_original_json(cls, path: str | os.PathLike, dtype: np.dtype | type | str = np.float64) -> "Network":
        """Read a file in the original's JSON layout (see :meth:`from_original_json`)."""
        return network_files.load_original_json(cls, path, dtype)

    def __repr__(self) -> str:
        layers = ", ".join(repr(layer) for layer in self.layers)
        return f"Network(input_size={self.input_size}, layers=[{layers}], cost={self.cost_function!r}, dtype={self.dtype.name})"


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


def unscorable_rows(outputs: np.ndarray) -> int:
    """How many rows of a network's ``outputs`` hold a NaN or infinite value: the argmax of a row
    of NaN is 0, so such rows would count as answers of class 0."""
    return int(np.count_nonzero(~np.isfinite(outputs).all(axis=1)))


def check_scorable(broken: int, samples: int) -> None:
    """ConfigError if ``broken`` of the ``samples`` rows of outputs are unscorable (see
    :func:`unscorable_rows`)."""
    if broken:
        raise ConfigError(f"the network's outputs are NaN or infinite for {broken} of the "
                          f"{count(samples, 'sample')}, so they have no class to score: either the inputs hold NaN "
                          f"or infinite values, or the parameters do (a training that diverged leaves them NaN); "
                          f"check np.isfinite(X).all() and np.isfinite(net.params).all()")


def _zeros_for_parameters(sizes: list[int], dtype: np.dtype) -> np.ndarray:
    """The flat parameter vector of a network of ``sizes``; OutOfMemoryError where it cannot be had."""
    count = count_parameters(sizes)
    try:
        return np.zeros(count, dtype=dtype)
    except (MemoryError, ValueError):  # ValueError: more elements than an array can have
        raise OutOfMemoryError(f"a {'-'.join(map(str, sizes))} network has {count:,} parameters "
                               f"({count * dtype.itemsize / 2**30:,.1f} GiB as {dtype}), more than this machine can "
                               f"hold; use smaller layers") from None


def _check_spec_parts(spec: object) -> None:
    """ConfigError unless ``spec`` has the parts :meth:`Network.from_spec` reads (the network
    checks their values as it is built)."""
    example = ("such as Network.spec() returns: {'input_size': 784, 'layers': [{'size': 10, 'activation': "
               "'softmax'}], 'cost': 'quadratic'}")
    if not isinstance(spec, dict):
        raise ConfigError(f"a network's spec is a dict {example}; got {spec!r:.80}")
    missing = [key for key in ("input_size", "layers", "cost") if key not in spec]
    if missing:
        raise ConfigError(f"the network's spec lacks {', '.join(missing)}: give a dict {example}")
    layers = spec["layers"]
    if not (isinstance(layers, (list, tuple))
            and all(isinstance(layer, dict) and {"size", "activation"} <= layer.keys() for layer in layers)):
        raise ConfigError(f"a network spec's layers must be a list of dicts with a size and an activation, "
                          f"such as {{'size': 10, 'activation': 'softmax'}}; got {layers!r:.80}")
