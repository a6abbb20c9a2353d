"""The Python API refuses what a user gets wrong where it is given, with a ConfigError that says
what to pass instead: never a TypeError or a wrong answer later, deep in training."""
import re

import numpy as np
import pytest

from distnet.errors import ConfigError, OutOfMemoryError
from distnet.nn import (Adam, Dense, GradientDescent, HalfQuadratic, HeNormal, LeakyReLU, Momentum, Nesterov,
                        Network, ReLU, UpdateRule, XavierNormal, optimizer_from_spec)


def net(**options):
    return Network([Dense(4, "relu"), Dense(3, "softmax")], input_size=5, **options)


# -- params -------------------------------------------------------------------------------------

def test_assigning_params_copies_into_the_vector_the_layers_see(tmp_path):
    network = net(seed=0)
    vector = network.params
    new = np.arange(network.parameter_count, dtype=np.float32) / 100
    network.params = new
    assert network.params is vector  # still the array the layers' weights are views of
    np.testing.assert_array_equal(network.params, new)
    np.testing.assert_array_equal(network.layers[0].weights.ravel(), new[:20])
    np.testing.assert_array_equal(Network.load(network.save(tmp_path / "net.npz")).predict(np.ones(5)),
                                  network.predict(np.ones(5)))


def test_assigning_params_of_another_length_is_refused():
    network = net(seed=0)
    before = network.params.copy()
    with pytest.raises(ConfigError, match=f"expected {network.parameter_count} parameters"):
        network.params = np.zeros(23, np.float32)
    np.testing.assert_array_equal(network.params, before)


def test_assigning_a_layers_weights_or_bias_copies_into_params(tmp_path):
    network, weights = net(seed=0, dtype=np.float64), np.arange(20, dtype=np.float32).reshape(5, 4)
    views = network.layers[0].weights, network.layers[1].bias
    network.layers[0].weights = weights
    network.layers[1].bias = [1, 2, 3]
    assert network.layers[0].weights is views[0] and network.layers[1].bias is views[1]  # the views into params
    assert network.params.dtype == np.float64
    np.testing.assert_array_equal(network.params[:20], weights.ravel())
    np.testing.assert_array_equal(network.params[-3:], [1, 2, 3])
    by_index = net(seed=0, dtype=np.float64)
    by_index.layers[0].weights[...] = weights
    by_index.layers[1].bias[...] = [1, 2, 3]
    np.testing.assert_array_equal(by_index.params, network.params)
    np.testing.assert_array_equal(Network.load(network.save(tmp_path / "net.npz")).params, network.params)
    np.testing.assert_array_equal(network.copy().predict(np.ones(5)), network.predict(np.ones(5)))


def test_a_layers_weights_or_bias_of_another_shape_are_refused():
    network = net(seed=0)
    before = network.params.copy()
    with pytest.raises(ConfigError, match=r"^Dense\(4, ReLU\(\)\) takes weights of shape \(5, 4\), "
                                          r"got an array of shape \(4, 5\)$"):
        network.layers[0].weights = np.zeros((4, 5))
    with pytest.raises(ConfigError, match=r"^Dense\(3, Softmax\(\)\) takes bias of shape \(3,\), "
                                          r"got an array of shape \(\)$"):
        network.layers[1].bias = 0.5
    np.testing.assert_array_equal(network.params, before)
    with pytest.raises(ConfigError, match=re.escape("Dense(3, Softmax()) belongs to no network, so it has no bias "
                                                    "to set: a network makes its own layers from the ones it is "
                                                    "given; set theirs, such as net.layers[0].bias")):
        Dense(3, "softmax").bias = np.zeros(3)
    with pytest.raises(ConfigError, match=re.escape("Dense(3, Softmax()) belongs to no network, so it has no weights "
                                                    "to compute with")):  # NumPy's matmul error about None before
        Dense(3, "softmax").forward(np.zeros((1, 2)))


def test_parameter_memory_of_another_kind_is_refused_with_what_takes_it():
    network = net(seed=0)
    with pytest.raises(ConfigError, match=r"^use_params_memory takes a NumPy array \(such as one in shared memory\), "
                                          r"got list; to copy values in, use set_params$"):
        network.use_params_memory(network.params.tolist())  # an AttributeError of 'shape' before
    with pytest.raises(ConfigError, match=r"^expected 39 float32 parameters for layers \[5, 4, 3\], got an array of "
                                          r"shape \(39,\) and type float64$"):
        network.use_params_memory(network.params.astype(np.float64))


