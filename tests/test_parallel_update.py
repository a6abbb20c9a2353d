"""ParallelUpdate against one UpdateRule on the summed gradient: bit-for-bit, for every optimizer,
part count and number of gradients, through state round trips and learning-rate changes."""
import re

import numpy as np
import pytest

from distnet.distributed.parameter_server import ParameterServer
from distnet.errors import ConfigError
from distnet.nn import Dense, Network, ParallelUpdate, UpdateRule, optimizer_from_spec
from distnet.nn.parallel_update import MIN_PART_SIZE, parts_for

SPECS = {
    "gradient_descent": {"name": "gradient_descent", "learning_rate": 0.03},
    "momentum": {"name": "momentum", "learning_rate": 0.03, "momentum": 0.9},
    "nesterov": {"name": "nesterov", "learning_rate": 0.03, "momentum": 0.87},
    "adam": {"name": "adam", "learning_rate": 0.01},
}
L2 = 1e-2  # large, so that a weight decayed in the wrong part shows


def network(shape):
    """``wide``: 11-7-5-3, whose weight slices cross the boundaries of 2 and 3 parts;
    ``biases``: 1-40-1, whose middle third of 3 parts is biases only."""
    sizes = {"wide": (11, [7, 5, 3]), "biases": (1, [40, 1])}[shape]
    return Network([Dense(n, "sigmoid") for n in sizes[1]], input_size=sizes[0], seed=4)


def gradients(rng, params, count):
    # They change every step and depend on the current parameters, as real gradients do.
    return [(rng.normal(size=params.size) + 0.5 * params).astype(params.dtype) for _ in range(count)]


def summed(grads):
    total = grads[0].copy()
    for grad in grads[1:]:
        total += grad
    return total


def assert_same_state(got, expected):
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
        assert got[key].dtype == expected[key].dtype


