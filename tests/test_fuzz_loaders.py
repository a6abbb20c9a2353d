"""Property-based fuzzing of the model and checkpoint loaders: whatever bytes a file holds, loading
it either gives a valid object or raises ModelFormatError, never anything else, never unpickles,
and never needs much more memory than the file occupies.

(The IDX reader gets the same treatment in tests/test_idx.py.)
"""
from __future__ import annotations

import io
import json
import pickle
import re
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distnet import Dense, ModelFormatError, Network
from distnet.checkpoint import Checkpoint
from distnet.io import npz_bytes, parse_meta, read_npz
from distnet.step_stats import StepStats
from hostile import PicklePayload


class Unpickled(BaseException):
    """Raised by the patched pickle entry points; a BaseException so no ``except Exception`` in
    the code under test can swallow it."""


@pytest.fixture(autouse=True)
def pickle_forbidden(monkeypatch):
    """Any call into pickle fails the test (numpy's .npy reader calls pickle.load for object
    arrays when it is allowed to)."""
    def forbidden(*args, **kwargs):
        raise Unpickled("pickle was called")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)


NETWORK = Network([Dense(4, "leaky_relu"), Dense(3, "softmax")], input_size=6, seed=1)
MODEL = NETWORK.to_npz_bytes()


def checkpoint_bytes(tmp: Path) -> bytes:
    Checkpoint(epoch=2, step=5, params=NETWORK.params.copy(), optimizer_state={"velocity": np.ones(43, np.float32)},
               stopping_state={"window": 4, "errors": [0.5]}, history=[{"epoch": 1, "validation_error": 0.5}],
               config={"network": NETWORK.spec(), "seed": 1}, epoch_stats=StepStats.of_step(1.5, 3, 9)
               ).save(tmp / "seed.npz")
    return (tmp / "seed.npz").read_bytes()


def evil_bytes(marker: Path) -> bytes:
    """A model whose extra array is an object array: loading it with pickle allowed runs code."""
    buffer = io.BytesIO()
    with np.load(io.BytesIO(MODEL)) as npz:
        arrays = dict(npz)
    np.savez(buffer, **arrays, extra=np.array([PicklePayload(marker)], dtype=object))
    return buffer.getvalue()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """One of the seed files with bytes flipped, cut, inserted or appended."""
    content = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "truncate", "insert", "extend"]))
        position = draw(st.integers(0, len(content)))
        if action == "flip" and position < len(content):
            content[position] ^= draw(st.integers(1, 255))
        elif action == "truncate":
            del content[position:]
        elif action == "insert":
            content[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            content += draw(st.binary(min_size=1, max_size=32))
    return bytes(content)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**12) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


ACTIVATIONS = st.sampled_from([{"name": "sigmoid"}, {"name": "softmax"}, {"name": "leaky_relu", "alpha": 0.01},
                                "tanh", "relu", {"name": "leaky_relu", "alpha": "x"}, {"name": "swish"}, {}])
COSTS = st.sampled_from([{"name": "quadratic"}, {"name": "cross_entropy"}, "mse", {"name": "nope"}, {}])


@st.composite
def network_metadata(draw: st.DrawFn) -> bytes:
    """A well-formed .npz holding a plausible small network, often with one part of its metadata
    replaced by arbitrary JSON or removed, and parameters that may not fit."""
    sizes = draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    meta = {"format": "distnet.network", "version": 1, "input_size": sizes[0],
            "layers": [{"size": size, "activation": draw(ACTIVATIONS)} for size in sizes[1:]],
            "cost": draw(COSTS), "dtype": draw(st.sampled_from(["float32", "float64", "int8", "object"]))}
    for _ in range(draw(st.integers(0, 2))):
        layers = [layer for layer in meta.get("layers", []) if isinstance(layer, dict)] if isinstance(
            meta.get("layers"), list) else []
        where = draw(st.sampled_from([meta, *layers]))
        if where:
            key = draw(st.sampled_from(sorted(where)))
            if draw(st.booleans()):
                where[key] = draw(json_values)
            else:
                del where[key]
    count = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    params = np.zeros(draw(st.sampled_from([count, count, count - 1, 0])),
                      dtype=draw(st.sampled_from([np.float32, np.float32, np.float64, np.int16])))
    return npz_bytes({"params": params}, meta)


@st.composite
def checkpoint_metadata(draw: st.DrawFn) -> bytes:
    """A well-formed .npz whose checkpoint metadata is arbitrary."""
    meta = draw(st.fixed_dictionaries(
        {"format": st.just("distnet.checkpoint"), "version": st.just(1)},
        optional={"epoch": st.integers(-2, 5) | json_values, "step": st.integers(-2, 5) | json_values,
                  "stopping_state": json_values, "history": json_values, "epoch_stats": json_values,
                  "config": st.just({"network": NETWORK.spec()}) | json_values}))
    params = np.zeros(draw(st.sampled_from([0, 43, 44])), dtype=draw(st.sampled_from([np.float32, np.int8])))
    return npz_bytes({"params": params}, meta)