# -- components by name, instance or (refused) class --------------------------------------------

def _every_part():
    from distnet.nn.activations import ACTIVATIONS
    from distnet.nn.costs import COSTS
    from distnet.nn.initializers import INITIALIZERS, Random
    from distnet.nn.optimizers import OPTIMIZERS
    from distnet.nn.schedules import SCHEDULES, CosineDecay, StepDecay

    defaults = [cls() for registry in (ACTIVATIONS, COSTS, INITIALIZERS, SCHEDULES) for cls in registry.values()]
    optimizers = [cls(0.01) for cls in OPTIMIZERS.values()]
    others = [LeakyReLU(0.2), Random(-0.1, 0.3), Nesterov(0.02, 0.87), Adam(0.003, beta1=0.8),
              CosineDecay(final=0.1), StepDecay(every=3, gamma=0.5)]
    return defaults + optimizers + others


@pytest.mark.parametrize("part", _every_part(), ids=repr)
def test_a_part_s_repr_is_its_class_called_with_its_settings(part):
    import distnet

    again = eval(repr(part), vars(distnet))
    assert type(again) is type(part) and again.spec() == part.spec() and again is not part
    assert part.spec()["name"] == part.name != ""


def test_costs_and_initializers_are_given_by_name_as_activations_are():
    by_name = net(cost="half_quadratic", initializer="he_normal", seed=3)
    by_instance = net(cost=HalfQuadratic(), initializer=HeNormal(), seed=3)
    assert by_name.spec() == by_instance.spec() and repr(by_name) == repr(by_instance)
    np.testing.assert_array_equal(by_name.params, by_instance.params)
    assert net(initializer={"name": "random", "low": -0.1, "high": 0.1}, seed=0).params.max() <= 0.1


@pytest.mark.parametrize("make, name", [
    (lambda: net(initializer=HeNormal), "HeNormal"),
    (lambda: net(cost=HalfQuadratic), "HalfQuadratic"),
    (lambda: Dense(8, ReLU), "ReLU"),
    (lambda: Dense(8, LeakyReLU), "LeakyReLU"),
])
def test_a_class_instead_of_an_instance_says_to_pass_an_instance(make, name):
    with pytest.raises(ConfigError, match=rf"{name} is a class: pass an instance, {name}\(\)"):
        make()


