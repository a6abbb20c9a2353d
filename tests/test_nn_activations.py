"""Each activation's function and derivative, element by element, plus Softmax's Jacobian."""
import warnings

import numpy as np
import pytest

from distnet.nn import (Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh,
                        activation_from_spec)

ELEMENTWISE = {"identity": Identity, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU,
               "leaky_relu": LeakyReLU, "softplus": Softplus}
H = 1e-6


def kink_free_inputs(seed=0):
    z = np.random.default_rng(seed).uniform(-6, 6, size=(8, 5))
    z[np.abs(z) < 1e-3] = 0.5
    return z


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_numerical_derivative(name):
    act = ELEMENTWISE[name]()
    z = kink_free_inputs()
    numeric = (act(z + H) - act(z - H)) / (2 * H)
    analytic = act.derivative(act(z))
    assert analytic.shape == z.shape
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_input_gradient_is_derivative_times_upstream(name):
    act = ELEMENTWISE[name]()
    z = kink_free_inputs(1)
    a = act(z)
    g = np.random.default_rng(2).normal(size=z.shape)
    np.testing.assert_allclose(act.input_gradient(a, g), act.derivative(a) * g, rtol=1e-15, atol=0)


@pytest.mark.parametrize("name,z,expected", [
    ("identity", [-2.0, 0.0, 3.5], [-2.0, 0.0, 3.5]),
    ("relu", [-2.0, 0.0, 3.5], [0.0, 0.0, 3.5]),
    ("leaky_relu", [-2.0, 0.0, 3.5], [-0.02, 0.0, 3.5]),
    ("tanh", [-1.0, 0.0, 0.5], np.tanh([-1.0, 0.0, 0.5])),
    ("sigmoid", [-1.0, 0.0, 2.0], 1 / (1 + np.exp([1.0, 0.0, -2.0]))),
    ("softplus", [-1.0, 0.0, 2.0], np.log1p(np.exp([-1.0, 0.0, 2.0]))),
])
def test_function_values(name, z, expected):
    np.testing.assert_allclose(ELEMENTWISE[name]()(np.array(z)), expected, rtol=1e-15, atol=1e-17)


def test_softplus_derivative_is_sigmoid_of_the_input():
    z = np.linspace(-30, 30, 241)
    sp = Softplus()
    np.testing.assert_allclose(sp.derivative(sp(z)), Sigmoid()(z), rtol=1e-12, atol=0)
    # The original applied the sigmoid to the *output*: sigmoid(ln 2) = 2/3 at z = 0, not 1/2.
    assert sp.derivative(sp(np.array([0.0])))[0] == pytest.approx(0.5, abs=1e-15)


def test_softplus_large_inputs_do_not_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        a = Softplus()(np.array([-1000.0, 1000.0]))
        d = Softplus().derivative(a)
    np.testing.assert_array_equal(a, [0.0, 1000.0])
    np.testing.assert_array_equal(d, [0.0, 1.0])


def test_leaky_relu_alpha():
    z = np.array([-4.0, -0.5, 0.5, 4.0])
    act = LeakyReLU(0.2)
    np.testing.assert_allclose(act(z), [-0.8, -0.1, 0.5, 4.0], rtol=1e-15)
    np.testing.assert_array_equal(act.derivative(act(z)), [0.2, 0.2, 1.0, 1.0])
    np.testing.assert_allclose(act.input_gradient(act(z), np.full(4, 3.0)), [0.6, 0.6, 3.0, 3.0], rtol=1e-15)
    assert LeakyReLU().alpha == 0.01
    assert act.spec() == {"name": "leaky_relu", "alpha": 0.2}
    assert activation_from_spec(act.spec()).alpha == 0.2
    with pytest.raises(ValueError):
        LeakyReLU(1.5)


def test_leaky_relu_of_integers_keeps_its_slope_and_of_float32_stays_float32():
    # alpha was cast to z's type: int64(0.01) is 0, and the negative inputs became 0.
    np.testing.assert_array_equal(LeakyReLU()(np.array([-1, 2])), [-0.01, 2.0])
    z = np.array([-3.0, 2.0], np.float32)
    assert LeakyReLU()(z).dtype == np.float32
    np.testing.assert_array_equal(LeakyReLU()(z), [np.float32(-3.0) * np.float32(0.01), 2.0])