def loads_or_rejects_model(data: bytes) -> None:
    try:
        net = Network.from_npz_bytes(data, "fuzz.npz")
    except ModelFormatError as e:
        assert "fuzz.npz" in str(e)
    else:
        assert net.params.size == net.parameter_count and net.params.dtype in (np.float32, np.float64)


def loads_or_rejects_checkpoint(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        checkpoint = Checkpoint.load(path)
    except ModelFormatError as e:
        assert str(path) in str(e)
    else:
        assert checkpoint.params.ndim == 1 and checkpoint.epoch >= 0 and checkpoint.step >= 0
        assert isinstance(checkpoint.config, dict) and isinstance(checkpoint.history, list)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data())
def test_mutated_models_only_raise_model_format_error(tmp_path, data):
    marker = tmp_path / "pwned"
    loads_or_rejects_model(data.draw(mutated([MODEL, evil_bytes(marker)])))
    assert not marker.exists()


@FUZZ
@given(content=st.binary(max_size=200) | st.binary(max_size=200).map(lambda b: b"PK\x03\x04" + b))
def test_random_bytes_are_not_a_model(content):
    loads_or_rejects_model(content)


@FUZZ
@given(content=network_metadata())
def test_any_network_metadata_loads_or_is_refused(content):
    loads_or_rejects_model(content)


@FUZZ
@given(data=st.data())
def test_mutated_checkpoints_only_raise_model_format_error(tmp_path, data):
    marker = tmp_path / "pwned"
    content = data.draw(mutated([checkpoint_bytes(tmp_path), evil_bytes(marker)]))
    loads_or_rejects_checkpoint(tmp_path / "fuzz.npz", content)
    assert not marker.exists()


@FUZZ
@given(content=checkpoint_metadata())
def test_any_checkpoint_metadata_loads_or_is_refused(tmp_path, content):
    loads_or_rejects_checkpoint(tmp_path / "fuzz.npz", content)


@pytest.mark.parametrize("part,junk", [("cost", None), ("cost", [1]), ("layers", None), ("layers", {"size": 3})])
def test_metadata_with_a_part_of_the_wrong_type_is_refused(part, junk):
    """Found by the fuzzer above (a null cost spec once raised AttributeError); kept as examples."""
    meta = {**NETWORK.spec(), "format": "distnet.network", "version": 1, part: junk}
    with pytest.raises(ModelFormatError, match="junk.npz: the metadata does not describe a valid network"):
        Network.from_npz_bytes(npz_bytes({"params": NETWORK.params}, meta), "junk.npz")


def test_the_seeds_load_and_the_pickle_guard_works(tmp_path):
    """The controls: the unmutated seed files load, and the evil one really would run code
    through pickle, which the guard stops."""
    assert np.array_equal(Network.from_npz_bytes(MODEL).params, NETWORK.params)
    checkpoint_bytes(tmp_path)
    assert Checkpoint.load(tmp_path / "seed.npz").epoch == 2
    with pytest.raises(ModelFormatError, match="holds pickled objects, which distnet never loads"):
        Network.from_npz_bytes(evil_bytes(tmp_path / "pwned"))
    with pytest.raises(Unpickled), np.load(io.BytesIO(evil_bytes(tmp_path / "pwned")), allow_pickle=True) as npz:
        npz["extra"]
    assert not (tmp_path / "pwned").exists()


# -- hostile files: small on disk, huge when believed ------------------------------------------------