@pytest.mark.parametrize("make, message", [
    (lambda: net(cost="hinge"), "unknown cost 'hinge'; known: quadratic, half_quadratic, mse, cross_entropy"),
    (lambda: net(initializer="glorot"), "unknown initializer 'glorot'; known: random, xavier_uniform"),
    (lambda: net(cost=42), "a cost is given as a Cost instance, by its name .quadratic, .* not 42"),
    (lambda: net(initializer=XavierNormal().sigma), "an initializer is given as an Initializer instance"),
    (lambda: Dense(8, None), "an activation is given as an Activation instance, by its name .identity, .*not None"),
    (lambda: optimizer_from_spec({"name": ["adam"]}),  # was a TypeError: unhashable type: 'list'
     r"^unknown optimizer \['adam'\]; known: gradient_descent, momentum, nesterov, adam$"),
])
def test_anything_else_lists_the_known_names(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


# -- the network's own arguments ----------------------------------------------------------------

@pytest.mark.parametrize("layers", [[8, 10], Dense(8, "relu"), [Dense(8, "relu"), "softmax"]])
def test_layers_must_be_dense_layers(layers):
    with pytest.raises(ConfigError, match=r"layers must be a list of Dense layers, such as \[Dense\(36"):
        Network(layers, input_size=784)


@pytest.mark.parametrize("seed", ["1", -1, 1.5, True])
def test_seed_must_be_a_whole_number_or_none(seed):
    with pytest.raises(ConfigError, match=rf"seed must be a whole number >= 0 \(or None .*\), got {seed!r}"):
        net(seed=seed)


def test_seeds_that_are_fine():
    assert np.array_equal(net(seed=np.int64(7)).params, net(seed=7).params)
    assert net(seed=0).params.any() and net(seed=None).params.any()


@pytest.mark.parametrize("size", [0, -3, 2.0, "8", True])
def test_sizes_must_be_positive_integers(size):
    with pytest.raises(ConfigError, match="a layer's size must be a positive integer"):
        Dense(size, "relu")
    with pytest.raises(ConfigError, match="input_size must be a positive integer"):
        Network([Dense(2, "relu")], input_size=size)


# -- optimizers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: GradientDescent(0), "the learning rate must be a positive finite number, got 0"),
    (lambda: GradientDescent(-0.1), "learning rate .* got -0.1"),
    (lambda: GradientDescent(float("inf")), "learning rate .* got inf"),
    (lambda: GradientDescent(float("nan")), "learning rate .* got nan"),
    (lambda: Nesterov("0.02"), "learning rate must be a positive finite number, got '0.02'"),
    (lambda: Nesterov(0.02, 1.5), r"momentum must be a number in \[0, 1\), got 1.5"),
    (lambda: Nesterov(0.02, "0.9"), "momentum must be a number"),
    (lambda: Momentum(0.02, -0.1), "momentum must be a number"),
    (lambda: Momentum(0.02, 1), "momentum must be a number"),
    (lambda: Adam(0.01, beta1=1.5), r"Adam's beta1 must be a number in \[0, 1\), got 1.5"),
    (lambda: Adam(0.01, beta2=1.0), "Adam's beta2 must be a number"),
    (lambda: Adam(0.01, epsilon=0), "Adam's epsilon must be a positive finite number, got 0"),
    (lambda: UpdateRule(GradientDescent(0.1), l2="1e-4"), r"l2 must be a number in \[0, 1\)"),
    (lambda: LeakyReLU("0.1"), r"LeakyReLU alpha must be a number in \[0, 1\)"),
])
def test_hyper_parameters_out_of_range_are_refused_at_construction(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_hyper_parameters_in_range_are_kept_as_given():
    assert Nesterov(np.float32(0.02), 0).spec() == {"name": "nesterov", "learning_rate": np.float32(0.02),
                                                   "momentum": 0}
    assert Adam(1, 0, 0.5, 1e-12).spec() == {"name": "adam", "learning_rate": 1, "beta1": 0, "beta2": 0.5,
                                             "epsilon": 1e-12}


def test_a_network_too_large_for_memory_is_refused_with_its_size():
    """A MemoryError's (and for more elements than an array can have, a ValueError's) traceback before."""
    with pytest.raises(OutOfMemoryError, match=r"^a 1000000-100000 network has 100,000,100,000 parameters \(372\.5 GiB as "
                                          r"float32\), more than this machine can hold; use smaller layers$"):
        Network([Dense(100_000, "softmax")], input_size=10**6)
    with pytest.raises(OutOfMemoryError, match=r"^a 784-99999999999999999999-10 network has 79,499,999,999,999,999,999,215 "):
        Network([Dense(99999999999999999999, "relu"), Dense(10, "softmax")], input_size=784)


# -- predict and error_rate ---------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [0, -1, 2.5, None])
def test_predict_batch_size_must_be_a_positive_integer(batch_size):
    with pytest.raises(ConfigError, match=f"batch_size must be a positive integer, got {batch_size!r}"):
        net().predict(np.zeros((4, 5)), batch_size=batch_size)


def test_backprop_writes_its_gradient_only_into_an_array_like_params():
    network, X, Y = net(seed=0, dtype=np.float64), np.ones((2, 5)), np.eye(3)[[0, 2]]
    out = np.empty_like(network.params)
    assert network.backprop(X, Y, out=out)[0] is out
    np.testing.assert_array_equal(out, network.backprop(X, Y)[0])
    for wrong, got in ((np.empty(network.params.size, np.float32), f"shape \\({network.params.size},\\), float32"),
                       (np.empty(3), "shape \\(3,\\), float64"), (list(out), "list")):
        with pytest.raises(ConfigError, match=f"out must be an array like params \\(shape \\({network.params.size},\\), "
                                              f"float64\\), got {got}$"):
            network.backprop(X, Y, out=wrong)  # float32 had been filled silently, rounded


def test_error_rate_takes_one_integer_label_per_row_in_range():
    network, X = net(seed=0), np.random.default_rng(0).random((6, 5))
    labels = np.array([0, 1, 2, 0, 1, 2])
    assert network.error_rate(X, labels) == network.error_count(X, labels.astype(np.uint8)) / 6
    with pytest.raises(ConfigError, match="at least one sample"):
        network.error_rate(np.zeros((0, 5)), [])
    with pytest.raises(ConfigError, match=r"the labels are missing: pass one class index per row of X"):
        network.error_rate(X)  # a TypeError of Python's before
    for raw in (np.uint8, np.uint16, bool):  # raw image bytes were taken as inputs, each byte 255 times too large
        with pytest.raises(ConfigError, match=rf"floating-point inputs, got {np.dtype(raw)} values \(image bytes\? "
                                              r"scale them as the network was trained: X.astype\(np.float32\) / 255\)"):
            network.predict((X * 200).astype(raw))
    assert network.predict((X * 3).astype(np.int64)).shape == (6, 3)  # whole numbers of your own are numbers


    class TorchLike:  # a tensor: its dtype is no NumPy dtype (np.dtype() of it raised a TypeError)
        dtype = "torch.float32"

        def __array__(self, dtype=None, copy=None):
            return X.astype(dtype or np.float32)

    np.testing.assert_array_equal(network.predict(TorchLike()), network.predict(X))

    class TorchBytes:  # torch.uint8 images: the bytes show once converted (they were taken as numbers)
        dtype = "torch.uint8"

        def __array__(self, dtype=None, copy=None):
            return (X * 200).astype(np.uint8)

    with pytest.raises(ConfigError, match=r"floating-point inputs, got uint8 values"):
        network.predict(TorchBytes())
    with pytest.raises(ConfigError, match=r"integer class labels 0..2, one per row: got float64 data of shape "
                                          r"\(6, 3\) for 6 rows \(one-hot rows\? pass their argmax\(axis=1\)\)"):
        network.error_rate(X, np.eye(3)[labels])
    with pytest.raises(ConfigError, match=r"\(6, 1\) for 6 rows \(one label per row in a column\? pass labels.ravel\(\)\)$"):
        network.error_rate(X, labels[:, None])
    with pytest.raises(ConfigError, match=r"one per row: got int64 data of shape \(5,\) for 6 rows$"):
        network.error_rate(X, labels[:5])
    with pytest.raises(ConfigError, match="integer class labels"):
        network.error_count(X, labels.astype(float))
    with pytest.raises(ConfigError, match="integer class labels"):
        network.error_rate(X, labels > 0)
    with pytest.raises(ConfigError, match=r"class labels 0..2 \(one per output\), got labels from 20 to 22"):
        network.error_rate(X, labels + 20)
    with pytest.raises(ConfigError, match="got labels from -1 to 2"):
        network.error_rate(X, labels - np.eye(6, dtype=int)[0])


def test_a_data_set_given_for_inputs_is_refused_with_what_to_pass():
    from distnet.data import Dataset

    data = Dataset(np.zeros((4, 5), np.float32), np.array([0, 1, 2, 0]), classes=("a", "b", "c"))
    for call in (lambda: net().predict(data), lambda: net().error_rate(data, data.labels)):
        with pytest.raises(ConfigError, match=r"not a data set: pass its .images \(and to error_rate its .labels too\)"):
            call()
    assert net().predict(data.images).shape == (4, 3)


def test_a_digit_given_for_inputs_is_refused_with_what_to_pass():
    from distnet.data import Digit

    network, digit = Network([Dense(10, "softmax")], input_size=784, seed=0), Digit(np.zeros(784, np.float32), 3)
    for given in (digit, [digit, digit], (digit,)):
        with pytest.raises(ConfigError, match=re.escape("the network takes an array of inputs, one row per sample, "
                                                        "not a Digit: pass its .pixels (for several, "
                                                        "np.stack([digit.pixels for digit in digits]))")):
            network.predict(given)
    assert network.predict(digit.pixels).shape == (1, 10)


def test_outputs_that_are_nan_or_infinite_are_not_scored_as_class_0():
    network, X = net(seed=0), np.zeros((4, 5))
    X[[1, 3], 2] = [np.nan, np.inf]
    broken = network.copy()
    broken.params[:] = np.nan
    reason = ("so they have no class to score: either the inputs hold NaN or infinite values, or the parameters do "
              "(a training that diverged leaves them NaN); check np.isfinite(X).all() and "
              "np.isfinite(net.params).all()")
    with np.errstate(invalid="ignore"):
        with pytest.raises(ConfigError, match=re.escape(f"the network's outputs are NaN or infinite for 2 of the 4 "
                                                        f"samples, {reason}")):
            network.error_rate(X, [0, 0, 0, 0])  # was 0.0: argmax took each NaN row for class 0
        with pytest.raises(ConfigError, match=re.escape(f"NaN or infinite for 4 of the 4 samples, {reason}")):
            broken.error_count(np.zeros((4, 5)), [0, 1, 2, 0])
        with pytest.raises(ConfigError, match=re.escape(f"NaN or infinite for 1 of the 1 sample, {reason}")):
            broken.error_count(np.zeros((1, 5)), [0])  # "1 of the 1 samples" before


def test_infinite_outputs_are_not_scored_either():
    """An identity output layer overflows to +inf or -inf with no NaN anywhere: the argmax of such a
    row means no class either, and the row is counted as the NaN ones are."""
    from distnet.metrics import evaluation_of

    network = Network([Dense(2, "identity")], input_size=1, dtype=np.float32)
    network.layers[0].weights = [[1e30, 1.0]]
    network.layers[0].bias = [0.0, 0.0]
    X = np.array([[0.0], [1e10], [-1e10], [1.0]], np.float32)  # outputs (0, 0), (inf, 1e10), (-inf, -1e10), ...
    with np.errstate(over="ignore"):
        assert np.isinf(network.predict(X)[1:3, 0]).all()
        with pytest.raises(ConfigError, match=r"^the network's outputs are NaN or infinite for 2 of the 4 samples"):
            network.error_count(X, [0, 0, 1, 0])
    with pytest.raises(ConfigError, match=r"^the network's outputs are NaN or infinite for 1 of the 2 samples"):
        evaluation_of(np.array([[0.0, -np.inf], [0.2, 0.8]]), [0, 1])


@pytest.mark.parametrize("output", ["identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus"])
def test_cross_entropy_is_refused_on_outputs_that_are_not_a_distribution(output):
    with pytest.raises(ConfigError, match=f"cross-entropy is the cost of a probability distribution over the classes: "
                                          f"end the network with 'softmax', not '{output}' \\(or use the 'quadratic' cost\\)"):
        Network([Dense(4, "tanh"), Dense(3, output)], input_size=2, cost="cross_entropy", seed=1)
    Network([Dense(3, "softmax")], input_size=2, cost="cross_entropy", seed=1)


def test_a_softmax_of_one_neuron_which_never_learns_is_refused_when_built_and_in_a_file(tmp_path):
    # Accepted before: its one output is 1.0 whatever the inputs, with a gradient of zero, so the
    # network never learned (get_preset("seed").build_network(classes=1) built one).
    import json

    from distnet import get_preset
    from distnet.errors import ModelFormatError
    from distnet.io import npz_bytes

    refused = ("Dense(1, 'softmax') always outputs 1.0 (a softmax's outputs sum to 1, and it has one), so its gradient "
               "is zero and it never learns: for a single output use 'sigmoid' (or 'identity' for a regression), or "
               "give the softmax one neuron per class (2 or more)")
    for build in (lambda: Network([Dense(1, "softmax")], input_size=3, cost="mse"),
                  lambda: Network([Dense(1, "softmax"), Dense(2, "softmax")], input_size=3),  # hidden: no gradient on
                  lambda: get_preset("seed").build_network(classes=1)):
        with pytest.raises(ConfigError, match=f"^{re.escape(refused)}$"):
            build()
    Network([Dense(1, "sigmoid")], input_size=3, cost="mse")  # what it advises
    Network([Dense(2, "softmax")], input_size=3)
    spec = {"input_size": 3, "layers": [{"size": 1, "activation": {"name": "softmax"}}], "cost": {"name": "quadratic"},
            "dtype": "float32"}
    model = tmp_path / "model.npz"
    model.write_bytes(npz_bytes({"params": np.zeros(4, np.float32)}, {"format": "distnet.network", "version": 1, **spec}))
    with pytest.raises(ModelFormatError, match=re.escape(
            f"{model}: the metadata does not describe a valid network ({refused})")):
        Network.load(model)
    original = tmp_path / "model.json"  # the original's layout holds one too; it was a ConfigError
    original.write_text(json.dumps({"costFunction": "Quadratic", "layers": [
        {"bias": [0.0] * 3, "activation": "Identity"},
        {"weights": [[0.1]] * 3, "bias": [0.0], "activation": "Softmax"}]}))
    with pytest.raises(ModelFormatError, match=re.escape(f"{original}: not a network distnet takes ({refused})")):
        Network.load_original_json(original)



def test_the_package_names_its_api_and_its_own_modules_only():
    """`dir(distnet)` listed `importlib`, used once as the package is imported."""
    import types

    import distnet

    stray = [name for name in dir(distnet) if not name.startswith("_") and name not in distnet.__all__
             and not (isinstance(module := getattr(distnet, name), types.ModuleType)
                      and module.__name__.startswith("distnet."))]
    assert stray == []
    assert {"Network", "Trainer", "load_mnist", "StopEvaluator"} <= set(distnet.__all__)
