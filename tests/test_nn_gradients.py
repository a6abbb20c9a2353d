"""Backpropagation against central finite differences, in float64.

Every activation is checked as hidden and as output activation, with every cost. CrossEntropy
(C = −Σ y ln a) is the cost of a probability distribution, so its output activation is Softmax
(with any hidden one); its generic chain rule is checked against the fused form below.
"""
import numpy as np
import pytest

from distnet.nn import (MSE, CrossEntropy, Dense, HalfQuadratic, Identity, LeakyReLU, Network,
                        Quadratic, ReLU, Sigmoid, Softmax, Softplus, Tanh)
from distnet.nn.activations import ACTIVATIONS as LIBRARY_ACTIVATIONS
from distnet.nn.costs import COSTS as LIBRARY_COSTS

ACTIVATIONS = {
    "identity": Identity, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU,
    "leaky_relu": lambda: LeakyReLU(0.1), "softplus": Softplus, "softmax": Softmax,
}
COSTS = {"quadratic": Quadratic, "half_quadratic": HalfQuadratic, "mse": MSE,
         "cross_entropy": CrossEntropy}
CE_OUTPUTS = ("softmax",)
KINKED = ("relu", "leaky_relu")

CASES = [(h, o, c) for c in COSTS for h in ACTIVATIONS for o in ACTIVATIONS
         if c != "cross_entropy" or o in CE_OUTPUTS]

SIZES = (5, 4, 3)
BATCH = 7
EPS = 1e-6
KINK_MARGIN = 1e-4


def pre_activations(net: Network, X: np.ndarray) -> list[np.ndarray]:
    zs, a = [], X
    for layer in net.layers:
        z = a @ layer.weights + layer.bias
        zs.append(z)
        a = layer.activation(z)
    return zs


def build_case(hidden: str, output: str, cost: str):
    """A 5-4-3 net and a batch of 7 whose pre-activations stay clear of any ReLU kink."""
    one_hot = output == "softmax" or cost == "cross_entropy"
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        net = Network([Dense(SIZES[1], ACTIVATIONS[hidden]()), Dense(SIZES[2], ACTIVATIONS[output]())],
                      input_size=SIZES[0], cost=COSTS[cost](), dtype=np.float64, seed=seed)
        net.params[...] = rng.uniform(-1, 1, size=net.params.size)
        X = rng.normal(size=(BATCH, SIZES[0]))
        if one_hot:
            Y = np.eye(SIZES[2])[rng.integers(0, SIZES[2], size=BATCH)]
        else:
            Y = rng.uniform(0, 1, size=(BATCH, SIZES[2]))
        zs = pre_activations(net, X)
        kinks = [z for z, name in zip(zs, (hidden, output)) if name in KINKED]
        if all(np.abs(z).min() > KINK_MARGIN for z in kinks):
            # A ReLU that is off everywhere would make the check vacuous.
            if all((z > 0).any() for z in kinks):
                return net, X, Y
    raise AssertionError("no kink-free draw found")


def numerical_gradient(net: Network, X, Y) -> np.ndarray:
    grad = np.empty_like(net.params)
    for i in range(net.params.size):
        keep = net.params[i]
        net.params[i] = keep + EPS
        plus = net.cost(X, Y)
        net.params[i] = keep - EPS
        minus = net.cost(X, Y)
        net.params[i] = keep
        grad[i] = (plus - minus) / (2 * EPS)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


@pytest.mark.parametrize("hidden,output,cost", CASES, ids=[f"{h}-{o}-{c}" for h, o, c in CASES])
def test_backprop_matches_finite_differences(hidden, output, cost):
    net, X, Y = build_case(hidden, output, cost)
    params_before = net.params.copy()
    analytic = net.gradient(X, Y)
    np.testing.assert_array_equal(net.params, params_before)  # gradient() must not move params
    numeric = numerical_gradient(net, X, Y)
    assert np.linalg.norm(numeric) > 1e-6, "degenerate case: the gradient is zero"
    assert analytic.shape == net.params.shape and analytic.dtype == np.float64
    assert relative_error(analytic, numeric) < 1e-6, (analytic, numeric)


def test_cases_cover_every_activation_and_cost_of_the_library():
    assert set(ACTIVATIONS) == set(LIBRARY_ACTIVATIONS) and set(COSTS) == set(LIBRARY_COSTS)
    assert len(CASES) == 3 * 7 * 7 + 7 * len(CE_OUTPUTS)


def test_gradient_check_detects_a_wrong_gradient():
    """The check itself can fail: a gradient with one corrupted entry is rejected."""
    net, X, Y = build_case("tanh", "sigmoid", "quadratic")
    analytic = net.gradient(X, Y)
    analytic[3] += 1e-3 * np.linalg.norm(analytic)
    assert relative_error(analytic, numerical_gradient(net, X, Y)) > 1e-6


def test_cross_entropy_softmax_fused_gradient_equals_generic_chain_rule():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(9, 6))
    a = Softmax()(z)
    assert a.min() > 1e-3  # not saturated
    y = np.eye(6)[rng.integers(0, 6, size=9)]
    ce = CrossEntropy()
    fused = ce.output_layer_gradient(Softmax(), a, y)
    generic = Softmax().input_gradient(a, ce.derivative(a, y))
    np.testing.assert_allclose(fused, a - y, rtol=0, atol=0)
    np.testing.assert_allclose(fused, generic, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("targets", ["multi_hot", "all_zero", "soft_unnormalised"])
def test_cross_entropy_gradient_holds_for_targets_whose_rows_do_not_sum_to_1(targets):
    """Trainer.step takes any target rows; the fused a − y alone was wrong for these (by 119 % for
    multi-hot rows, found by an API audit)."""
    net, X, _ = build_case("tanh", "softmax", "cross_entropy")
    rng = np.random.default_rng(5)
    Y = {"multi_hot": (rng.random((BATCH, SIZES[2])) < 0.5).astype(float),
         "all_zero": np.zeros((BATCH, SIZES[2])),
         "soft_unnormalised": rng.uniform(0, 2, size=(BATCH, SIZES[2]))}[targets]
    assert not np.allclose(Y.sum(axis=1), 1)
    assert relative_error(net.gradient(X, Y), numerical_gradient(net, X, Y)) < 1e-6


def test_cross_entropy_is_natural_log_and_safe_at_zero():
    ce = CrossEntropy()
    a = np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    with np.errstate(all="raise"):
        values = ce.value(a, y)
        d = ce.derivative(a, y)
    assert values[0] == pytest.approx(np.log(4), rel=1e-15)
    assert np.isfinite(values[1]) and values[1] > 700   # −ln(tiny) ≈ 708: large but finite
    assert np.all(np.isfinite(d))
    np.testing.assert_array_equal(d[0], [0.0, -4.0, 0.0])


@pytest.mark.parametrize("cost,value,derivative", [
    (Quadratic, 0.5 ** 2 + 0.25 ** 2, [1.0, -0.5]),
    (HalfQuadratic, 0.5 * (0.5 ** 2 + 0.25 ** 2), [0.5, -0.25]),
    (MSE, (0.5 ** 2 + 0.25 ** 2) / 2, [0.5, -0.25]),
])
def test_quadratic_costs_formulas(cost, value, derivative):
    a = np.array([[1.0, 0.25]])
    y = np.array([[0.5, 0.5]])
    assert cost().value(a, y) == pytest.approx([value], rel=1e-15)
    np.testing.assert_allclose(cost().derivative(a, y), [derivative], rtol=1e-15)
