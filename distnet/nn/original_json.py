"""The original Java library's JSON form of a network, which its ``NeuralNetwork.toJson`` writes
(Gson's form of its ``NetworkState``): ``{"costFunction": "Quadratic", "layers": [...]}``. The
first layer is the input layer, ``{"bias": [0.0, ...], "activation": "Identity"}`` (no weights);
each layer after it is ``{"weights": rows, "bias": [...], "activation": "Leaky_ReLU"}``, with one
row of weights per input, as the original's ``Matrix(previous size, size)``. Names are the
original's (ORIGINAL_ACTIVATIONS, ORIGINAL_COSTS).

Not the original's: the numbers are the parameters' exact values (float32 ones widened to double);
the original's ``toJson`` means to shorten them to floats. The original itself has no reader for
this form; :func:`parse_original_json` is distnet's.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..checks import float_dtype
from ..errors import ConfigError, ModelFormatError

if TYPE_CHECKING:
    from .network import Network

# The original Java library's names for what it has (its Activation and CostFunction getName()),
# and distnet's spec of each: what to_original_json writes and from_original_json reads.
ORIGINAL_ACTIVATIONS = {"Identity": {"name": "identity"}, "Sigmoid": {"name": "sigmoid"}, "ReLU": {"name": "relu"},
                        "Leaky_ReLU": {"name": "leaky_relu", "alpha": 0.01}, "Softplus": {"name": "softplus"},
                        "Softmax": {"name": "softmax"}}
ORIGINAL_COSTS = {"Quadratic": {"name": "quadratic"}, "HalfQuadratic": {"name": "half_quadratic"},
                  "MSE": {"name": "mse"}}


def to_original_json(network: Network) -> dict:
    """``network`` in the original's JSON layout. A network with something the original lacks
    (Tanh, a LeakyReLU alpha other than its 0.01, CrossEntropy) raises ConfigError: save it with
    :meth:`Network.save`. So does one with NaN or infinite parameters, which JSON has no numbers
    for (and which save refuses too)."""
    if not np.isfinite(network.params).all():
        raise ConfigError("this network's parameters hold NaN or infinite values (a training that diverged leaves "
                          "them so), which JSON has no numbers for (a file with them would not load): train again, "
                          "or load a network with finite parameters (such as a run's best.npz) to save in this "
                          "layout")
    layers = [{"bias": [0.0] * network.input_size, "activation": "Identity"}]
    for layer in network.layers:
        layers.append({"weights": layer.weights.tolist(), "bias": layer.bias.tolist(),
                       "activation": _original_name(layer.activation, ORIGINAL_ACTIVATIONS, "activation")})
    return {"costFunction": _original_name(network.cost_function, ORIGINAL_COSTS, "cost"), "layers": layers}


def parse_original_json(doc: dict, dtype: np.dtype | type | str = np.float64) -> tuple[dict, np.ndarray]:
    """(spec, params) of the network a document in the original's layout describes (parsed JSON:
    dicts, lists, numbers), for :meth:`Network.from_spec`; ModelFormatError for anything else.
    A number beyond the range of ``dtype`` is refused."""
    dtype = float_dtype(dtype)
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or len(layers) < 2:
        raise _not_original("expected an object with a 'costFunction' and a list of 'layers', the input "
                            "layer and at least one more")
    _check_keys(doc, {"costFunction", "layers"}, "the document")
    cost = _original_spec(doc.get("costFunction"), ORIGINAL_COSTS, "costFunction")
    input_layer = _original_layer(layers[0], 0)
    if input_layer.get("weights") is not None or input_layer.get("activation") != "Identity":
        raise _not_original("the first layer is the input layer: no weights, activation 'Identity'")
    fan_in = input_size = len(_original_numbers(input_layer.get("bias"), (None,), "layer 0's bias"))
    dense, params = [], []
    for i, layer in enumerate(layers[1:], start=1):
        layer = _original_layer(layer, i)
        bias = _original_numbers(layer.get("bias"), (None,), f"layer {i}'s bias", dtype)
        weights = _original_numbers(layer.get("weights"), (fan_in, len(bias)), f"layer {i}'s weights", dtype)
        dense.append({"size": len(bias), "activation": _original_spec(layer.get("activation"), ORIGINAL_ACTIVATIONS,
                                                                      f"layer {i}'s activation")})
        params += [weights.ravel(), bias]
        fan_in = len(bias)
    spec = {"input_size": input_size, "layers": dense, "cost": cost, "dtype": dtype.name}
    return spec, np.concatenate(params)


def _original_name(component, names: dict[str, dict], kind: str) -> str:
    """The original's name for an activation or a cost; ConfigError if the original lacks it."""
    for name, spec in names.items():
        if spec == component.spec():
            return name
    raise ConfigError(f"the original Java library has no {kind} {component!r} (it has {', '.join(names)}), so "
                      f"this network has no original JSON form: save it with save() instead")


def _not_original(defect: str) -> ModelFormatError:
    return ModelFormatError(f"not a network in the original's JSON layout: {defect}")


def _original_spec(name, names: dict[str, dict], what: str) -> dict:
    if not isinstance(name, str) or name not in names:
        raise _not_original(f"{what} must be one of {', '.join(names)}, got {name!r}")
    return names[name]


def _original_layer(layer, index: int) -> dict:
    if not isinstance(layer, dict):
        raise _not_original(f"layer {index} must be an object with 'weights', 'bias' and 'activation', "
                            f"got {layer!r:.80}")
    _check_keys(layer, {"weights", "bias", "activation"}, f"layer {index}")
    return layer


def _check_keys(doc: dict, known: set[str], what: str) -> None:
    unknown = set(doc) - known
    if unknown:
        raise _not_original(f"{what} has fields the original does not write: {', '.join(sorted(map(str, unknown)))}")


def _original_numbers(value, shape: tuple, what: str, dtype: np.dtype = np.dtype(np.float64)) -> np.ndarray:
    """``value`` (lists of JSON numbers) as a ``dtype`` array of ``shape`` (None: any positive
    length); ModelFormatError for anything else, such as strings or nulls among them, or numbers
    beyond the range of ``dtype``."""
    try:
        array = np.array(value)
    except ValueError:  # lists of different lengths
        array = None
    if (array is None or array.dtype.kind not in "iuf" or array.ndim != len(shape) or 0 in array.shape
            or any(want not in (None, got) for want, got in zip(shape, array.shape)) or not np.isfinite(array).all()):
        expected = " × ".join("n" if n is None else str(n) for n in shape)
        got = "lists of different lengths" if array is None else f"{array.dtype} data of shape {array.shape}"
        raise _not_original(f"{what} must be {expected} finite numbers, got {got}")
    with np.errstate(over="ignore"):  # a number the cast makes infinite is named just below
        array = array.astype(dtype)
    if not np.isfinite(array).all():
        raise ModelFormatError(f"numbers in {what} are beyond the range of {dtype} (magnitudes up to "
                               f"{np.finfo(dtype).max:.4g}): load the network as float64 (dtype=np.float64)")
    return array