@pytest.mark.parametrize("shape", ["wide", "biases"])
def test_the_test_networks_cut_across_the_parts(shape):
    net = network(shape)
    for parts in (2, 3):
        bounds = [net.params.size * i // parts for i in range(1, parts)]
        crossing = [b for b in bounds if any(w.start < b < w.stop for w in net.weight_slices)]
        assert crossing if shape == "wide" else not crossing
    if shape == "biases":  # 40..80 is the second part of three: the first layer's biases exactly
        assert net.params.size * 2 // 3 == 80 and net.params.size // 3 == 40 == net.weight_slices[0].stop


@pytest.mark.parametrize("shape", ["wide", "biases"])
@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("optimizer", SPECS)
def test_parts_equal_one_rule_on_the_summed_gradient(optimizer, parts, workers, shape):
    net = network(shape)
    rule = UpdateRule(optimizer_from_spec(SPECS[optimizer]), L2, net.weight_slices)
    update = ParallelUpdate(SPECS[optimizer], L2, net.weight_slices, net.params.size, parts)
    assert update.parts == parts
    expected, got = net.params.copy(), net.params.copy()
    rng = np.random.default_rng(parts * 10 + workers)
    try:
        for _ in range(4):
            grads = gradients(rng, expected, workers)
            rule.apply(expected, summed(grads), scale=1 / 37)
            update.apply_sum(got, grads, scale=1 / 37)
            np.testing.assert_array_equal(got, expected)
            assert_same_state(update.state(), rule.optimizer.state())
    finally:
        update.close()
    assert not np.array_equal(got, net.params)


@pytest.mark.parametrize("optimizer", SPECS)
def test_state_moves_between_part_counts_and_a_plain_optimizer(optimizer):
    net = network("wide")
    rng = np.random.default_rng(1)
    grads = [gradients(rng, net.params, 2) for _ in range(6)]  # fixed, so every run sees the same

    def make(parts):
        return ParallelUpdate(SPECS[optimizer], L2, net.weight_slices, net.params.size, parts)

    uninterrupted, params = make(3), net.params.copy()
    for step in grads:
        uninterrupted.apply_sum(params, step, scale=0.5)

    first, saved_params = make(3), net.params.copy()
    for step in grads[:3]:
        first.apply_sum(saved_params, step, scale=0.5)
    saved = first.state()
    for step in grads[3:]:  # the exported state is a copy: going on does not change it
        first.apply_sum(net.params.copy(), step, scale=0.5)

    two, plain = make(2), UpdateRule(optimizer_from_spec(SPECS[optimizer]), L2, net.weight_slices)
    two.load_state(saved)
    plain.optimizer.load_state(saved)
    params_two, params_plain = saved_params.copy(), saved_params.copy()
    for step in grads[3:]:
        two.apply_sum(params_two, step, scale=0.5)
        plain.apply(params_plain, summed(step), scale=0.5)
    for update in (uninterrupted, first, two):
        update.close()
    np.testing.assert_array_equal(params_two, params)
    np.testing.assert_array_equal(params_plain, params)
    assert_same_state(two.state(), uninterrupted.state())
    assert_same_state(plain.optimizer.state(), uninterrupted.state())


def test_state_of_another_length_is_refused():
    net = network("wide")
    update = ParallelUpdate(SPECS["nesterov"], L2, net.weight_slices, net.params.size, 2)
    with pytest.raises(ConfigError, match=r"optimizer state 'velocity' has shape \(10,\)"):
        update.load_state({"velocity": np.zeros(10, dtype=np.float32)})


@pytest.mark.parametrize("length", [9, 12])
def test_a_gradient_of_another_length_is_refused_before_any_part_updates(length):
    """Each part took its slice of the gradient: one longer than the parameters was cut to fit
    and applied, one shorter was refused by the last part only, after the others had updated."""
    net = network("wide")
    update = ParallelUpdate(SPECS["nesterov"], L2, net.weight_slices, net.params.size, 2)
    params = net.params.copy()
    size = params.size
    with pytest.raises(ConfigError, match=re.escape(f"gradient 1 of 2 must be an array of the parameters' shape "
                                                    f"({size},) and dtype float32, got one of shape "
                                                    f"({size + length - 10},)")):
        update.apply_sum(params, [np.ones(size, np.float32), np.ones(size + length - 10, np.float32)])
    np.testing.assert_array_equal(params, net.params)
    assert update.state() == {}
    update.close()


@pytest.mark.parametrize("length", [9, 12])
def test_parameters_of_another_length_are_refused_before_any_part_updates(length):
    """Parameters and gradients alike longer or shorter than the size the update was made for: the
    parts would update their slices of them and leave the rest (or run short), unnoticed."""
    net = network("wide")
    update = ParallelUpdate(SPECS["gradient_descent"], 0.0, net.weight_slices, net.params.size, 2)
    size = net.params.size + length - 10
    params = np.zeros(size, np.float32)
    with pytest.raises(ConfigError, match=re.escape(f"expected {net.params.size} parameters, got an array of "
                                                    f"shape ({size},)")):
        update.apply_sum(params, [np.ones(size, np.float32)])
    assert not params.any()
    update.close()


def test_learning_rate_reaches_every_part():
    net = network("wide")
    rule = UpdateRule(optimizer_from_spec(SPECS["nesterov"]), L2, net.weight_slices)
    update = ParallelUpdate(SPECS["nesterov"], L2, net.weight_slices, net.params.size, 3)
    rng = np.random.default_rng(2)
    expected, got = net.params.copy(), net.params.copy()
    for rate in (0.03, 0.2, 0.001):
        rule.optimizer.learning_rate = update.learning_rate = rate
        assert update.learning_rate == rate
        grads = gradients(rng, expected, 2)
        rule.apply(expected, summed(grads))
        update.apply_sum(got, grads)
        np.testing.assert_array_equal(got, expected)
    update.close()


def test_part_count_follows_size_and_cores():
    assert parts_for(28_938) == 1  # the article's network
    assert parts_for(1_863_690, cores=2) == 2  # 784-1024-1024-10 on two cores
    assert parts_for(1_863_690, cores=16) == 1_863_690 // MIN_PART_SIZE == 7
    assert parts_for(1_863_690, min_part_size=1000, cores=1) == 1
    assert parts_for(100, min_part_size=10, cores=3) == 3


def test_parameter_server_with_parts_equals_one_part_on_real_gradients(mnist):
    # The single-part server equals the single-process trainer (tests/test_distributed.py); this
    # shows the parallel server equals the single-part one, through every call a trainer makes.
    net = Network([Dense(30, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=8)
    spec, optimizer = net.spec(), SPECS["nesterov"]
    images, targets = mnist.train.images[:320], np.eye(10, dtype=net.dtype)[mnist.train.labels[:320]]
    one = ParameterServer(spec, net.params, optimizer, 1e-4, update_parts=1)
    parallel = ParameterServer(spec, net.params, optimizer, 1e-4, update_parts=3)
    worker = net.copy()

    def step(server, number):
        results = []
        for shard in range(2):  # two workers' summed gradients of 16 rows each
            rows = slice(32 * number + 16 * shard, 32 * number + 16 * (shard + 1))
            worker.set_params(server.get_params())
            grad, cost, correct = worker.backprop(images[rows], targets[rows])
            results.append((grad.copy(), cost, correct, 16))
        server.apply(0, number, *results)

    for number in range(5):
        if number == 3:
            for server in (one, parallel):
                server.set_learning_rate(0.005)
        step(one, number)
        step(parallel, number)
    params, state, position = parallel.get_params(), parallel.optimizer_state(), parallel.next_position()
    np.testing.assert_array_equal(params, one.get_params())
    assert_same_state(state, one.optimizer_state())
    assert position == one.next_position() == (0, 5)
    assert parallel.take_stats() == one.take_stats()

    resumed = ParameterServer(spec, params, optimizer, 1e-4, optimizer_state=state, update_parts=2)
    resumed.set_learning_rate(0.005)
    for number in range(5, 10):
        step(one, number)
        step(resumed, number)
    np.testing.assert_array_equal(resumed.get_params(), one.get_params())
    assert not np.array_equal(resumed.get_params(), net.params)
    for server in (one, parallel, resumed):
        server.update.close()
