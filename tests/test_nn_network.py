"""The Network: flat parameter layout, batched math, backprop's sums, files and their errors."""
import io
import json
import pathlib
import re

import numpy as np
import pytest

from distnet.errors import ConfigError, DistnetError, ModelFormatError
from distnet.nn import (CrossEntropy, Dense, GradientDescent, HalfQuadratic, LeakyReLU, Network,
                        Quadratic, Softmax, UpdateRule, XavierNormal, activation_from_spec,
                        cost_from_spec, optimizer_from_spec)
from hostile import deeply_nested


def small_net(dtype=np.float64, seed=0, cost=None):
    return Network([Dense(6, LeakyReLU(0.2)), Dense(4, "tanh"), Dense(3, Softmax())], input_size=5,
                   cost=cost or CrossEntropy(), initializer=XavierNormal(), seed=seed, dtype=dtype)


def batch(n=9, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    labels = rng.integers(0, 3, size=n)
    return X, np.eye(3)[labels], labels


# -- structure ----------------------------------------------------------------------------------

def test_parameter_count_of_the_mnist_network():
    net = Network([Dense(36, "leaky_relu"), Dense(14, "leaky_relu"), Dense(10, "softmax")],
                  input_size=784, seed=942457)
    assert net.parameter_count == 28928 == net.params.size
    assert net.sizes == [784, 36, 14, 10] and net.output_size == 10
    assert [l.weights.shape for l in net.layers] == [(784, 36), (36, 14), (14, 10)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_params_is_one_contiguous_vector_with_views(dtype):
    net = small_net(dtype)
    assert net.params.ndim == 1 and net.params.flags.c_contiguous and net.params.dtype == dtype
    offset, fan_in = 0, 5
    for layer, w_slice in zip(net.layers, net.weight_slices):
        assert layer.weights.dtype == dtype and layer.bias.dtype == dtype
        assert np.shares_memory(layer.weights, net.params) and np.shares_memory(layer.bias, net.params)
        n_w = fan_in * layer.size
        assert w_slice == slice(offset, offset + n_w)
        # Row-major (inputs × size) weights, then the bias.
        np.testing.assert_array_equal(net.params[offset:offset + n_w].reshape(fan_in, layer.size), layer.weights)
        np.testing.assert_array_equal(net.params[offset + n_w:offset + n_w + layer.size], layer.bias)
        offset, fan_in = offset + n_w + layer.size, layer.size
    assert offset == net.params.size


def test_writing_through_views_changes_params_and_predictions():
    net = small_net()
    X, _, _ = batch()
    before = net.predict(X)
    net.layers[1].weights[2, 3] = 7.5
    size0 = 5 * 6 + 6
    assert net.params[size0 + 2 * 4 + 3] == 7.5
    net.layers[2].bias[1] = -2.0
    assert net.params[size0 + 6 * 4 + 4 + 4 * 3 + 1] == -2.0
    after = net.predict(X)
    assert not np.allclose(before, after)
    # And the other way: writing params moves the layer's view.
    net.params[0] = 42.0
    assert net.layers[0].weights[0, 0] == 42.0


def test_layout_by_hand_forward():
    net = small_net()
    X, _, _ = batch()
    a = X
    for layer in net.layers:
        a = layer.activation(a @ layer.weights + layer.bias)
    np.testing.assert_allclose(net.predict(X), a, rtol=1e-14)
    # The same forward pass, from the flat vector alone.
    p, a, fan_in = net.params, X, 5
    for layer in net.layers:
        W = p[:fan_in * layer.size].reshape(fan_in, layer.size)
        b = p[fan_in * layer.size:fan_in * layer.size + layer.size]
        p = p[fan_in * layer.size + layer.size:]
        a = layer.activation(a @ W + b)
        fan_in = layer.size
    np.testing.assert_allclose(net.predict(X), a, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_flow_through(dtype):
    net = small_net(dtype)
    X, Y, _ = batch()
    assert net.predict(X).dtype == dtype
    assert net.gradient(X, Y).dtype == dtype
    assert net.backprop(X, Y)[0].dtype == dtype


@pytest.mark.parametrize("cost", [CrossEntropy(), Quadratic()])
def test_float64_targets_are_computed_with_in_the_network_s_float32(cost):
    """Targets are taken in the network's dtype, as inputs are: float64 one-hot rows give a float32
    network the float32 gradient and cost of float32 rows, bit for bit (computed against float64
    targets, the output deltas and every product after them would be float64 arithmetic)."""
    net = small_net(np.float32, cost=cost)
    X, Y, _ = batch(n=64)
    grad, total, correct = net.backprop(X, Y)
    grad32, total32, correct32 = net.backprop(X.astype(np.float32), Y.astype(np.float32))
    np.testing.assert_array_equal(grad, grad32)
    assert (total, correct) == (total32, correct32)


def test_float32_and_float64_agree():
    net64 = small_net()
    net32 = net64.astype(np.float32)
    X, Y, _ = batch()
    assert net32.params.dtype == np.float32
    np.testing.assert_allclose(net32.predict(X), net64.predict(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net32.gradient(X, Y), net64.gradient(X, Y), rtol=1e-4, atol=1e-5)


def test_bad_dtype_and_bad_structure_rejected():
    with pytest.raises(ConfigError, match="float32 or float64"):
        Network([Dense(2, "sigmoid")], input_size=2, dtype=np.int32)
    with pytest.raises(ConfigError, match="at least one layer"):
        Network([], input_size=2)
    with pytest.raises(ConfigError, match="input_size"):
        Network([Dense(2, "sigmoid")], input_size=0)


@pytest.mark.parametrize("dtype, got", [("foo", "'foo'"), (int, "dtype('int64')"), ("float16", "dtype('float16')")])
def test_a_dtype_but_float32_or_float64_is_a_config_error(dtype, got):
    message = f"^dtype must be float32 or float64, got {re.escape(got)}$"
    with pytest.raises(ConfigError, match=message):
        Network([Dense(2, "sigmoid")], input_size=2, dtype=dtype)  # "foo" was NumPy's TypeError
    with pytest.raises(ConfigError, match=message):
        small_net().astype(dtype)


# -- math ---------------------------------------------------------------------------------------

def test_predict_batch_equals_rows_one_by_one():
    net = small_net()
    X, _, _ = batch(n=12)
    out = net.predict(X)
    assert out.shape == (12, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-14)
    for i, row in enumerate(X):
        np.testing.assert_allclose(net.predict(row)[0], out[i], rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(net.predict(X[i:i + 1])[0], out[i], rtol=1e-13, atol=1e-16)


def test_predict_accepts_lists_and_does_not_modify_input():
    net = small_net()
    X, _, _ = batch(n=3)
    keep = X.copy()
    np.testing.assert_allclose(net.predict(X.tolist()), net.predict(X), rtol=0, atol=0)
    np.testing.assert_array_equal(X, keep)


@pytest.mark.parametrize("cost", [CrossEntropy(), Quadratic(), HalfQuadratic()], ids=lambda c: c.name)
def test_backprop_returns_sums(cost):
    net = small_net(cost=cost)
    X, Y, labels = batch(n=11)
    grad_sum, cost_sum, correct = net.backprop(X, Y)
    mean_grad = net.gradient(X, Y)
    np.testing.assert_allclose(grad_sum, 11 * mean_grad, rtol=1e-13, atol=1e-16)
    assert cost_sum == pytest.approx(11 * net.cost(X, Y), rel=1e-13)
    assert correct == int((net.predict(X).argmax(axis=1) == labels).sum())
    # The summed gradient over a batch is the sum of per-sample gradients.
    per_row = sum(net.backprop(X[i:i + 1], Y[i:i + 1])[0] for i in range(11))
    np.testing.assert_allclose(grad_sum, per_row, rtol=1e-12, atol=1e-15)


def test_backprop_correct_count_by_construction():
    net = small_net()
    X, _, _ = batch(n=10)
    predicted = net.predict(X).argmax(axis=1)
    labels = predicted.copy()
    labels[[1, 4, 7]] = (labels[[1, 4, 7]] + 1) % 3
    _, _, correct = net.backprop(X, np.eye(3)[labels])
    assert correct == 7
    assert net.error_rate(X, labels) == pytest.approx(0.3)
    assert net.error_rate(X, labels, batch_size=4) == pytest.approx(0.3)
    assert net.error_rate(X, predicted) == 0.0
    assert net.error_count(X[:0], labels[:0]) == 0
    with pytest.raises(ConfigError, match="the error rate needs at least one sample, and the data has none"):
        net.error_rate(X[:0], labels[:0])  # it was 0.0, a perfect score for nothing
    with pytest.raises(ConfigError, match="^the mean cost needs at least one sample, and the data has none$"):
        net.cost(X[:0], np.eye(3)[labels[:0]])  # it was NaN, with two RuntimeWarnings


def test_backprop_into_a_preallocated_vector():
    net = small_net()
    X, Y, _ = batch()
    out = np.full_like(net.params, np.nan)
    grad, _, _ = net.backprop(X, Y, out=out)
    assert grad is out
    np.testing.assert_allclose(out, net.backprop(X, Y)[0], rtol=0, atol=0)


def test_backprop_with_kept_buffers_gives_the_same_numbers_at_every_row_count():
    net = small_net()
    for n in (9, 9, 4, 9):  # a change of row count replaces the buffers, it does not mix them
        X, Y, _ = batch(n=n, seed=n)
        fresh = net.backprop(X, Y)
        kept = net.backprop(X, Y, out=np.empty_like(net.params), reuse_buffers=True)
        np.testing.assert_array_equal(kept[0], fresh[0])
        assert kept[1:] == fresh[1:]


def test_backprop_with_kept_buffers_allocates_no_layer_sized_array():
    # The point of the buffers: a training step writes no fresh array of a hidden layer's size.
    import tracemalloc

    net = Network([Dense(256, "leaky_relu"), Dense(256, "leaky_relu"), Dense(10, "softmax")], input_size=784,
                  seed=0, dtype=np.float32)
    rng = np.random.default_rng(0)
    X = rng.random((128, 784), dtype=np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]
    grad = np.empty_like(net.params)
    layer_bytes = 128 * 256 * 4

    def peak_bytes(**kwargs):
        net.backprop(X, Y, out=grad, **kwargs)  # the first call may allocate the buffers
        tracemalloc.start()
        try:
            net.backprop(X, Y, out=grad, **kwargs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # What remains are the output layer's small temporaries (rows × 10: 5 kB each).
    assert peak_bytes(reuse_buffers=True) < layer_bytes / 2
    assert peak_bytes() > 4 * layer_bytes  # the same measure sees what fresh arrays cost


def test_training_steps_lower_the_cost():
    net = small_net()
    X, Y, _ = batch(n=30)
    rule = UpdateRule(optimizer_from_spec({"name": "nesterov", "learning_rate": 0.05}), l2=1e-4,
                      weight_slices=net.weight_slices)
    start = net.cost(X, Y)
    for _ in range(50):
        rule.apply(net.params, net.gradient(X, Y))
    assert net.cost(X, Y) < 0.7 * start


def test_bad_input_shapes_raise_config_error():
    net = small_net()
    with pytest.raises(ConfigError, match=r"rows of 5 inputs.*\(3, 4\)"):
        net.predict(np.zeros((3, 4)))
    with pytest.raises(ConfigError, match=r"rows of 5 inputs.*\(2, 3, 5\)"):
        net.predict(np.zeros((2, 3, 5)))
    with pytest.raises(ConfigError, match="5 inputs"):
        net.predict(np.zeros(6))
    with pytest.raises(ConfigError, match="5 inputs"):
        net.gradient(np.zeros((2, 7)), np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="at least one sample"):
        net.gradient(np.zeros((0, 5)), np.zeros((0, 3)))
    with pytest.raises(ConfigError, match=r"targets must be one row of 3 values.*\(2, 4\) for 2 samples"):
        net.gradient(np.zeros((2, 5)), np.zeros((2, 4)))
    with pytest.raises(ConfigError, match=r"\(3, 3\) for 2 samples"):
        net.backprop(np.zeros((2, 5)), np.zeros((3, 3)))
    with pytest.raises(ConfigError, match=r"\(2,\) for 2 samples"):
        net.cost(np.zeros((2, 5)), np.zeros(2))  # labels where one-hot rows belong
    X, Y, _ = batch(n=1)
    assert net.cost(X[0], Y[0]) == net.cost(X, Y)  # one sample may come as flat rows


# -- params, copy -------------------------------------------------------------------------------

def test_set_params_checks_shape_and_copies():
    net = small_net()
    new = np.arange(net.parameter_count, dtype=np.float64)
    net.set_params(new)
    np.testing.assert_array_equal(net.params, new)
    new[0] = 99
    assert net.params[0] == 0          # a copy, not an alias
    assert net.layers[0].weights[0, 1] == 1  # the views see the new values
    with pytest.raises(ConfigError, match=str(net.parameter_count)):
        net.set_params(np.zeros(net.parameter_count - 1))
    with pytest.raises(ConfigError):
        net.set_params(np.zeros((1, net.parameter_count)))


def test_copy_is_independent():
    net = small_net()
    X, Y, _ = batch()
    twin = net.copy()
    assert twin is not net and twin.params is not net.params
    assert not np.shares_memory(twin.params, net.params)
    np.testing.assert_array_equal(twin.params, net.params)
    np.testing.assert_array_equal(twin.predict(X), net.predict(X))
    assert twin.spec() == net.spec() and twin.layers[0].activation.alpha == 0.2
    UpdateRule(GradientDescent(0.5)).apply(twin.params, twin.gradient(X, Y))
    assert not np.allclose(twin.params, net.params)
    before = twin.params.copy()
    net.layers[0].weights[...] = 0
    np.testing.assert_array_equal(twin.params, before)


# -- files --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_load_round_trip(tmp_path, dtype):
    net = Network([Dense(6, LeakyReLU(0.2)), Dense(4, "softplus"), Dense(3, "softmax")], input_size=5,
                  cost=CrossEntropy(), seed=4, dtype=dtype)
    net.layers[1].bias[...] = [0.1, -0.2, 0.3, -0.4]
    path = net.save(tmp_path / "sub" / "model.npz")
    assert path.exists()
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]   # no temporary left behind
    back = Network.load(path)
    assert back.params.dtype == dtype
    np.testing.assert_array_equal(back.params, net.params)
    assert [type(l.activation) for l in back.layers] == [LeakyReLU, type(net.layers[1].activation), Softmax]
    assert back.layers[0].activation.alpha == 0.2
    assert isinstance(back.cost_function, CrossEntropy)
    assert back.spec() == net.spec()
    X, _, _ = batch()
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    assert Network.from_npz_bytes(path.read_bytes()).spec() == net.spec()


def test_saved_file_is_a_plain_npz(tmp_path):
    path = small_net().save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"params", "meta"}
        meta = json.loads(npz["meta"].tobytes().decode())
    assert meta["format"] == "distnet.network" and meta["version"] == 1
    assert meta["input_size"] == 5 and meta["cost"] == {"name": "cross_entropy"}


def test_notes_saved_with_a_network_come_back_and_leave_the_network_as_it_was(tmp_path):
    from distnet.nn.network_files import saved_notes

    net = small_net()
    notes = {"trained_on": {"name": "fashion-mnist/train", "classes": ("T-shirt/top", "Trouser")},
             "epochs": 3, "nested": {"ok": [True, None, 0.5]}}
    path = net.save(tmp_path / "noted.npz", notes=notes)
    assert saved_notes(path) == {**notes, "trained_on": {**notes["trained_on"],
                                                         "classes": ["T-shirt/top", "Trouser"]}}  # as JSON keeps them
    path.rename(tmp_path / "best.npz")
    assert saved_notes(tmp_path)["epochs"] == 3  # a folder stands for its best.npz
    back = Network.load(tmp_path / "best.npz")
    assert back.spec() == net.spec() and np.array_equal(back.params, net.params)
    # The format stays at version 1, the notes one more key of its metadata, which readers before
    # notes ignore: they read only the network's spec (tests/test_nn_network.py's other cases).
    with np.load(tmp_path / "best.npz", allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes().decode())
    assert meta["version"] == 1 and meta["notes"]["epochs"] == 3
    assert {key: meta[key] for key in net.spec()} == net.spec()


def test_a_network_saved_without_notes_has_none_and_loads_as_before(tmp_path):
    from distnet.nn.network_files import saved_notes

    net = small_net()
    plain = net.save(tmp_path / "plain.npz")
    assert saved_notes(plain) == {} and saved_notes(net.save(tmp_path / "empty.npz", notes={})) == {}
    with np.load(plain, allow_pickle=False) as npz:
        assert "notes" not in json.loads(npz["meta"].tobytes().decode())
    # A file written before notes existed: its metadata is the spec alone.
    (tmp_path / "old.npz").write_bytes(_npz_bytes(params=net.params, meta=_meta(net)))
    assert saved_notes(tmp_path / "old.npz") == {}
    np.testing.assert_array_equal(Network.load(tmp_path / "old.npz").params, net.params)
    (tmp_path / "odd.npz").write_bytes(_npz_bytes(params=net.params, meta=_meta(net, notes=[1, 2])))
    with pytest.raises(ModelFormatError, match="odd.npz: its notes are not a JSON object"):
        saved_notes(tmp_path / "odd.npz")


@pytest.mark.parametrize("notes,message", [
    ({"when": object()}, "notes must hold only what JSON can .* not JSON serializable"),
    ({"error": np.float32(0.1)}, "notes must hold only what JSON can .* float32"),
    ({"error": float("nan")}, "notes must hold only what JSON can"),
    ({(1, 2): "tuple key"}, r"notes must be a dict of JSON values by name, such as \{'epoch': 40\}, and so must the "
                            r"dicts within it: got the key \(1, 2\)$"),
    ({1: "int key"}, r"notes must be a dict of JSON values by name"),  # JSON would make it "1"
    ({"a": [{1: "x", "1": "y"}]}, r"and so must the dicts within it: got the key 1$"),  # "x" lost without a word
    (["a list"], r"notes must be a dict of JSON values by name, such as \{'epoch': 40\}, got \['a list'\]$"),
    (deeply_nested(100_000), "notes is nested too deeply to be written as JSON"),
])
def test_notes_json_cannot_hold_are_refused_and_nothing_is_written(tmp_path, notes, message):
    with pytest.raises(ConfigError, match=message):
        small_net().save(tmp_path / "m.npz", notes=notes)
    assert list(tmp_path.iterdir()) == []


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _meta(net, **override) -> np.ndarray:
    meta = {"format": "distnet.network", "version": 1, **net.spec(), **override}
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def test_load_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match="no such model file"):
        Network.load(tmp_path / "absent.npz")


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, -1])
def test_load_truncated_file(tmp_path, keep):
    data = small_net().save(tmp_path / "m.npz").read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    (tmp_path / "t.npz").write_bytes(data[:cut])
    with pytest.raises(ModelFormatError, match=r"t\.npz.*(truncated|corrupt|not a valid)"):
        Network.load(tmp_path / "t.npz")


@pytest.mark.parametrize("content", [b"hello, this is not a model\n", b"\x00" * 64, b'{"layers": []}'],
                         ids=["text", "zeros", "json"])
def test_load_non_npz_file(tmp_path, content):
    (tmp_path / "x.npz").write_bytes(content)
    with pytest.raises(ModelFormatError, match=r"x\.npz"):
        Network.load(tmp_path / "x.npz")


def test_load_text_file_message_does_not_claim_pickle(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"hello, this is not a model\n")
    with pytest.raises(ModelFormatError) as info:
        Network.load(tmp_path / "x.npz")
    assert "pickle" not in str(info.value)


def test_load_npy_instead_of_npz(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(ModelFormatError, match=r"x\.npy"):
        Network.load(tmp_path / "x.npy")


class _Payload:
    """Unpickling this creates a marker file: proof that pickle ran."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("where", ["extra", "params"])
def test_load_refuses_pickled_objects_without_running_them(tmp_path, monkeypatch, where):
    net = small_net()
    marker = tmp_path / "pwned"
    evil = np.array([_Payload(marker)], dtype=object)
    arrays = {"params": net.params, "meta": _meta(net), where: evil}
    path = tmp_path / "evil.npz"
    path.write_bytes(_npz_bytes(**arrays))  # np.savez pickles object arrays

    # The control: the payload works when pickle is allowed.
    control = tmp_path / "control.npz"
    control.write_bytes(_npz_bytes(evil=np.array([_Payload(tmp_path / "control")], dtype=object)))
    with np.load(control, allow_pickle=True) as npz:
        npz["evil"]
    assert (tmp_path / "control").exists()

    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    with pytest.raises(ModelFormatError, match="pickle"):
        Network.load(path)
    assert not marker.exists()
    assert calls and all(c is False for c in calls)


def test_save_under_a_file_says_which_file_is_in_the_way(tmp_path):
    (tmp_path / "notes.txt").write_text("kept")
    for save in (small_net().save, small_net().save_original_json):
        with pytest.raises(ConfigError, match=rf"^cannot write {tmp_path}/notes.txt/m.npz: {tmp_path}/notes.txt is a "
                                              rf"file, not a folder"):
            save(tmp_path / "notes.txt" / "m.npz")
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_load_wrong_parameter_count(tmp_path):
    net = small_net()
    path = tmp_path / "short.npz"
    path.write_bytes(_npz_bytes(params=net.params[:-1], meta=_meta(net)))
    with pytest.raises(ModelFormatError, match=rf"{net.parameter_count - 1}.*{net.parameter_count}"):
        Network.load(path)


def test_load_wrong_dtype_missing_keys_bad_meta(tmp_path):
    net = small_net()
    cases = {
        "dtype": (dict(params=net.params.astype(np.float32), meta=_meta(net)), "float32"),
        "missing": (dict(params=net.params), "missing meta"),
        "format": (dict(params=net.params, meta=_meta(net, format="other")), "expected a distnet.network"),
        "version": (dict(params=net.params, meta=_meta(net, version=99)), r"newer distnet \(format version 99\)"),
        **{f"version {v!r}": (dict(params=net.params, meta=_meta(net, version=v)),
                              rf"format version is {re.escape(repr(v))}, not a whole number of at least 1: the "
                              rf"file is damaged or was not written by distnet")
           for v in (True, 0, -5, None, "1", 1.0)},
        "json": (dict(params=net.params, meta=np.frombuffer(b"{nope", dtype=np.uint8)), "not valid JSON"),
        "spec": (dict(params=net.params, meta=_meta(net, layers=[{"size": 3, "activation": "swish"}])),
                 "does not describe a valid network"),
        "size": (dict(params=net.params, meta=_meta(net, input_size=-1)), "does not describe"),
    }
    for name, (arrays, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(_npz_bytes(**arrays))
        with pytest.raises(ModelFormatError, match=message):
            Network.load(path)


# The 2-2-2 sigmoid network of the original's unit tests (tests/test_nn_golden.py), written by hand
# as the original's NeuralNetwork.toJson writes a NetworkState: the input layer first, weights
# with one row per input.
ORIGINAL_DOC = """{"costFunction": "Quadratic", "layers": [
  {"bias": [0.0, 0.0], "activation": "Identity"},
  {"weights": [[0.3, 0.2], [-0.4, 0.6]], "bias": [0.25, 0.45], "activation": "Sigmoid"},
  {"weights": [[0.7, -0.3], [0.5, -0.1]], "bias": [0.15, 0.35], "activation": "Sigmoid"}]}"""


def original_net(dtype=np.float64):
    return Network([Dense(6, "leaky_relu"), Dense(4, "relu"), Dense(3, Softmax())], input_size=5,
                   cost=HalfQuadratic(), initializer=XavierNormal(), seed=0, dtype=dtype)


def test_original_json_has_the_originals_layout(tmp_path):
    net = original_net()
    doc = net.to_original_json()
    assert list(doc) == ["costFunction", "layers"] and doc["costFunction"] == "HalfQuadratic"
    layers = doc["layers"]
    assert layers[0] == {"bias": [0.0] * 5, "activation": "Identity"}  # the input layer: no weights
    assert [list(l) for l in layers[1:]] == [["weights", "bias", "activation"]] * 3
    assert [l["activation"] for l in layers[1:]] == ["Leaky_ReLU", "ReLU", "Softmax"]
    for l, layer in zip(layers[1:], net.layers):
        assert np.shape(l["weights"]) == layer.weights.shape == (layer.weights.shape[0], layer.size)
    flat = np.concatenate([np.concatenate([np.ravel(l["weights"]), l["bias"]]) for l in layers[1:]])
    np.testing.assert_array_equal(flat, net.params)
    path = net.save_original_json(tmp_path / "net.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(doc))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_original_json_round_trip(tmp_path, dtype):
    net = original_net(dtype)
    again = Network.from_original_json(json.loads(json.dumps(net.to_original_json())), dtype=dtype)
    assert again.spec() == net.spec()
    np.testing.assert_array_equal(again.params, net.params)
    from_file = Network.load_original_json(net.save_original_json(tmp_path / "net.json"))
    assert from_file.dtype == np.float64  # the original's double, unless asked otherwise
    np.testing.assert_array_equal(from_file.params, net.params)
    with pytest.raises(ModelFormatError, match="net.json: a network in the original's JSON layout, not one saved by "
                                               "Network.save; load it with Network.load_original_json"):
        Network.load(tmp_path / "net.json")
    with pytest.raises(ConfigError, match="other.json: save writes an .npz file; for the original's JSON layout use "
                                          "save_original_json"):
        net.save(tmp_path / "other.json")
    assert not (tmp_path / "other.json").exists()


def test_a_document_in_the_originals_format_gives_the_originals_golden_numbers():
    net = Network.from_original_json(json.loads(ORIGINAL_DOC))
    assert net.sizes == [2, 2, 2] and net.spec()["cost"] == {"name": "quadratic"}
    assert [layer.activation.spec() for layer in net.layers] == [{"name": "sigmoid"}] * 2
    np.testing.assert_allclose(net.predict([2.0, 3.0])[0], [0.712257432295742, 0.533097573871501], rtol=0, atol=1e-14)
    assert net.cost([2.0, 3.0], [1.0, 0.2]) == pytest.approx(0.19374977898811957, rel=1e-14)
    assert net.to_original_json() == json.loads(ORIGINAL_DOC)


@pytest.mark.parametrize("net", [
    Network([Dense(3, "tanh")], input_size=2),                         # the original has no Tanh
    Network([Dense(3, LeakyReLU(0.2))], input_size=2),                 # nor another leak than 0.01
    Network([Dense(3, "softmax")], input_size=2, cost=CrossEntropy()),  # nor CrossEntropy
], ids=["tanh", "leaky_relu_alpha", "cross_entropy"])
def test_what_the_original_cannot_hold_is_refused(net):
    with pytest.raises(ConfigError, match="original Java library has no .* save"):
        net.to_original_json()


def test_a_network_with_nan_parameters_is_not_written_in_the_originals_json(tmp_path):
    # The file had the bare token NaN, which is not JSON: load_original_json refused it.
    net = original_net()
    net.params[3] = np.nan
    for write in (net.to_original_json, lambda: net.save_original_json(tmp_path / "net.json")):
        with pytest.raises(ConfigError, match=re.escape(  # "save it with save()" before, which refuses it too
                "this network's parameters hold NaN or infinite values (a training that diverged leaves them so), "
                "which JSON has no numbers for (a file with them would not load): train again, or load a network "
                "with finite parameters (such as a run's best.npz) to save in this layout")):
            write()
    assert not list(tmp_path.iterdir())


def test_numbers_beyond_float32_are_refused_when_the_originals_json_is_loaded_as_float32(tmp_path):
    # They became infinite, with only a RuntimeWarning.
    doc = original_net().to_original_json()
    doc["layers"][2]["weights"][1][0] = -1e39
    message = ("numbers in layer 2's weights are beyond the range of float32 (magnitudes up to 3.403e+38): load "
               "the network as float64 (dtype=np.float64)")
    with pytest.raises(ModelFormatError, match=f"^{re.escape(message)}$"):
        Network.from_original_json(doc, dtype=np.float32)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match=f"^{re.escape(f'{path}: {message}')}$"):
        Network.load_original_json(path, dtype="float32")
    assert Network.load_original_json(path).params.min() == -1e39


_DELETE = object()


def _original(**changes):
    """ORIGINAL_DOC with changes: layers__1__size=2 sets doc["layers"][1]["size"]; _DELETE deletes."""
    doc = json.loads(ORIGINAL_DOC)
    for path, value in changes.items():
        *where, key = path.split("__")
        target = doc
        for step in where:
            target = target[int(step) if step.isdigit() else step]
        if value is _DELETE:
            del target[key]
        else:
            target[int(key) if key.isdigit() else key] = value
    return doc


@pytest.mark.parametrize("doc, message", [
    ([], "object with a 'costFunction'"),
    ({"costFunction": "Quadratic", "layers": []}, "at least one more"),
    (_original(costFunction="CrossEntropy"), "costFunction must be one of Quadratic, HalfQuadratic, MSE"),
    (_original(costFunction=_DELETE), "costFunction must be one of"),
    (_original(cost="Quadratic"), "fields the original does not write: cost"),
    (_original(layers__0__activation="Sigmoid"), "input layer"),
    (_original(layers__0__weights=[[1.0]]), "input layer"),
    (_original(layers__1="layer"), "layer 1 must be an object"),
    (_original(layers__1__size=2), "layer 1 has fields the original does not write: size"),
    (_original(layers__1__activation="leaky_relu"), "layer 1's activation must be one of Identity"),
    (_original(layers__1__weights=[[0.3, 0.2, 0.1], [-0.4, 0.6, 0.1]]), r"layer 1's weights must be 2 × 2 .*\(2, 3\)"),
    (_original(layers__2__weights=[[0.7], [0.5, -0.1]]), "different lengths"),
    (_original(layers__1__weights=[[0.3, "0.2"], [-0.4, 0.6]]), "layer 1's weights must be 2 × 2 finite numbers"),
    (_original(layers__1__weights=[[0.3, None], [-0.4, 0.6]]), "finite numbers"),
    (_original(layers__1__weights=[[0.3, float("nan")], [-0.4, 0.6]]), "finite numbers"),
    (_original(layers__2__bias=[]), "layer 2's bias must be n finite numbers"),
    (_original(layers__2__bias=_DELETE), "layer 2's bias"),
    (_original(layers__0__bias=True), "layer 0's bias"),
], ids=lambda value: None if isinstance(value, (dict, list)) else value[:40])
def test_anything_but_the_originals_layout_is_refused(doc, message):
    with pytest.raises(ModelFormatError, match=message):
        Network.from_original_json(doc)


def test_load_original_json_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ModelFormatError, match="bad.json: not a JSON file"):
        Network.load_original_json(bad)
    bad.write_text('{"layers": 1}')
    with pytest.raises(ModelFormatError, match="bad.json: not a network in the original's JSON layout"):
        Network.load_original_json(bad)
    missing = tmp_path / "missing.json"
    with pytest.raises(ModelFormatError, match=f"^{re.escape(str(missing))}: no such model file; give a file a "
                                               f"network was saved in$"):
        Network.load_original_json(missing)  # not "...: not a JSON file (...: no such model file)"


@pytest.mark.parametrize("folder", [".", "models"])
def test_saving_to_a_folder_says_to_give_a_file_name(tmp_path, monkeypatch, folder):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    net = original_net()
    for save in (net.save, net.save_original_json):
        with pytest.raises(ConfigError, match=re.escape(f"{folder} is a folder; give the path of a file to write, "
                                                        f"such as {pathlib.Path(folder, 'best.npz')}")):
            save(folder)  # "." was a ValueError of pathlib's: PosixPath('.') has an empty name
    assert [p.name for p in tmp_path.rglob("*")] == ["models"]


def test_a_network_saved_and_loaded_under_home_is_expanded_as_a_shell_would(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    net = original_net()
    assert net.save("~/models/a.npz") == tmp_path / "models" / "a.npz"
    assert net.save_original_json("~/models/a.json") == tmp_path / "models" / "a.json"
    np.testing.assert_array_equal(Network.load("~/models/a.npz").params, net.params)
    np.testing.assert_array_equal(Network.load_original_json("~/models/a.json").params, net.params)
    assert not (tmp_path / "~").exists()


def test_from_spec_rebuilds_the_architecture():
    net = small_net(np.float32)
    again = Network.from_spec(net.spec(), net.params)
    assert again.params.dtype == np.float32 and again.spec() == net.spec()
    np.testing.assert_array_equal(again.params, net.params)
    # A spec without a dtype (as written before it was kept) is the default's, float32.
    spec = {key: value for key, value in small_net(np.float64).spec().items() if key != "dtype"}
    assert Network.from_spec(spec).dtype == np.float32 == Network.from_spec(spec, net.params).params.dtype


SPEC_EXAMPLE = ("such as Network.spec() returns: {'input_size': 784, 'layers': [{'size': 10, 'activation': "
                "'softmax'}], 'cost': 'quadratic'}")


@pytest.mark.parametrize("spec, message", [
    ("abc", f"a network's spec is a dict {SPEC_EXAMPLE}; got 'abc'"),
    ({"layers": [{"size": 3, "activation": "softmax"}]}, f"the network's spec lacks input_size, cost: give a dict {SPEC_EXAMPLE}"),
    ({"input_size": 4, "layers": [{"size": 3}], "cost": "quadratic"},
     "a network spec's layers must be a list of dicts with a size and an activation, such as "
     "{'size': 10, 'activation': 'softmax'}; got [{'size': 3}]"),
    ({"input_size": 4, "layers": 3, "cost": "quadratic"}, "a network spec's layers must be a list of dicts"),
], ids=["not a dict", "missing parts", "layer without activation", "layers not a list"])
def test_from_spec_names_what_the_spec_lacks(spec, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):  # a KeyError or TypeError before
        Network.from_spec(spec)


def test_user_errors_in_nn_are_distnet_errors():
    bad = [lambda: Dense(0, "sigmoid"), lambda: LeakyReLU(1.5), lambda: GradientDescent(0.0),
           lambda: UpdateRule(GradientDescent(0.1), l2=1.0), lambda: activation_from_spec("swish"),
           lambda: cost_from_spec("hinge"), lambda: optimizer_from_spec("rmsprop")]
    for make in bad:
        with pytest.raises(DistnetError):
            make()


def test_predict_and_error_count_go_through_the_rows_a_batch_at_a_time():
    import tracemalloc

    net = Network([Dense(256, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=0, dtype=np.float32)
    rng = np.random.default_rng(1)
    X = rng.random((3000, 784), dtype=np.float32)
    labels = rng.integers(0, 10, 3000)
    expected = int(np.count_nonzero(net.predict(X).argmax(axis=1) != labels))
    assert 0 < expected < 3000
    assert [net.error_count(X, labels, batch_size=b) for b in (1, 7, 1000, 3000, 5000)] == [expected] * 5
    # float32: the products sum in another order for another number of rows
    np.testing.assert_allclose(net.predict(X, batch_size=7), net.predict(X, batch_size=5000), rtol=0, atol=2e-5)
    assert net.error_rate(X, labels) == expected / 3000

    def peak_bytes(batch_size):
        tracemalloc.start()
        try:
            net.error_count(X, labels, batch_size=batch_size)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    all_rows_layer = 3000 * 256 * 4
    assert peak_bytes(500) < all_rows_layer / 2  # one 500-row batch's outputs at a time
    assert peak_bytes(3000) > all_rows_layer  # the same measure sees all rows at once


def test_a_batch_size_beyond_the_rows_takes_room_for_the_rows_only():
    """batch_size bounds the rows computed at once; it is no size to allocate when the data is
    smaller (a petabyte of outputs for 5 rows would fail, or take the machine)."""
    net = Network([Dense(3, "sigmoid"), Dense(2, "softmax")], input_size=4, seed=0)
    X, labels = np.random.default_rng(0).random((5, 4)), [0, 1, 0, 1, 1]
    for huge in (10**15, 2**62):
        np.testing.assert_array_equal(net.predict(X, batch_size=huge), net.predict(X))
        assert net.error_count(X, labels, batch_size=huge) == net.error_count(X, labels)


def test_error_count_in_the_training_buffers_allocates_no_layer_sized_array():
    # How a gradient worker evaluates its part of the validation split between training steps:
    # in the arrays its steps keep, so that evaluation adds nothing to its peak memory.
    import tracemalloc

    net = Network([Dense(256, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=0, dtype=np.float32)
    rng = np.random.default_rng(2)
    X = rng.random((1001, 784), dtype=np.float32)  # 1001: the last batch is a part one
    labels = rng.integers(0, 10, len(X))
    Y = np.eye(10, dtype=np.float32)[labels[:128]]
    grad = np.empty_like(net.params)
    net.backprop(X[:128], Y, out=grad, reuse_buffers=True)  # a training step keeps 128-row buffers
    expected = net.error_count(X, labels)
    assert 0 < expected < len(X)
    tracemalloc.start()
    try:
        assert net.error_count(X, labels, batch_size=128, reuse_buffers=True) == expected
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 128 * 256 * 4 / 2
    # and the next training step computes what it would have without the evaluation between
    kept = net.backprop(X[:128], Y, out=grad, reuse_buffers=True)
    fresh = net.backprop(X[:128], Y)
    np.testing.assert_array_equal(kept[0], fresh[0])
    assert kept[1:] == fresh[1:]


def test_unscorable_rows_are_counted_over_every_batch():
    net = Network([Dense(3, "softmax")], input_size=4, seed=1)
    X = np.ones((10, 4))
    X[[1, 8], 0] = np.nan  # in the first batch of 4 rows and in the last (a part one)
    for reuse in (False, True):
        with np.errstate(invalid="ignore"), pytest.raises(
                ConfigError, match=r"^the network's outputs are NaN or infinite for 2 of the 10 samples"):
            net.error_count(X, np.zeros(10, int), batch_size=4, reuse_buffers=reuse)


def test_a_run_directory_stands_for_its_best_network(tmp_path):
    net = Network([Dense(3, "softmax")], input_size=4, seed=1)
    net.save(tmp_path / "run" / "best.npz")
    np.testing.assert_array_equal(Network.load(tmp_path / "run").params, net.params)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFormatError, match="empty is a folder without a best.npz; give a model file"):
        Network.load(tmp_path / "empty")


def test_targets_of_a_regression_given_as_a_vector_are_refused_saying_how_to_give_them():
    net = Network([Dense(4, "tanh"), Dense(1, "identity")], input_size=3, cost="mse", seed=1, dtype=np.float64)
    X, y = np.ones((10, 3)), np.arange(10.0)
    with pytest.raises(ConfigError, match=re.escape(
            "the targets must be one row of 1 values per sample (one-hot labels for classes, the target values for a "
            "regression), got data of shape (10,) for 10 samples (a single target per sample: as a column, "
            "Y[:, None])")):
        net.gradient(X, y)
    assert net.gradient(X, y[:, None]).shape == net.params.shape
    classifier = Network([Dense(4, "softmax")], input_size=3, seed=1, dtype=np.float64)
    with pytest.raises(ConfigError, match=re.escape(  # the column hint before, which failed next
            "got data of shape (10,) for 10 samples (class labels? as one-hot rows: np.eye(4)[labels], or a data "
            "set's .one_hot())")):
        classifier.gradient(X, np.arange(10) % 4)
    assert classifier.gradient(X, np.eye(4)[np.arange(10) % 4]).shape == classifier.params.shape


def test_a_saved_network_loads_from_any_bytes_like_object():
    net = Network([Dense(3, "softmax")], input_size=4, seed=1)
    data = net.to_npz_bytes()
    for given in (data, bytearray(data), memoryview(data)):  # a BytesIO's getbuffer(), shared memory
        np.testing.assert_array_equal(Network.from_npz_bytes(given).params, net.params)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_saved_network_with_nan_or_infinite_parameters_is_refused_on_load(tmp_path, bad):
    net = Network([Dense(3, "softmax")], input_size=4, seed=1)
    params = net.params.copy()
    params[[2, 5]] = bad  # as a training that diverged leaves them
    path = tmp_path / "diverged.npz"  # written by hand: save refuses such a network
    path.write_bytes(_npz_bytes(params=params, meta=_meta(net)))
    with pytest.raises(ModelFormatError, match=re.escape(
            f"{path}: 2 of its 15 parameters are NaN or infinite (a training that diverged leaves them so), so it "
            f"has no answers to give: load a network saved before the divergence")):
        Network.load(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_network_with_nan_or_infinite_parameters_is_not_saved_and_the_file_there_is_kept(tmp_path, bad):
    # save wrote it, over a good network's file, and load then refused it: both were lost.
    good = Network([Dense(3, "softmax")], input_size=4, seed=1)
    path = good.save(tmp_path / "best.npz")
    kept = path.read_bytes()
    diverged = good.copy()
    diverged.params[[2, 5]] = bad
    message = ("2 of the network's 15 parameters are NaN or infinite (a training that diverged leaves them so), and "
               "Network.load refuses such a file, so nothing was written: keep a network saved before the "
               "divergence, such as its run's best.npz, or train again")
    for write in (lambda: diverged.save(path), lambda: diverged.save(tmp_path / "new.npz"), diverged.to_npz_bytes):
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            write()
    diverged.params[5] = 0.5
    with pytest.raises(ConfigError, match=r"^1 of the network's 15 parameters is NaN or infinite \("):
        diverged.save(path)
    assert path.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["best.npz"]
