"""The one-pass compiled update (distnet.nn.fused, with numba) against the NumPy update it stands
in for: bit for bit, over many steps, every dtype, one to three gradients, with and without L2."""
import os
import subprocess
import sys

import numpy as np
import pytest

from distnet.nn import Adam, Dense, Momentum, Nesterov, Network, ParallelUpdate, UpdateRule, fused

pytest.importorskip("numba")


def network(dtype=np.float64):
    # Odd layer sizes: the runs of weights and biases end off any vector width the loops use.
    return Network([Dense(61, "leaky_relu"), Dense(13, "sigmoid"), Dense(3, "softmax")],
                   input_size=37, seed=5, dtype=dtype)


def train(rule, params, workers, steps=6, seed=0):
    """Apply ``steps`` updates from gradients that depend on the parameters, as real ones do;
    the learning rate changes halfway, as a schedule would change it."""
    rng = np.random.default_rng(seed)
    for step in range(steps):
        if step == steps // 2:
            rule.optimizer.learning_rate *= 0.5
        grads = [(rng.normal(size=params.size) + 0.3 * params).astype(params.dtype) for _ in range(workers)]
        rule.apply_sum(params, grads, scale=1 / 32)
    return params


def numpy_only(monkeypatch):
    monkeypatch.setattr(fused, "available", lambda: False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("l2", [0.0, 1e-2])
def test_one_pass_update_equals_the_numpy_update_bit_for_bit(monkeypatch, dtype, workers, l2):
    net = network(dtype)
    one_pass = UpdateRule(Nesterov(0.05, 0.87), l2, net.weight_slices)
    got = train(one_pass, net.params.copy(), workers)
    numpy_only(monkeypatch)
    plain = UpdateRule(Nesterov(0.05, 0.87), l2, net.weight_slices)
    expected = train(plain, net.params.copy(), workers)
    assert got.dtype == dtype and not np.array_equal(got, net.params)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(one_pass.optimizer.velocity(got), plain.optimizer.velocity(expected))
    assert one_pass.optimizer.state()["velocity"].dtype == dtype


def test_nesterov_rules_take_the_one_pass_update_and_other_optimizers_do_not(monkeypatch):
    calls = []
    real = fused.nesterov_update
    monkeypatch.setattr(fused, "nesterov_update", lambda *args: calls.append(len(args[2])) or real(*args))
    net = network()
    train(UpdateRule(Nesterov(0.05, 0.87), 1e-4, net.weight_slices), net.params.copy(), workers=3, steps=2)
    # Three gradients: the first two summed by NumPy, the last added inside the pass.
    assert calls == [2, 2]
    for other in (Momentum(0.05, 0.9), Adam(0.01)):
        train(UpdateRule(other, 1e-4, net.weight_slices), net.params.copy(), workers=2, steps=2)
    assert calls == [2, 2]


def test_parallel_update_parts_take_the_one_pass_update_and_agree_with_numpy(monkeypatch):
    net = network(np.float32)
    spec = Nesterov(0.05, 0.87).spec()
    grads = [np.random.default_rng(i).normal(size=net.params.size).astype(np.float32) for i in range(2)]
    got = net.params.copy()
    update = ParallelUpdate(spec, 1e-2, net.weight_slices, got.size, parts=3)
    try:
        for _ in range(3):
            update.apply_sum(got, grads, scale=1 / 64)
    finally:
        update.close()
    numpy_only(monkeypatch)
    expected = net.params.copy()
    rule = UpdateRule(Nesterov(0.05, 0.87), 1e-2, net.weight_slices)
    for _ in range(3):
        rule.apply_sum(expected, grads, scale=1 / 64)
    np.testing.assert_array_equal(got, expected)


def test_read_only_gradients_as_ray_hands_them_over(monkeypatch):
    net = network(np.float32)
    grads = [np.random.default_rng(i).normal(size=net.params.size).astype(np.float32) for i in range(2)]
    for grad in grads:
        grad.flags.writeable = False
    got, expected = net.params.copy(), net.params.copy()
    UpdateRule(Nesterov(0.05, 0.87), 1e-2, net.weight_slices).apply_sum(got, grads, 1 / 8)
    numpy_only(monkeypatch)
    UpdateRule(Nesterov(0.05, 0.87), 1e-2, net.weight_slices).apply_sum(expected, grads, 1 / 8)
    np.testing.assert_array_equal(got, expected)


def test_segments_cut_the_vector_into_runs_of_weights_and_biases():
    bounds, keeps = fused.segments(10, [slice(0, 4), slice(5, 9)], 0.75, np.float32)
    assert bounds.tolist() == [0, 4, 5, 9, 10]
    assert keeps.tolist() == [0.75, 1, 0.75, 1] and keeps.dtype == np.float32
    bounds, keeps = fused.segments(6, [], 1.0, np.float64)
    assert bounds.tolist() == [0, 6] and keeps.tolist() == [1.0]


def test_nesterov_update_refuses_what_it_cannot_do(monkeypatch):
    params = np.zeros(4)
    bounds, keeps = fused.segments(4, [], 1.0, params.dtype)
    with pytest.raises(ValueError, match="one or two gradients, got 3"):
        fused.nesterov_update(params, np.zeros(4), [params] * 3, 0.1, 0.9, bounds, keeps)
    with pytest.raises(ValueError, match=r"the velocity shaped as the parameters \(4,\) float64, got \(3,\)"):
        fused.nesterov_update(params, np.zeros(3), [params], 0.1, 0.9, bounds, keeps)
    with pytest.raises(ValueError, match=r"the gradient 1 shaped .* got \(4,\) float32"):
        fused.nesterov_update(params, np.zeros(4), [params, np.zeros(4, np.float32)], 0.1, 0.9, bounds, keeps)
    with pytest.raises(ValueError, match="the runs end at 3, the parameters at 4"):
        fused.nesterov_update(params, np.zeros(4), [params], 0.1, 0.9, *fused.segments(3, [], 1.0, params.dtype))
    monkeypatch.setattr(fused, "_kernel", lambda: None)
    with pytest.raises(RuntimeError, match=r"needs numba: pip install numba"):
        fused.nesterov_update(params, np.zeros(4), [params], 0.1, 0.9, bounds, keeps)


def test_computing_gradients_does_not_load_numba_and_the_first_update_does():
    # A Ray worker only computes gradients: it must not pay numba's memory.
    script = """
import sys
import numpy as np
from distnet.nn import Dense, Nesterov, Network, UpdateRule
net = Network([Dense(5, "relu"), Dense(3, "softmax")], input_size=4, seed=1)
grad, _, _ = net.backprop(np.ones((2, 4)), np.eye(3)[[0, 1]])
print("numba" in sys.modules, end=" ")
UpdateRule(Nesterov(0.1, 0.9)).apply(net.params, grad)
print("numba" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_where_no_folder_can_keep_the_machine_code_each_process_compiles_it():
    # Numba looks for a writable folder (beside the module, then the user's cache); the Zip
    # locator alone finds none for an ordinary file, as on a read-only install without a home.
    script = """
import numpy as np
from distnet.nn import Nesterov, UpdateRule, fused
params = np.ones(3)
UpdateRule(Nesterov(0.5, 0.5)).apply(params, np.ones(3))
print(fused.available(), params.tolist())
"""
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "ZipCacheLocator"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    # v = 0.5·0 − 0.5·1 = −0.5; W = (1 − 0.5) + 0.5·(−0.5) = 0.25
    assert out.stdout.split(maxsplit=1) == ["True", "[0.25, 0.25, 0.25]\n"]


def test_a_ctrl_c_while_the_kernel_compiles_comes_once_the_update_is_done(monkeypatch):
    """numba compiles at the kernel's first call for new argument types; a Ctrl-C then landed in
    its callbacks, which swallowed it (the run went on to its end) or broke the compile off with a
    traceback. The stand-in kernel gets the Ctrl-C as the real one would, mid-call."""
    import signal

    calls = []

    def kernel(params, *arguments):
        if not calls:
            os.kill(os.getpid(), signal.SIGINT)
        calls.append(params.dtype)
        params += 1

    monkeypatch.setattr(fused, "_kernel", lambda: kernel)
    monkeypatch.setattr(fused, "_compiled_for", set())
    params, velocity, grad = (np.zeros(4, np.float16) for _ in range(3))
    bounds, keeps = fused.segments(4, [slice(0, 2)], 1.0, np.float16)
    with pytest.raises(KeyboardInterrupt):
        fused.nesterov_update(params, velocity, [grad], 0.1, 0.9, bounds, keeps)
    assert calls == [np.float16] and params.tolist() == [1, 1, 1, 1]  # the update was done, then the Ctrl-C
    fused.nesterov_update(params, velocity, [grad], 0.1, 0.9, bounds, keeps)  # compiled: called as it is
    assert len(calls) == 2 and signal.getsignal(signal.SIGINT) is signal.default_int_handler
