"""Optimizer update rules against hand-written formulas, their state, and the L2 UpdateRule."""
import re

import numpy as np
import pytest

from distnet import Trainer
from distnet.errors import ConfigError
from distnet.nn import (Adam, Dense, GradientDescent, Momentum, Nesterov, Network, ParallelUpdate, UpdateRule, fused,
                        optimizer_from_spec)

STEPS = 3


def start_and_gradients(seed=0, n=11, scale=1.0):
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=n)
    # A gradient that changes every step (sign and size), and depends on the current weights.
    extra = [rng.normal(size=n) * scale for _ in range(STEPS + 3)]
    return w0, lambda t, w: extra[t] + 0.3 * w * scale


def run(opt, w0, grad_fn, steps=STEPS):
    w = w0.copy()
    for t in range(steps):
        opt.step(w, grad_fn(t, w))
    return w


def test_gradient_descent_formula():
    w0, grad = start_and_gradients()
    w = w0.copy()
    for t in range(STEPS):
        w = w - 0.07 * grad(t, w)
    np.testing.assert_allclose(run(GradientDescent(0.07), w0, grad), w, rtol=1e-14, atol=1e-15)
    assert GradientDescent().learning_rate == 0.005


def test_momentum_formula():
    w0, grad = start_and_gradients(1)
    w, v = w0.copy(), np.zeros_like(w0)
    for t in range(STEPS):
        v = 0.8 * v + 0.05 * grad(t, w)
        w = w - v
    np.testing.assert_allclose(run(Momentum(0.05, 0.8), w0, grad), w, rtol=1e-14, atol=1e-15)


def test_nesterov_formula():
    w0, grad = start_and_gradients(2)
    lr, mu = 0.02, 0.87
    w, v = w0.copy(), np.zeros_like(w0)
    for t in range(STEPS):
        v_prev = v
        v = mu * v - lr * grad(t, w)
        w = w + (-mu * v_prev + (1 + mu) * v)
    got = run(Nesterov(lr, mu), w0, grad)
    np.testing.assert_allclose(got, w, rtol=1e-14, atol=1e-15)
    # It is not plain momentum with the same constants.
    assert not np.allclose(got, run(Momentum(lr, mu), w0, grad), rtol=1e-6)
    assert Nesterov(0.1).momentum == 0.9


def adam_reference(w0, grad, lr, b1, b2, eps, steps=STEPS):
    w, m, s = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
    for t in range(1, steps + 1):
        g = grad(t - 1, w)
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        s_hat = s / (1 - b2 ** t)
        w = w - lr * m_hat / (np.sqrt(s_hat) + eps)
    return w


TINY_EPSILON = 1e-300


def test_adam_formula_with_bias_correction():
    # An ε far below the gradients' scale (0 is refused: weights whose gradient is always 0 would
    # become 0/0) isolates the bias correction from where ε is added.
    w0, grad = start_and_gradients(3)
    got = run(Adam(0.01, 0.8, 0.95, TINY_EPSILON), w0, grad)
    np.testing.assert_allclose(got, adam_reference(w0, grad, 0.01, 0.8, 0.95, 0.0), rtol=1e-13, atol=1e-15)
    # The first Adam step moves every weight by lr against the gradient's sign.
    w0, grad = start_and_gradients(4)
    one = run(Adam(0.01, epsilon=TINY_EPSILON), w0, grad, steps=1)
    np.testing.assert_allclose(one, w0 - 0.01 * np.sign(grad(0, w0)), rtol=1e-14)


def test_adam_defaults():
    opt = Adam()
    assert (opt.learning_rate, opt.beta1, opt.beta2, opt.epsilon) == (0.001, 0.9, 0.999, 1e-8)


