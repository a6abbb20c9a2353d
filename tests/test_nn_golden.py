"""Golden numbers from the original Java library's unit tests (see java-original.md)."""
import numpy as np
import pytest

from distnet.nn import Dense, GradientDescent, Momentum, Network, Quadratic, Softmax, UpdateRule

X = np.array([[2.0, 3.0]])
Y = np.array([[1.0, 0.2]])


def golden_network() -> Network:
    net = Network([Dense(2, "sigmoid"), Dense(2, "sigmoid")], input_size=2, cost=Quadratic(),
                  dtype=np.float64, seed=0)
    net.layers[0].weights[...] = [[0.3, 0.2], [-0.4, 0.6]]   # rows = inputs
    net.layers[1].weights[...] = [[0.7, -0.3], [0.5, -0.1]]
    net.layers[0].bias[...] = [0.25, 0.45]
    net.layers[1].bias[...] = [0.15, 0.35]
    return net


def test_golden_forward_output():
    out = golden_network().predict(X)
    assert out.shape == (1, 2)
    np.testing.assert_allclose(out[0], [0.712257432295742, 0.533097573871501], rtol=0, atol=1e-14)


def test_golden_forward_output_of_a_1d_input():
    out = golden_network().predict(np.array([2.0, 3.0]))
    np.testing.assert_allclose(out, [[0.712257432295742, 0.533097573871501]], rtol=0, atol=1e-14)


def test_golden_quadratic_cost():
    assert golden_network().cost(X, Y) == pytest.approx(0.19374977898811957, rel=0, abs=1e-14)


def test_golden_output_after_one_gradient_descent_step():
    net = golden_network()
    grad = net.gradient(X, Y)
    UpdateRule(GradientDescent(0.1)).apply(net.params, grad)
    np.testing.assert_allclose(net.predict(X)[0], [0.7187729999291985, 0.5238074518609882],
                               rtol=0, atol=1e-14)


def test_golden_step_changes_every_parameter_and_lowers_the_cost():
    net = golden_network()
    before = net.params.copy()
    cost_before = net.cost(X, Y)
    UpdateRule(GradientDescent(0.1)).apply(net.params, net.gradient(X, Y))
    assert np.all(net.params != before)
    assert net.cost(X, Y) < cost_before


def test_golden_softmax():
    out = Softmax()(np.array([-1.0, 0.0, 1.5, 2.0]))
    np.testing.assert_allclose(out, [0.02778834297343303, 0.0755365477476706, 0.3385313204518047,
                                     0.5581437888270917], rtol=0, atol=1e-15)
    batch = Softmax()(np.array([[-1.0, 0.0, 1.5, 2.0], [2.0, 1.5, 0.0, -1.0]]))
    np.testing.assert_allclose(batch[1], out[::-1], rtol=0, atol=1e-15)


def test_golden_momentum_two_steps():
    W = np.array([[2.0, 3.0, 4.0], [3.0, 4.0, 5.0]])
    opt = Momentum(0.05)
    assert opt.momentum == 0.9
    opt.step(W, W / 10)
    np.testing.assert_allclose(W[0], [1.99, 2.985, 3.98], rtol=0, atol=1e-13)
    opt.step(W, W / 10)
    np.testing.assert_allclose(W[0], [1.97105, 2.956575, 3.9421], rtol=0, atol=1e-13)
    # Row 1 by the same rule: v1 = 0.005·W0, v2 = 0.9·v1 + 0.005·W1.
    w0 = np.array([3.0, 4.0, 5.0])
    w1 = w0 * 0.995
    np.testing.assert_allclose(W[1], w1 - (0.9 * 0.005 * w0 + 0.005 * w1), rtol=0, atol=1e-13)


def test_golden_momentum_on_a_flat_vector_matches_the_matrix():
    W = np.array([[2.0, 3.0, 4.0], [3.0, 4.0, 5.0]])
    flat = W.ravel().copy()
    a, b = Momentum(0.05), Momentum(0.05)
    for _ in range(2):
        a.step(W, W / 10)
        b.step(flat, flat / 10)
    np.testing.assert_array_equal(flat, W.ravel())
