"""Initializers: shapes, which fan they use, their statistics, seeding, and zero biases."""
import math

import numpy as np
import pytest

from distnet import ConfigError
from distnet.nn import (Dense, HeNormal, HeUniform, LeCunNormal, LeCunUniform, Network, Random,
                        XavierNormal, XavierUniform, initializer_from_spec)

FAN_IN, FAN_OUT = 784, 2000   # different, so using the wrong fan is visible

NORMAL_SIGMA = {
    XavierNormal: math.sqrt(2 / (FAN_IN + FAN_OUT)),
    LeCunNormal: 1 / math.sqrt(FAN_IN),
    HeNormal: math.sqrt(2 / FAN_IN),
}
UNIFORM_LIMIT = {
    XavierUniform: math.sqrt(6 / (FAN_IN + FAN_OUT)),
    LeCunUniform: math.sqrt(3 / FAN_IN),
    HeUniform: math.sqrt(6 / FAN_IN),
}


def drawn_through_a_network(init, seed=11):
    net = Network([Dense(FAN_OUT, "relu")], input_size=FAN_IN, initializer=init, seed=seed,
                  dtype=np.float64)
    return net.layers[0].weights


@pytest.mark.parametrize("cls", NORMAL_SIGMA, ids=lambda c: c.__name__)
def test_normal_initializers_sigma(cls):
    w = cls()(FAN_IN, FAN_OUT, np.random.default_rng(0))
    assert w.shape == (FAN_IN, FAN_OUT) and w.dtype == np.float64
    sigma = NORMAL_SIGMA[cls]
    assert abs(w.std() / sigma - 1) < 0.03
    assert abs(w.mean()) < 0.01 * sigma
    assert cls().sigma(FAN_IN, FAN_OUT) == pytest.approx(sigma, rel=1e-15)
    # The network passes (inputs, size) as (fan_in, fan_out).
    assert abs(drawn_through_a_network(cls()).std() / sigma - 1) < 0.03


@pytest.mark.parametrize("cls", UNIFORM_LIMIT, ids=lambda c: c.__name__)
def test_uniform_initializers_bounds(cls):
    w = cls()(FAN_IN, FAN_OUT, np.random.default_rng(0))
    assert w.shape == (FAN_IN, FAN_OUT)
    limit = UNIFORM_LIMIT[cls]
    assert -limit <= w.min() < -0.999 * limit
    assert 0.999 * limit < w.max() <= limit
    assert abs(w.std() / (limit / math.sqrt(3)) - 1) < 0.03
    assert cls().limit(FAN_IN, FAN_OUT) == pytest.approx(limit, rel=1e-15)
    w_net = drawn_through_a_network(cls())
    assert -limit <= w_net.min() < -0.999 * limit and 0.999 * limit < w_net.max() <= limit


def test_he_and_lecun_use_fan_in_not_fan_out():
    # Swapping the fans changes He/LeCun; Xavier is symmetric in them.
    for cls in (HeNormal, LeCunNormal):
        assert cls().sigma(100, 1) == cls().sigma(100, 10_000)
        assert cls().sigma(100, 1) != cls().sigma(1, 100)
    for cls in (HeUniform, LeCunUniform):
        assert cls().limit(100, 1) == cls().limit(100, 10_000)
    assert XavierNormal().sigma(100, 30) == XavierNormal().sigma(30, 100) == math.sqrt(2 / 130)
    assert XavierUniform().limit(100, 30) == math.sqrt(6 / 130)


def test_random_bounds():
    w = Random(-0.2, 0.7)(300, 400, np.random.default_rng(1))
    assert w.shape == (300, 400)
    assert -0.2 <= w.min() < -0.199 and 0.699 < w.max() < 0.7
    assert w.mean() == pytest.approx(0.25, abs=0.005)
    default = Random()
    assert (default.low, default.high) == (-0.5, 0.5)
    with pytest.raises(ConfigError, match="Random initializer needs low < high, got 1.0, 1.0"):
        Random(1.0, 1.0)
    with pytest.raises(ConfigError, match="Random initializer's low must be a finite number, got 'a'"):
        Random("a", "b")


def test_network_default_initializer_is_random_half():
    net = Network([Dense(300, "sigmoid")], input_size=200, seed=3, dtype=np.float64)
    w = net.layers[0].weights
    assert -0.5 <= w.min() < -0.499 and 0.499 < w.max() < 0.5


@pytest.mark.parametrize("init", [Random(), XavierNormal(), HeUniform(), LeCunNormal()],
                         ids=lambda i: i.name)
def test_biases_start_at_zero_and_seeding(init):
    def make(seed):
        return Network([Dense(6, "tanh"), Dense(4, "relu"), Dense(3, "softmax")], input_size=5,
                       initializer=init, seed=seed, dtype=np.float64)
    a, b, c = make(7), make(7), make(8)
    for layer in a.layers:
        assert layer.weights.shape == (layer.weights.shape[0], layer.size)
        np.testing.assert_array_equal(layer.bias, 0)
        assert np.all(layer.weights != 0)
    assert [l.weights.shape for l in a.layers] == [(5, 6), (6, 4), (4, 3)]
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.any(a.params[a.weight_slices[0]] == c.params[c.weight_slices[0]])


def test_layers_draw_different_weights():
    net = Network([Dense(4, "tanh"), Dense(4, "tanh")], input_size=4, seed=0, dtype=np.float64)
    assert not np.array_equal(net.layers[0].weights, net.layers[1].weights)


@pytest.mark.parametrize("init", [Random(-0.1, 0.3), XavierUniform(), XavierNormal(), LeCunUniform(),
                                  LeCunNormal(), HeUniform(), HeNormal()], ids=lambda i: i.name)
def test_spec_round_trip(init):
    again = initializer_from_spec(init.spec())
    assert type(again) is type(init) and again.spec() == init.spec()
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(init(3, 4, rng_a), again(3, 4, rng_b))


def test_seeded_random_initial_weights_are_the_generators_draws_in_order():
    net = Network([Dense(2, "sigmoid"), Dense(3, "softmax")], input_size=4, seed=11, dtype=np.float64)
    rng = np.random.default_rng(11)
    np.testing.assert_array_equal(net.layers[0].weights, rng.uniform(-0.5, 0.5, size=(4, 2)))
    np.testing.assert_array_equal(net.layers[1].weights, rng.uniform(-0.5, 0.5, size=(2, 3)))
    assert not net.layers[0].bias.any() and not net.layers[1].bias.any()