def test_adam_matches_its_documented_formula_with_default_epsilon():
    # Small gradients make ε matter: the two placements differ by ~1e-4 relative here.
    w0, grad = start_and_gradients(5, scale=1e-4)
    got = run(Adam(0.01), w0, grad)
    want = adam_reference(w0, grad, 0.01, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(got - w0, want - w0, rtol=1e-9)


OPTIMIZERS = {
    "gradient_descent": lambda: GradientDescent(0.03),
    "momentum": lambda: Momentum(0.03, 0.9),
    "nesterov": lambda: Nesterov(0.03, 0.87),
    "adam": lambda: Adam(0.03),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_summed_gradient_with_its_scale_steps_as_the_mean_gradient_does(name):
    # Trainers pass the gradient summed over a batch of n rows with scale=1/n. Small gradients make
    # Adam's ε matter, which would show an Adam that ignored the scale.
    n = 32
    w0, grad = start_and_gradients(6, scale=1e-4)
    mean, summed = OPTIMIZERS[name](), OPTIMIZERS[name]()
    w_mean, w_summed = w0.copy(), w0.copy()
    for t in range(STEPS):
        mean.step(w_mean, grad(t, w_mean))
        summed.step(w_summed, n * grad(t, w_summed), scale=1 / n)
    np.testing.assert_allclose(w_summed - w0, w_mean - w0, rtol=1e-12)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_round_trip_continues_identically(name):
    w0, grad = start_and_gradients(6)
    uninterrupted = OPTIMIZERS[name]()
    w_a = w0.copy()
    for t in range(6):
        uninterrupted.step(w_a, grad(t, w_a))

    first = OPTIMIZERS[name]()
    w_b = w0.copy()
    for t in range(3):
        first.step(w_b, grad(t, w_b))
    state = first.state()
    for t in range(3, 6):  # the original goes on: its exported state must not change with it
        first.step(w0.copy(), grad(t, w0))
    second = optimizer_from_spec(first.spec())
    assert second.state() == {}
    second.load_state(state)
    for arr in state.values():  # load_state copies: the caller's arrays are not the state
        arr[...] = 1e6
    for t in range(3, 6):
        second.step(w_b, grad(t, w_b))
    np.testing.assert_array_equal(w_b, w_a)


def test_state_contents():
    assert GradientDescent(0.1).state() == {}
    w0, grad = start_and_gradients(7)
    opt = Adam(0.01)
    run(opt, w0, grad, steps=2)
    state = opt.state()
    assert set(state) == {"mean", "square_mean", "t"}
    assert int(state["t"]) == 2 and state["mean"].shape == w0.shape
    mom = Nesterov(0.01)
    run(mom, w0, grad, steps=1)
    np.testing.assert_allclose(mom.state()["velocity"], -0.01 * grad(0, w0), rtol=1e-15)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_float32_params_stay_float32(name):
    w0, grad = start_and_gradients(8)
    w32 = w0.astype(np.float32)
    opt32, opt64 = OPTIMIZERS[name](), OPTIMIZERS[name]()
    w64 = w32.astype(np.float64)
    for t in range(STEPS):
        g = grad(t, w64)
        opt32.step(w32, g.astype(np.float32))
        opt64.step(w64, g)
    assert w32.dtype == np.float32
    assert all(v.dtype == np.float32 for k, v in opt32.state().items() if k != "t")
    np.testing.assert_allclose(w32, w64, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(w32, w0.astype(np.float32))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_spec_round_trip(name):
    opt = OPTIMIZERS[name]()
    again = optimizer_from_spec(opt.spec())
    assert type(again) is type(opt) and again.spec() == opt.spec()


def test_bad_learning_rate_rejected():
    for lr in (0, -0.1):
        with pytest.raises(ValueError, match="learning rate"):
            GradientDescent(lr)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizer_from_spec("rmsprop")


# -- UpdateRule and L2 --------------------------------------------------------------------------

def l2_network():
    net = Network([Dense(4, "tanh"), Dense(3, "sigmoid")], input_size=5, dtype=np.float64, seed=1)
    for layer in net.layers:
        layer.bias[...] = np.random.default_rng(2).uniform(0.5, 1.0, size=layer.size)
    return net


def test_l2_decays_weights_only():
    net = l2_network()
    before = [(l.weights.copy(), l.bias.copy()) for l in net.layers]
    UpdateRule(GradientDescent(0.1), l2=0.01, weight_slices=net.weight_slices).apply(
        net.params, np.zeros_like(net.params))
    for layer, (w, b) in zip(net.layers, before):
        np.testing.assert_allclose(layer.weights, 0.99 * w, rtol=1e-15)
        np.testing.assert_array_equal(layer.bias, b)


def test_l2_is_applied_before_the_optimizer_step():
    net = l2_network()
    p0 = net.params.copy()
    g = np.random.default_rng(3).normal(size=p0.size)
    UpdateRule(GradientDescent(0.1), l2=0.01, weight_slices=net.weight_slices).apply(net.params, g)
    want = p0 - 0.1 * g
    for w in net.weight_slices:
        want[w] = 0.99 * p0[w] - 0.1 * g[w]
    np.testing.assert_allclose(net.params, want, rtol=1e-14, atol=1e-15)


def test_l2_zero_leaves_weights_alone_and_float32_stays_float32():
    net = l2_network()
    p0 = net.params.copy()
    UpdateRule(GradientDescent(0.1), l2=0.0, weight_slices=net.weight_slices).apply(
        net.params, np.zeros_like(p0))
    np.testing.assert_array_equal(net.params, p0)
    net32 = net.astype(np.float32)
    UpdateRule(Momentum(0.1), l2=0.5, weight_slices=net32.weight_slices).apply(
        net32.params, np.zeros_like(net32.params))
    assert net32.params.dtype == np.float32
    np.testing.assert_allclose(net32.layers[0].weights, 0.5 * net.layers[0].weights, rtol=1e-6)


def test_l2_out_of_range_rejected():
    for l2 in (-0.1, 1.0):
        with pytest.raises(ValueError, match="l2"):
            UpdateRule(GradientDescent(0.1), l2=l2)


@pytest.mark.parametrize("name", ["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("other", ["size", "dtype"])
def test_an_optimizers_state_belongs_to_the_parameters_it_was_made_for(name, other):
    opt = OPTIMIZERS[name]()
    w0, grad = start_and_gradients(9)
    run(opt, w0, grad, steps=1)
    w = w0[:-1] if other == "size" else w0.astype(np.float32)
    before = opt.state()
    with pytest.raises(ConfigError, match=r"holds its .* for 11 float64 parameters, not for these "
                                          rf"{w.size} {w.dtype} ones: .* an optimizer of its own"):
        opt.step(w, grad(1, w0)[:w.size].astype(w.dtype))
    assert all(np.array_equal(before[k], v) for k, v in opt.state().items())


def test_a_trainer_given_another_networks_optimizer_says_so_before_touching_either(monkeypatch):
    # With numba the one-pass update would read and write past the end of the smaller velocity.
    opt = Nesterov(0.05, 0.9)
    X = np.random.default_rng(0).normal(size=(16, 5))
    Y = np.eye(2)[np.arange(16) % 2]
    small = Network([Dense(4, "tanh"), Dense(2, "softmax")], input_size=5, dtype=np.float64, seed=0)
    big = Network([Dense(50, "tanh"), Dense(2, "softmax")], input_size=5, dtype=np.float64, seed=0)
    Trainer(small, opt, l2=1e-4).step(X, Y)
    params = big.params.copy()
    with pytest.raises(ConfigError, match="holds its velocity for 34 float64 parameters, not for these 402"):
        Trainer(big, opt, l2=1e-4).step(X, Y)
    np.testing.assert_array_equal(big.params, params)
    # A distributed fit says so before it starts Ray: its parameter server failed to start with that
    # state, which read as a lost server, replaced until the failure limit.
    from distnet import Dataset, DistributedTrainer

    def no_ray(self):
        raise AssertionError("the fit went on to Ray")

    monkeypatch.setattr(DistributedTrainer, "_connect_ray", no_ray)
    data = Dataset(X, np.arange(16) % 2, "xy", ("a", "b"))
    with pytest.raises(ConfigError, match="holds its velocity for 34 float64 parameters, not for these 402"):
        DistributedTrainer(big, opt, batch_size=8, workers=2).fit(data, epochs=1)


# -- what a step and load_state are given ----------------------------------------------------------

def gradient_message(shape, dtype, got, what="the gradient"):
    return (f"{what} must be an array of the parameters' shape {shape} and dtype {dtype}, got {got}: "
            f"pass the gradient of these parameters, in their dtype")


BAD_GRADIENTS = {  # (params, grad, what the message says was given)
    "one element": (np.zeros(3), np.ones(1), "one of shape (1,) and dtype float64"),  # was broadcast
    "longer": (np.zeros(3), np.ones(4), "one of shape (4,) and dtype float64"),
    "other dtype": (np.zeros(3, np.float32), np.ones(3), "one of shape (3,) and dtype float64"),
    "a list": (np.zeros(3), [1.0, 1.0, 1.0], "a list"),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("bad", BAD_GRADIENTS)
def test_a_step_refuses_a_gradient_not_of_the_parameters_shape_and_dtype(name, bad):
    params, grad, got = BAD_GRADIENTS[bad]
    opt = OPTIMIZERS[name]()
    with pytest.raises(ConfigError, match=f"^{re.escape(gradient_message(params.shape, params.dtype, got))}$"):
        opt.step(params, grad)
    assert not params.any() and opt.state() == {}


@pytest.mark.parametrize("one_pass", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_an_update_rule_refuses_such_a_gradient_alike_with_and_without_numba(monkeypatch, one_pass, name):
    # With numba, Nesterov's update raised the one-pass kernel's ValueError; without, it went on.
    if one_pass and not fused.available():
        pytest.skip("needs numba")
    if not one_pass:
        monkeypatch.setattr(fused, "available", lambda: False)
    rule = UpdateRule(OPTIMIZERS[name](), l2=0.1, weight_slices=[slice(0, 2)])
    params = np.ones(3, np.float32)
    with pytest.raises(ConfigError, match=re.escape(gradient_message((3,), "float32", "one of shape (3,) and "
                                                                                      "dtype float64"))):
        rule.apply(params, np.ones(3))
    with pytest.raises(ConfigError, match=re.escape(gradient_message((3,), "float32", "one of shape (1,) and dtype "
                                                                                      "float32", "gradient 1 of 2"))):
        rule.apply_sum(params, [np.ones(3, np.float32), np.ones(1, np.float32)])
    np.testing.assert_array_equal(params, 1)  # not decayed either
    assert rule.optimizer.state() == {}


def test_apply_sum_of_no_gradients_is_refused():
    with pytest.raises(ConfigError, match="^apply_sum needs at least one gradient to update the parameters, "
                                          "got none$"):
        UpdateRule(GradientDescent(0.1)).apply_sum(np.ones(3), [])


@pytest.mark.parametrize("optimizer, given", [("nesterov", "'nesterov'"), (Nesterov, "the class Nesterov, not an "
                                                                                       "instance")])
def test_an_update_rule_takes_an_optimizer_instance(optimizer, given):
    with pytest.raises(ConfigError, match=re.escape(f"optimizer must be an Optimizer, such as Nesterov(0.02, 0.87); "
                                                    f"got {given}")):
        UpdateRule(optimizer)


def stepped(name):
    opt = OPTIMIZERS[name]()
    opt.step(np.zeros(4), np.ones(4))
    return opt


def test_load_state_takes_a_dict():
    with pytest.raises(ConfigError, match=re.escape("an optimizer's state must be a dict, such as the dict its "
                                                    "state() returns; got None")):
        Nesterov(0.1).load_state(None)
    with pytest.raises(ConfigError, match=re.escape("an optimizer's state must be a dict")):
        ParallelUpdate(Nesterov(0.1).spec(), 0.0, [], 8, parts=2).load_state(None)  # an AttributeError


@pytest.mark.parametrize("name, given, message", [
    ("nesterov", "adam", "the state of a Nesterov optimizer holds 'velocity' (nothing before its first step), but "
                         "the state given holds 'mean', 'square_mean', 't'"),
    ("adam", "nesterov", "the state of an Adam optimizer holds 'mean', 'square_mean', 't' (nothing before its first "
                         "step), but the state given holds 'velocity'"),
    ("gradient_descent", "momentum", "the state of a GradientDescent optimizer is always empty, but the state "
                                     "given holds 'velocity'"),
])
def test_load_state_refuses_another_optimizers_state(name, given, message):
    opt = stepped(name)
    before = opt.state()
    with pytest.raises(ConfigError, match=re.escape(message) + r": give it what the state\(\) of an? "):
        opt.load_state(stepped(given).state())
    assert opt.state().keys() == before.keys()


def test_load_state_refuses_a_part_of_adams_state_and_a_step_count_that_is_not_one():
    # {"t": 5} alone was taken: the next step corrected the bias of step 6 on zero moments.
    full = stepped("adam").state()
    opt = Adam(0.03)
    with pytest.raises(ConfigError, match=re.escape("but the state given holds 't': give it what the state() of an "
                                                    "Adam returned (another optimizer's state, or a part of one, "
                                                    "does not fit it)")):
        opt.load_state({"t": np.int64(5)})
    for t in (np.zeros(3, np.int64), np.float64(2.0), np.int64(0)):  # shown as NumPy writes them (np.int64(0) from 2.0)
        with pytest.raises(ConfigError, match=re.escape(f"Adam's step count 't' must be a whole number of at "
                                                        f"least 1, got {t!r}")):
            opt.load_state({**full, "t": t})
    assert opt.state() == {}
    opt.load_state({**full, "t": 7})  # a plain number is a count too, kept as state() keeps it
    assert opt.state()["t"].dtype == np.int64 and opt.state()["t"].shape == () and opt.state()["t"] == 7
    opt.load_state({})  # before the first step
    assert opt.state() == {}


def _by_hand(params, velocity, grad, lr, mu, l2, weight_slices):
    params, velocity = params.copy(), velocity.copy()
    for w in weight_slices:
        params[w] *= 1 - l2
    velocity = mu * velocity - lr * grad
    return params - lr * grad + mu * velocity, velocity


def test_a_changed_l2_takes_effect_at_the_next_update():
    net = Network([Dense(3, "sigmoid"), Dense(2, "softmax")], input_size=4, seed=0, dtype=np.float64)
    rng = np.random.default_rng(5)
    grads = [rng.normal(size=net.parameter_count) for _ in range(2)]
    rule = UpdateRule(Nesterov(0.1, 0.9), l2=0.01, weight_slices=net.weight_slices)
    params = net.params.copy()
    want, v = _by_hand(params, np.zeros_like(params), grads[0], 0.1, 0.9, 0.01, net.weight_slices)
    rule.apply(params, grads[0])
    np.testing.assert_allclose(params, want, rtol=1e-12, atol=1e-15)
    rule.l2 = 0.2  # what Trainer.l2 = 0.2 does between fits
    want, v = _by_hand(params, v, grads[1], 0.1, 0.9, 0.2, net.weight_slices)
    rule.apply(params, grads[1])
    np.testing.assert_allclose(params, want, rtol=1e-12, atol=1e-15)


def test_l2_without_the_weight_slices_is_refused():
    """L2 decays the weights, not the biases: a rule not told which are which has nothing to decay."""
    for slices in (None, []):
        with pytest.raises(ConfigError, match=r"^L2 needs the weight_slices of the network \(network.weight_slices\)$"):
            UpdateRule(GradientDescent(0.1), l2=0.01, weight_slices=slices)
    assert UpdateRule(GradientDescent(0.1), l2=0.0).weight_slices == []  # no L2: no slices needed


@pytest.mark.parametrize("other", [np.zeros(4, np.float32), np.zeros(5)])
def test_state_for_parameters_of_another_size_or_dtype_is_refused_before_a_fit(other):
    """check_state_fits, which a trainer calls before it trains, refuses what a step would refuse."""
    optimizer = Momentum(0.1, 0.9)
    optimizer.step(np.zeros(4), np.ones(4))  # a float64 velocity of 4
    optimizer.check_state_fits(np.zeros(4))
    with pytest.raises(ConfigError, match=f"^this Momentum optimizer holds its velocity for 4 float64 parameters, "
                                          f"not for these {other.size} {other.dtype} ones"):
        optimizer.check_state_fits(other)


def test_a_rule_sums_float64_gradients_in_float64_after_float32_ones():
    """The kept sum of the gradients follows their dtype: float64 gradients summed into the float32
    array of an earlier call would lose their low bits (2**-40 next to 1 is 0 in float32)."""
    rule = UpdateRule(GradientDescent(1.0))
    narrow = np.zeros(2, np.float32)
    rule.apply_sum(narrow, [np.ones(2, np.float32), np.full(2, 2, np.float32)])
    np.testing.assert_array_equal(narrow, [-3, -3])
    wide, g0, g1 = np.zeros(2), np.array([1.0, 0.5]), np.array([2**-40, 2**-30])
    rule.apply_sum(wide, [g0, g1])
    assert wide.dtype == np.float64
    np.testing.assert_array_equal(wide, [-(1 + 2**-40), -(0.5 + 2**-30)])