def peak_memory_of(load) -> tuple[int, str]:
    """The peak of traced allocations while ``load()`` raises ModelFormatError, and its message."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError) as caught:
            load()
        return tracemalloc.get_traced_memory()[1], str(caught.value)
    finally:
        tracemalloc.stop()


def test_metadata_claiming_a_huge_network_allocates_nothing_big():
    meta = {**NETWORK.spec(), "format": "distnet.network", "version": 1, "input_size": 200_000,
            "layers": [{"size": 100_000, "activation": "sigmoid"}]}  # 20 billion parameters
    data = npz_bytes({"params": NETWORK.params}, meta)
    peak, message = peak_memory_of(lambda: Network.from_npz_bytes(data, "claims.npz"))
    assert "claims.npz" in message and "layers [200000, 100000] need 20000100000" in message
    assert peak < 1 << 20


def test_a_zip_bomb_is_refused_before_it_inflates():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in (("meta", np.frombuffer(b"{}", np.uint8)), ("params", np.zeros(100_000_000, np.uint8))):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array)
    data = buffer.getvalue()
    assert len(data) < 1 << 20  # 100 MB of zeros in a few hundred kB
    peak, message = peak_memory_of(lambda: Network.from_npz_bytes(data, "bomb.npz"))
    assert "bomb.npz: its arrays claim 1000002" in message
    assert f"more than the {len(data)} bytes of the file; distnet writes uncompressed .npz files" in message
    assert peak < 4 << 20


def test_a_checkpoint_whose_parameters_do_not_fit_its_network_is_refused(tmp_path):
    Checkpoint(epoch=1, step=0, params=np.zeros(5, np.float32), optimizer_state={}, stopping_state=None,
               history=[], config={"network": NETWORK.spec()}).save(tmp_path / "c.npz")
    with pytest.raises(ModelFormatError, match="holds 5 parameters, but the network of its configuration has 43"):
        Checkpoint.load(tmp_path / "c.npz")


def test_metadata_nested_too_deep_for_json_is_refused():
    buffer = io.BytesIO()
    np.savez(buffer, params=NETWORK.params, meta=np.frombuffer(b"[" * 100_000 + b"]" * 100_000, np.uint8))
    with pytest.raises(ModelFormatError, match="deep.npz: its metadata is not valid JSON"):
        Network.from_npz_bytes(buffer.getvalue(), "deep.npz")


def test_an_error_of_distnet_s_own_reading_an_npz_is_not_taken_for_a_damaged_file(monkeypatch):
    """Every exception was "truncated or corrupt?" before, a bug in the reading included."""
    from distnet import io as distnet_io

    def buggy(archive, size, name):
        raise TypeError("a bug")

    monkeypatch.setattr(distnet_io, "_check_members", buggy)
    with pytest.raises(TypeError, match="a bug"):
        Network.from_npz_bytes(MODEL)


def _zip_of(members: list[tuple[str, np.ndarray]], compression: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, array in members:
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, array)
    return buffer.getvalue()


def test_an_archive_claiming_a_few_times_its_size_is_refused_as_well():
    """Not only a bomb of a thousand to one: 3 kB of zeros in a file of a few hundred bytes."""
    data = _zip_of([("meta", np.frombuffer(b"{}", np.uint8)), ("params", np.zeros(3000, np.uint8))],
                   zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelFormatError, match=rf"x.npz: its arrays claim \d+ bytes uncompressed, more than the "
                                               rf"{len(data)} bytes of the file"):
        read_npz(data, "x.npz", ("meta",))


def _with_params_header_claiming(data: bytes, values: int) -> bytes:
    """``data`` (an .npz) with its params array's header changed to claim ``values`` values, the
    header's length and the archive's CRCs kept right: damage that zipfile cannot see."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as archive:
        for member in source.infolist():
            raw = source.read(member)
            if member.filename == "params.npy":
                shape = re.search(rb"'shape': \((\d+),\)", raw)
                claim = str(values).encode()
                padding = len(shape.group(1)) - len(claim)
                raw = raw[:shape.start(1)] + claim + raw[shape.end(1):raw.index(b"\n")].replace(
                    b" " * -padding, b"", 1) + b" " * max(padding, 0) + raw[raw.index(b"\n"):]
            archive.writestr(member, raw)
    return buffer.getvalue()


def test_an_array_header_claiming_more_than_its_member_holds_is_refused_before_numpy_allocates_it(tmp_path):
    """One damaged digit of a shape asked NumPy for 3.6 TiB: MemoryError, 'out of memory' from
    the CLI, and a resume never fell back to checkpoint.prev.npz (found by an audit)."""
    data = _with_params_header_claiming(MODEL, 10**12)
    sizes = [{m.filename: m.file_size for m in zipfile.ZipFile(io.BytesIO(npz)).infolist()} for npz in (data, MODEL)]
    assert sizes[0] == sizes[1] and zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    peak, message = peak_memory_of(lambda: Network.from_npz_bytes(data, "huge.npz"))
    assert message == ("huge.npz: its params array claims shape (1000000000000,) (4000000000000 bytes), more than "
                       "the 300 bytes it holds; the file is damaged")
    assert peak < 1 << 20
    (tmp_path / "huge.npz").write_bytes(data)  # read from a path, array by array, the same
    with pytest.raises(ModelFormatError, match=re.escape(message.replace("huge.npz", str(tmp_path / "huge.npz")))):
        Network.load(tmp_path / "huge.npz")
    assert Network.from_npz_bytes(_with_params_header_claiming(MODEL, NETWORK.params.size)).sizes == NETWORK.sizes


def test_an_archive_of_another_compression_is_refused_by_name():
    data = _zip_of([("meta", np.frombuffer(b"{}", np.uint8))], zipfile.ZIP_BZIP2)
    with pytest.raises(ModelFormatError, match="x.npz: meta.npy uses a compression distnet does not read"):
        read_npz(data, "x.npz", ("meta",))


def test_a_file_smaller_than_any_zip_is_said_to_be_truncated():
    with pytest.raises(ModelFormatError, match="x.npz: only 10 bytes; the file is truncated or empty"):
        read_npz(b"PK\x03\x04" + bytes(6), "x.npz", ("meta",))


def test_metadata_of_the_next_format_version_asks_for_a_newer_distnet():
    raw = np.frombuffer(json.dumps({"format": "distnet.network", "version": 2}).encode(), np.uint8)
    with pytest.raises(ModelFormatError, match=r"x.npz: written by a newer distnet \(format version 2\); upgrade"):
        parse_meta(raw, "x.npz", "distnet.network", 1)
    assert parse_meta(raw, "x.npz", "distnet.network", 2)["version"] == 2