def test_relu_derivative_zero_below_and_one_above():
    act = ReLU()
    a = act(np.array([-3.0, -1e-9, 1e-9, 3.0]))
    np.testing.assert_array_equal(act.derivative(a), [0, 0, 1, 1])
    np.testing.assert_array_equal(act.input_gradient(a, np.full(4, 2.0)), [0, 0, 2, 2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_no_overflow_at_extremes(dtype):
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            a = Sigmoid()(z)
    assert a.dtype == dtype
    assert a[0] == 0.0 and a[-1] == 1.0 and a[2] == 0.5
    assert 0 < a[1] < 1e-20 and np.all(np.diff(a) >= 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activations_keep_dtype(dtype):
    z = kink_free_inputs().astype(dtype)
    for cls in [*ELEMENTWISE.values(), Softmax]:
        act = cls()
        a = act(z)
        assert a.dtype == dtype, cls
        assert act.input_gradient(a, np.ones_like(a)).dtype == dtype, cls


@pytest.mark.parametrize("cls", [*ELEMENTWISE.values(), Softmax])
def test_overwrite_and_scratch_change_no_value(cls):
    # The training step passes its own arrays to be overwritten and a scratch array: the values
    # must be exactly those of the plain call.
    act = cls()
    z = np.random.default_rng(5).normal(size=(6, 10))
    g = np.random.default_rng(6).normal(size=(6, 10))
    a = act(z)
    np.testing.assert_array_equal(act(z.copy(), overwrite=True, scratch=np.empty_like(z)), a)
    np.testing.assert_array_equal(act.input_gradient(a, g.copy(), overwrite=True, scratch=np.empty_like(z)),
                                  act.input_gradient(a, g))
    # Without overwrite a result is an array of its own: writing to it leaves the input alone.
    assert not np.shares_memory(a, z) and not np.shares_memory(act.input_gradient(a, g), g)


def test_softmax_rows_sum_to_one_and_shift_invariance():
    rng = np.random.default_rng(4)
    z = rng.normal(scale=3, size=(6, 10))
    a = Softmax()(z)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert np.all(a > 0)
    np.testing.assert_allclose(Softmax()(z + 123.0), a, rtol=1e-12, atol=0)
    np.testing.assert_allclose(Softmax()(z - rng.normal(size=(6, 1)) * 50), a, rtol=1e-11, atol=0)
    # Rows are independent.
    np.testing.assert_allclose(Softmax()(z[2]), a[2], rtol=1e-15)


def test_softmax_large_inputs_do_not_overflow():
    z = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0], [1e5, 0.0, -1e5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            a = Softmax()(z)
    np.testing.assert_allclose(a[0], Softmax()(np.array([0.0, 1.0, 2.0])), rtol=1e-14)
    np.testing.assert_allclose(a[1], Softmax()(np.array([0.0, -1.0, -2.0])), rtol=1e-14)
    np.testing.assert_array_equal(a[2], [1.0, 0.0, 0.0])


def test_softmax_input_gradient_is_the_jacobian_transpose_product():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(4, 5))
    g = rng.normal(size=(4, 5))
    sm = Softmax()
    numeric = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += H
        zm[idx] -= H
        numeric[idx] = ((sm(zp) * g).sum() - (sm(zm) * g).sum()) / (2 * H)
    np.testing.assert_allclose(sm.input_gradient(sm(z), g), numeric, rtol=1e-7, atol=1e-10)
    with pytest.raises(NotImplementedError):
        sm.derivative(sm(z))


@pytest.mark.parametrize("name", [*ELEMENTWISE, "softmax"])
def test_spec_round_trip(name):
    act = activation_from_spec(name)
    assert act.name == name
    again = activation_from_spec(act.spec())
    assert type(again) is type(act) and again.spec() == act.spec()


def test_unknown_activation_is_rejected_with_the_known_names():
    with pytest.raises(ValueError, match="sigmoid"):
        activation_from_spec("swish")


def test_leaky_relu_derivative_at_zero_is_alpha_as_its_input_gradient():
    act = LeakyReLU(0.01)
    a = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(act.derivative(a), [[0.01, 0.01, 1.0]])
    np.testing.assert_array_equal(act.input_gradient(a, np.ones_like(a)), act.derivative(a))
