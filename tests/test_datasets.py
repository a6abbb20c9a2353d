"""Dataset objects, finding and loading MNIST-style files, downloading them, and the real data."""

from __future__ import annotations

import contextlib
import copy
import errno
import functools
import logging
import os
import pickle
import re
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from distnet import Dense, Network, Softmax
from distnet.cli import main
from distnet.data import Dataset, Digit, Splits, load_dataset, load_fashion_mnist, load_mnist
from distnet.data import datasets, download, load_test_set, write_idx
from distnet.data.download import fetch, sha256_of
from distnet.errors import ChecksumError, ConfigError, DataFormatError, DataNotFoundError, FolderNotWritableError

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def make_files(
    folder: Path, n_train: int = 30, n_test: int = 7, *, gz: bool = False
) -> dict[str, np.ndarray]:
    """Write small fake data set files; training image i has the value i in its first pixel."""
    rng = np.random.default_rng(n_train)
    train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    train[:, 0, 0] = np.arange(n_train)
    arrays = {
        FILES[0]: train,
        FILES[1]: rng.integers(0, 10, size=n_train, dtype=np.uint8),
        FILES[2]: rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        FILES[3]: rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for base, array in arrays.items():
        write_idx(folder / (base + ".gz" if gz else base), array)
    return arrays


def original_indices(split: Dataset) -> np.ndarray:
    """Which training-file samples a split of :func:`make_files` data holds, in its order."""
    return np.rint(split.images[:, 0] * 255).astype(int)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No configured data folder or mirrors, no proxies, and a fresh cache; returns the cache."""
    monkeypatch.delenv("DISTNET_DATA_DIR", raising=False)
    monkeypatch.delenv("DISTNET_MIRRORS", raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "distnet"


# --- Dataset -----------------------------------------------------------------------------------


def small_dataset(n: int = 6) -> Dataset:
    images = np.linspace(0, 1, n * 784, dtype=np.float32).reshape(n, 784)
    return Dataset(images, np.arange(n) % 10, "small")


def test_dataset_basics() -> None:
    data = small_dataset()
    assert len(data) == 6
    assert data.labels.dtype == np.int64 and data.images.dtype == np.float32
    assert data.classes == tuple("0123456789")
    digit = data[-1]
    assert isinstance(digit, Digit) and digit.label == 5 and digit.class_name == "5"
    np.testing.assert_array_equal(digit.pixels, data.images[5])
    assert [d.label for d in data] == [0, 1, 2, 3, 4, 5]
    assert repr(data) == "Dataset(name='small', samples=6, dtype=float32, classes=10)"


def test_dataset_indexing_errors() -> None:
    data = small_dataset()
    with pytest.raises(IndexError):
        data[6]
    with pytest.raises(TypeError, match="use subset"):
        data[1:3]  # type: ignore[index]


def test_dataset_arrays_are_read_only() -> None:
    images = np.zeros((2, 784), dtype=np.float32)
    data = Dataset(images, [1, 2])
    with pytest.raises(ValueError, match="read-only"):
        data.images[0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        data.labels[0] = 3
    images[0, 0] = 0.5  # the caller's own array stays writable
    assert data.images[0, 0] == 0.5


def test_a_pickled_or_deep_copied_dataset_keeps_its_arrays_read_only() -> None:
    """They came back writable (unpickling skipped __post_init__), as Ray ships data sets."""
    data = Dataset(np.full((2, 3), 0.25), [0, 2], name="mine", classes=("a", "b", "c"))
    for copied in (pickle.loads(pickle.dumps(data)), copy.deepcopy(data)):
        assert not copied.images.flags.writeable and not copied.labels.flags.writeable
        assert (copied.name, copied.classes, copied.labels.tolist()) == ("mine", ("a", "b", "c"), [0, 2])
        np.testing.assert_array_equal(copied.images, data.images)


def test_one_hot() -> None:
    data = Dataset(np.zeros((3, 784), dtype=np.float32), [2, 0, 9])
    encoded = data.one_hot()
    assert encoded.dtype == np.float32 and encoded.shape == (3, 10)
    np.testing.assert_array_equal(encoded.argmax(axis=1), [2, 0, 9])
    np.testing.assert_array_equal(encoded.sum(axis=1), [1, 1, 1])
    assert data.one_hot(np.float64).dtype == np.float64


def test_subset() -> None:
    data = small_dataset()
    np.testing.assert_array_equal(data.subset(slice(1, 3)).labels, [1, 2])
    np.testing.assert_array_equal(data.subset([4, 0, 4]).labels, [4, 0, 4])
    np.testing.assert_array_equal(data.subset(data.labels % 2 == 1).labels, [1, 3, 5])
    empty = data.subset([])
    assert len(empty) == 0 and empty.images.shape == (0, 784)
    assert data.subset([3]).name == "small"
    np.testing.assert_array_equal(data.subset([-6, -1]).labels, [0, 5])


TAKES = "small: subset() takes a slice, integer indices or a boolean mask of 6 values, one per sample, got "


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        (3, TAKES + "the one index 3; dataset[i] gives one sample"),
        ([[1, 2]], TAKES + "an array of shape (1, 2)"),
        ([True, False], TAKES + "a mask of 2 values"),
        ([1.0, 2.0], TAKES + "float64 values"),
        ([6], "small: index 6 is outside its 6 samples, numbered 0..5 (-6..-1 from the end)"),
        ([0, -7], "small: index -7 is outside its 6 samples, numbered 0..5 (-6..-1 from the end)"),
    ],
)
def test_subset_says_what_it_takes(indices: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        small_dataset().subset(indices)  # type: ignore[arg-type]


def test_astype() -> None:
    wide = small_dataset().astype(np.float64)
    assert wide.images.dtype == np.float64
    np.testing.assert_array_equal(wide.images, small_dataset().images)
    same = small_dataset()
    assert np.shares_memory(same.astype(np.float32).images, same.images)  # not a copy when already float32
    assert not np.shares_memory(same.astype(np.float64).images, same.images)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((3, 784), np.float32), [1, 2], "small: 3 images but 2 labels"),
        (np.zeros((2, 784), np.float32), [1, 10], r"small: label 10 is outside 0..9; for classes of your own, give "
                                                   r"their names: Dataset\(images, labels, classes=\[...\]\)$"),
        (np.zeros((2, 784), np.float32), [-1, 0], "small: label -1 is outside 0..9$"),
        (np.zeros((2, 28, 28), np.float32), [1, 2], r"2-D array, one row of values per sample \(such as \(n, "
                                                    r"784\) for 28x28 images: images.reshape\(n, 784\)\), got "
                                                    r"shape \(2, 28, 28\)"),
        (np.zeros((2, 0), np.float32), [1, 2], r"got shape \(2, 0\)"),
        (np.zeros((2, 784), np.uint8), [1, 2], r"floating-point values, got uint8 \(image bytes: "
                                               r"images.astype\(np.float32\) / 255, as MNIST's are scaled; other "
                                               r"numbers: images.astype\(np.float32\)\)"),
        (np.zeros((2, 784), np.float32), [1.0, 2.0], r"1-D array of integer class indices, got float64 data of "
                                                     r"shape \(2,\) \(whole numbers as floats\? labels.astype\(int\)\)$"),
        (np.zeros((2, 784), np.float32), [1.5, 2.0], r"1-D array of integer class indices, got float64 data of "
                                                     r"shape \(2,\)$"),
        (np.zeros((2, 784), np.float32), np.eye(10)[[1, 2]], r"got float64 data of shape \(2, 10\) \(one-hot rows\? "
                                                             r"pass their argmax\(axis=1\)\)"),
        (np.zeros((2, 784), np.float32), [[1], [2]], r"got int64 data of shape \(2, 1\) \(one label per row in a "
                                                     r"column\? pass labels.ravel\(\)\)$"),
        (np.zeros((2, 784), np.float32), [[1.0], [2.0]], r"\(one label per row in a column\? pass "
                                                         r"labels.ravel\(\).astype\(int\)\)$"),
        (np.zeros((2, 784), np.float32), [[0.2, 0.8], [1.0, 0.0]], r"got float64 data of shape \(2, 2\) \(training "
                                                                   r"and error rates take one class label per row; "
                                                                   r"other targets, such as regression, train with "
                                                                   r"Trainer.step\(X, Y\)\)$"),
    ],
)
def test_dataset_validation(images: np.ndarray, labels: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Dataset(images, np.asarray(labels), "small")


def test_classes_given_as_a_number_are_named_by_label() -> None:
    data = Dataset(np.zeros((2, 3), np.float32), [2, 0], classes=3)
    assert data.classes == ("0", "1", "2")
    assert Dataset(np.zeros((0, 3), np.float32), [], classes=np.int64(0)).classes == ()
    with pytest.raises(ConfigError, match="^small: label 3 is outside 0..2$"):
        Dataset(np.zeros((1, 3), np.float32), [3], "small", classes=3)
    assert Dataset(np.zeros((2, 3), np.float32), [1, 0], classes=[0, 1]).classes == ("0", "1")  # names, as text


@pytest.mark.parametrize("classes", ["cat", -1, True, 2.5, None])
def test_classes_must_be_names_or_a_number(classes: object) -> None:
    with pytest.raises(ConfigError, match=re.escape(
            f"small: classes must be the class names in label order, such as classes=('cat', 'dog', 'bird'), "
            f"or how many there are, got {classes!r}")):
        Dataset(np.zeros((1, 3), np.float32), [0], "small", classes=classes)  # type: ignore[arg-type]


def test_fashion_classes_name_the_digit() -> None:
    data = Dataset(np.zeros((1, 784), np.float32), [9], classes=datasets.FASHION_CLASSES)
    assert str(data[0]).startswith("label 9 (Ankle boot)\n")


# --- finding and loading files -----------------------------------------------------------------


def test_loads_files_from_data_dir(env: Path, tmp_path: Path) -> None:
    arrays = make_files(tmp_path / "mine")
    splits = load_mnist(tmp_path / "mine", download=False, validation=10)
    assert isinstance(splits, Splits)
    assert [len(s) for s in splits] == [20, 10, 7]
    assert [s.name for s in splits] == ["mnist/train", "mnist/validation", "mnist/test"]
    np.testing.assert_array_equal(splits.test.labels, arrays[FILES[3]])
    np.testing.assert_array_equal(
        splits.test.images, arrays[FILES[2]].reshape(7, 784).astype(np.float32) / 255
    )
    assert splits.train.images.dtype == np.float32 and splits.train.labels.dtype == np.int64
    assert not splits.train.images.flags.writeable


def test_pixels_are_divided_in_the_dtype_asked_for(env: Path, tmp_path: Path) -> None:
    arrays = make_files(tmp_path / "mine")
    splits = load_mnist(tmp_path / "mine", download=False, validation=10, dtype=np.float64)
    # The original's byte / 255.0 in double precision, not float32 quotients widened.
    expected = arrays[FILES[2]].reshape(7, 784) / 255.0
    np.testing.assert_array_equal(splits.test.images, expected)
    assert not np.array_equal(expected.astype(np.float32).astype(np.float64), expected)
    assert {s.images.dtype for s in splits} == {np.dtype(np.float64)}
    for wrong, shown in ((np.uint8, "<class 'numpy.uint8'>"), ("bogus", "'bogus'"), (None, "None")):
        with pytest.raises(ConfigError, match=f"dtype must be a floating-point type such as float32 or float64, "
                                              f"got {re.escape(shown)}"):
            load_mnist(tmp_path / "mine", download=False, validation=10, dtype=wrong)


def test_validation_split_is_seeded_disjoint_and_in_file_order(env: Path, tmp_path: Path) -> None:
    arrays = make_files(tmp_path / "mine")
    first = load_mnist(tmp_path / "mine", download=False, validation=12, seed=7)
    again = load_mnist(tmp_path / "mine", download=False, validation=12, seed=7)
    other = load_mnist(tmp_path / "mine", download=False, validation=12, seed=8)
    train, held_out = original_indices(first.train), original_indices(first.validation)
    np.testing.assert_array_equal(train, original_indices(again.train))
    assert not np.array_equal(held_out, original_indices(other.validation))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(held_out) > 0)
    assert sorted([*train, *held_out]) == list(range(30))
    np.testing.assert_array_equal(first.train.labels, arrays[FILES[1]][train])
    # The documented rule: the first `validation` entries of the seed's permutation.
    expected = np.sort(np.random.default_rng(7).permutation(30)[:12])
    np.testing.assert_array_equal(held_out, expected)


def test_validation_zero_gives_an_empty_set(env: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "mine")
    splits = load_mnist(tmp_path / "mine", download=False, validation=0)
    np.testing.assert_array_equal(original_indices(splits.train), np.arange(30))
    assert len(splits.validation) == 0 and splits.validation.images.shape == (0, 784)


@pytest.mark.parametrize(
    ("validation", "message"),
    [
        (30, r"^the training file has 30 samples, too few to hold 30 out for validation \(what early stopping "
             r"judges by\) and train on the rest: give a training file of more than 30 samples, or hold out fewer "
             r"\(distnet train --validation N; load_dataset\(..., validation=N\) in Python\)$"),
        (-1, "validation must be a whole number of samples, not negative, got -1"),
        (True, "whole number of samples, not negative, got True"),
        (0.5, "whole number of samples, not negative, got 0.5"),
    ],
)
def test_bad_validation_size(env: Path, tmp_path: Path, validation: object, message: str) -> None:
    make_files(tmp_path / "mine")
    with pytest.raises(ConfigError, match=message):
        load_mnist(tmp_path / "mine", download=False, validation=validation)  # type: ignore


@pytest.mark.parametrize("seed", ["a", -1, None, True, 1.5])
def test_bad_split_seed(env: Path, tmp_path: Path, seed: object) -> None:
    make_files(tmp_path / "mine")
    with pytest.raises(ConfigError, match=re.escape(
            f"seed must be a whole number >= 0 such as 0, the default: it picks the validation samples, and each "
            f"load must pick the same, got {seed!r}")):
        load_mnist(tmp_path / "mine", download=False, validation=10, seed=seed)  # type: ignore[arg-type]


def test_unknown_data_set_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match="unknown data set 'cifar'; choose one of: mnist, fashion-mnist"
    ):
        load_dataset("cifar")


def test_lookup_order(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_files(tmp_path / "given" / "mnist", n_train=21)
    make_files(tmp_path / "shared" / "mnist", n_train=22)
    make_files(env / "mnist", n_train=23)
    monkeypatch.setenv("DISTNET_DATA_DIR", str(tmp_path / "shared"))

    def train_size(data_dir: Path | None) -> int:
        return len(load_mnist(data_dir, download=False, validation=1).train) + 1

    assert train_size(tmp_path / "given") == 21  # data_dir/<name>
    assert train_size(tmp_path / "given" / "mnist") == 21  # data_dir itself
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match=rf"^{tmp_path / 'empty'} does not hold the four MNIST files; "
                                         rf"using those in {tmp_path / 'shared' / 'mnist'}$"):
        assert train_size(tmp_path / "empty") == 22  # then $DISTNET_DATA_DIR/<name>, said aloud
    assert train_size(None) == 22
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DISTNET_DATA_DIR", "~/shared")  # as a Ray job gets it: no shell expands it
    assert train_size(None) == 22
    monkeypatch.delenv("DISTNET_DATA_DIR")
    assert train_size(None) == 23  # then the cache


def test_the_data_folder_itself_comes_before_its_data_set_subfolder(env: Path, tmp_path: Path) -> None:
    """The module's order: data_dir, then data_dir/<name>; where both hold the files, data_dir's are read."""
    make_files(tmp_path / "given", n_train=24)
    make_files(tmp_path / "given" / "mnist", n_train=21)
    assert len(load_mnist(tmp_path / "given", download=False, validation=1).train) == 23
    assert len(load_test_set("mnist", tmp_path / "given", download=False)) == 7


@pytest.mark.parametrize("mistake", ["typo", "the mnist folder itself, for fashion-mnist", "lacks the files", "a file",
                                     "unknown user"])
def test_a_wrong_shared_data_dir_is_said_not_passed_over(
    mistake: str, env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_files(env / "mnist", n_train=23)
    make_files(env / "fashion-mnist", n_train=23)
    shared = {"typo": tmp_path / "dta", "the mnist folder itself, for fashion-mnist": tmp_path / "data" / "mnist",
              "lacks the files": tmp_path / "data", "a file": tmp_path / "data" / "notes.txt",
              "unknown user": Path("~no-such-user-here/data")}[mistake]  # a job's, from another machine
    if mistake not in ("typo", "unknown user"):
        make_files(tmp_path / "data" / "mnist")
        (tmp_path / "data" / "mnist" / FILES[0]).unlink()
        if mistake == "the mnist folder itself, for fashion-mnist":
            make_files(shared)
        if mistake == "a file":
            shared.write_text("")
    monkeypatch.setenv("DISTNET_DATA_DIR", str(shared))
    why = {"typo": "a folder that does not exist",
           "the mnist folder itself, for fashion-mnist": "which holds data files itself: it names the folder above "
                                                         f"mnist/ and fashion-mnist/, here perhaps {tmp_path / 'data'}",
           "lacks the files": f"but {shared / 'fashion-mnist'} does not hold the four Fashion-MNIST files",
           "a file": "a file, not a folder", "unknown user": "a folder that does not exist"}[mistake]
    with pytest.warns(UserWarning) as caught:
        assert len(load_fashion_mnist(download=False, validation=1).train) == 22  # the cache's
    assert [str(w.message) for w in caught] == [f"$DISTNET_DATA_DIR is {shared}, {why}; "
                                                f"using those in {env / 'fashion-mnist'}"]
    assert [w.filename for w in caught] == [__file__]  # the user's line that led to it, not distnet's


def test_a_shared_data_dir_that_names_the_data_set_s_own_folder_is_used_with_a_warning(
        env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its files were passed over for a download, said only in a warning (a new user's walkthrough)."""
    make_files(env / "mnist", n_train=23)
    make_files(tmp_path / "data" / "mnist")
    monkeypatch.setenv("DISTNET_DATA_DIR", str(tmp_path / "data" / "mnist"))
    with pytest.warns(UserWarning) as caught:
        assert len(load_mnist(download=False, validation=1).train) == 29  # its own, not the cache's 22
    assert [str(w.message) for w in caught] == [
        f"$DISTNET_DATA_DIR is {tmp_path / 'data' / 'mnist'}, the MNIST folder itself; using the files in it (it "
        f"names the folder above mnist/ and the other data sets' folders, here {tmp_path / 'data'})"]


def test_files_in_the_data_folder_s_data_set_subfolder_get_no_warning(env: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "mine" / "mnist")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_test_set("mnist", data_dir=tmp_path / "mine", download=False)) == 7


def test_the_compressed_file_is_preferred_and_checked_where_both_forms_are_there(env: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "mine")
    (tmp_path / "mine" / f"{FILES[2]}.gz").write_bytes(b"\x1f\x8b not the published file")
    with pytest.raises(ChecksumError):  # the plain file beside it is not checked, so it must not be used
        load_test_set("mnist", data_dir=tmp_path / "mine", download=False)


def test_a_relative_xdg_cache_home_is_ignored_as_the_spec_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert datasets._cache_dir("mnist") == Path.home() / ".cache" / "distnet" / "mnist"


def test_empty_entries_of_the_mirrors_variable_are_no_mirrors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTNET_MIRRORS", "https://a/{name}/, ,https://b/,")
    assert datasets._mirrors("mnist") == ["https://a/mnist/", "https://b/"]


def test_a_data_folder_that_does_not_exist_is_an_error_not_passed_over(env: Path, tmp_path: Path) -> None:
    make_files(env / "mnist")
    with pytest.raises(DataNotFoundError, match=f"^the data folder {tmp_path / 'typo'} does not exist; give"):
        load_mnist(tmp_path / "typo", validation=5)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(DataNotFoundError, match=f"^the data folder {tmp_path / 'a-file'} is a file, not a folder"):
        load_mnist(tmp_path / "a-file", validation=5)


def test_a_data_folder_under_home_is_found_by_tilde(env: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    make_files(tmp_path / "mine")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert len(load_mnist("~/mine", download=False, validation=10).train) == 20
    assert len(datasets.load_test_set("mnist", "~/mine", download=False)) == 7
    with pytest.raises(DataNotFoundError, match=f"^the data folder {tmp_path / 'typo'} does not exist; give"):
        load_mnist("~/typo", validation=5)


def test_load_dataset_by_name_and_fashion_classes(env: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "fashion-mnist")
    splits = load_dataset("fashion-mnist", tmp_path, download=False, validation=5)
    assert splits.test.classes == datasets.FASHION_CLASSES
    assert splits.train.name == "fashion-mnist/train"
    same = load_fashion_mnist(tmp_path, download=False, validation=5)
    np.testing.assert_array_equal(same.train.labels, splits.train.labels)


def test_nothing_found_offline_says_where_it_looked(env: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError) as caught:
        load_mnist(tmp_path / "empty", download=False)
    message = str(caught.value)
    assert message.startswith("MNIST not found. Looked for train-images-idx3-ubyte[.gz],")
    for place in (tmp_path / "empty", tmp_path / "empty" / "mnist", env / "mnist"):
        assert f"\n  {place}\n" in message
    assert "Downloading is turned off (download=False, --no-download)." in message
    assert message.endswith(f"To fix: put the four files in {tmp_path / 'empty'}, or give --data-dir (data_dir= in Python) "
                            f"another folder, or set DISTNET_DATA_DIR to a folder with mnist/ and fashion-mnist/ "
                            f"subfolders (DISTNET_DATA_DIR is not set).")
    monkeypatch.setenv("DISTNET_DATA_DIR", "")  # as an empty assignment leaves it; "is not set" before
    with pytest.raises(DataNotFoundError, match=r"\(DISTNET_DATA_DIR is set but empty\)\.$"):
        load_mnist(tmp_path / "empty", download=False)


def test_nothing_found_offline_says_what_is_wrong_with_the_shared_data_dir(env: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Such a $DISTNET_DATA_DIR was said in a warning only where the files were then found or downloaded."""
    make_files(tmp_path / "data" / "mnist")
    monkeypatch.setenv("DISTNET_DATA_DIR", str(tmp_path / "data" / "mnist"))
    with pytest.raises(DataNotFoundError) as caught:
        load_fashion_mnist(download=False)  # (MNIST's own would be found there)
    assert str(caught.value).endswith(
        f"To fix: put the four files in {env / 'fashion-mnist'}, or pass --data-dir (data_dir= in Python), or set "
        f"DISTNET_DATA_DIR to "
        f"a folder with mnist/ and fashion-mnist/ subfolders ($DISTNET_DATA_DIR is {tmp_path / 'data' / 'mnist'}, "
        f"which holds data files itself: it names the folder above mnist/ and fashion-mnist/, here perhaps "
        f"{tmp_path / 'data'}).")


def test_an_incomplete_folder_is_skipped(env: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "mine")
    (tmp_path / "mine" / FILES[3]).unlink()
    with pytest.raises(DataNotFoundError, match="MNIST not found"):
        load_mnist(tmp_path / "mine", download=False)


def test_local_gz_files_are_checked_against_the_published_sums(env: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "mine", gz=True)
    with pytest.raises(ChecksumError) as caught:
        load_mnist(tmp_path / "mine", download=False, validation=1)
    message = str(caught.value)
    assert f"{(tmp_path / 'mine' / FILES[0]).resolve()}.gz: SHA-256 is " in message
    assert datasets.CHECKSUMS["mnist"][FILES[0] + ".gz"] in message
    assert message.endswith("the file is damaged or not the original. Replace it with the original.")  # no download


def test_the_files_of_the_other_data_set_are_named_as_such_not_called_damaged(env: Path, tmp_path: Path,
                                                                             monkeypatch) -> None:
    make_files(tmp_path / "mine", gz=True)
    for name in FILES:  # as if these were Fashion-MNIST's published files
        monkeypatch.setitem(datasets.CHECKSUMS["fashion-mnist"], name + ".gz",
                            sha256_of(tmp_path / "mine" / (name + ".gz")))
    with pytest.raises(ChecksumError) as caught:
        load_mnist(tmp_path / "mine", download=False, validation=1)
    assert str(caught.value) == (
        f"{(tmp_path / 'mine' / FILES[0]).resolve()}.gz is Fashion-MNIST's {FILES[0]}.gz, not MNIST's: its folder "
        f"holds the Fashion-MNIST files; use them with --dataset fashion-mnist (load_dataset('fashion-mnist') in "
        f"Python), or give the folder that holds the MNIST files")


def test_uncompressed_files_are_not_checked(env: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "mine", gz=False)
    assert len(load_mnist(tmp_path / "mine", download=False, validation=1).test) == 7


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {FILES[1]: np.zeros(29, np.uint8)},
            "holds 30 images but .*train-labels-idx1-ubyte holds 29",
        ),
        (
            {FILES[2]: np.zeros((7, 28, 27), np.uint8)},
            "t10k-images-idx3-ubyte: expected 28x28 images",
        ),
        (
            {FILES[3]: np.zeros((7, 1), np.uint8)},
            "t10k-labels-idx1-ubyte: expected a vector of labels",
        ),
        ({FILES[3]: np.full(7, 10, np.uint8)}, "t10k-labels-idx1-ubyte: label 10 is outside 0..9"),
    ],
)
def test_files_that_do_not_fit_together(
    env: Path, tmp_path: Path, change: dict, message: str
) -> None:
    make_files(tmp_path / "mine")
    for base, array in change.items():
        write_idx(tmp_path / "mine" / base, array)
    with pytest.raises(DataFormatError, match=message):
        load_mnist(tmp_path / "mine", download=False, validation=1)


def test_the_test_set_alone_needs_and_reads_only_the_two_test_files(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distnet.data import load_test_set

    arrays = make_files(tmp_path / "all")
    (tmp_path / "test").mkdir()
    for base in FILES[2:]:
        shutil.copy(tmp_path / "all" / base, tmp_path / "test")
    reads = []
    real_read_idx = datasets.read_idx
    monkeypatch.setattr(datasets, "read_idx", lambda path, *shape: reads.append(Path(path).name) or real_read_idx(path, *shape))
    test = load_test_set("mnist", tmp_path / "test", download=False, dtype=np.float64)
    assert reads == list(FILES[2:])
    whole = load_mnist(tmp_path / "all", download=False, validation=3, dtype=np.float64).test
    assert (test.name, test.classes, test.images.dtype) == (whole.name, whole.classes, np.float64)
    np.testing.assert_array_equal(test.images, whole.images)
    np.testing.assert_array_equal(test.labels, arrays[FILES[3]])
    with pytest.raises(DataNotFoundError, match=r"(?s)test lacks train-images.*put the four files in"):
        load_mnist(tmp_path / "test", download=False)


def test_files_are_read_once_per_process(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_files(tmp_path / "mine")
    reads = []
    real_read_idx = datasets.read_idx

    def counting_read_idx(path: str, *shape: object) -> np.ndarray:
        reads.append(path)
        return real_read_idx(path, *shape)

    monkeypatch.setattr(datasets, "read_idx", counting_read_idx)
    first = load_mnist(tmp_path / "mine", download=False, validation=3)
    second = load_mnist(tmp_path / "mine", download=False, validation=3)
    assert len(reads) == 4
    np.testing.assert_array_equal(first.train.images, second.train.images)
    make_files(tmp_path / "mine", n_train=31)  # new content, new modification time
    assert len(load_mnist(tmp_path / "mine", download=False, validation=3).train) == 28
    assert len(reads) == 8


# --- downloading -------------------------------------------------------------------------------


class _Handler(SimpleHTTPRequestHandler):
    """Serves files. Under /broken/ it promises the size of the file in mnist/ and sends 10 bytes;
    under /bloated/ it offers a byte more; under /endless/ it sends zeros without a Content-Length;
    under /trickle/ it promises the size and sends a byte every 0.05 s; under /slowing/ it sends all
    but 100 bytes at once, then a byte every 0.05 s; under /vanish/ it sends the file, but before its
    last byte removes the download's temporary files in ``vanish_from`` (as another process cleaning
    up would); under /page/ it sends a short HTML page without a Content-Length; under /loop/ it
    redirects to itself."""

    vanish_from: Path | None = None

    def do_GET(self) -> None:
        kind, _, name = self.path.strip("/").partition("/")
        if kind == "loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.end_headers()
            return
        if kind == "page":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>Please log in</body></html>")
            return
        if kind not in ("broken", "bloated", "endless", "trickle", "slowing", "vanish"):
            return super().do_GET()
        content = (Path(self.directory) / "mnist" / name).read_bytes()
        size = len(content)
        self.send_response(200)
        if kind != "endless":
            self.send_header("Content-Length", str(size + (kind == "bloated")))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client gives up first
            if kind == "broken":
                self.wfile.write(bytes(10))
            elif kind == "endless":
                for _ in range(64):
                    self.wfile.write(bytes(1 << 16))
            elif kind == "trickle":
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            elif kind == "slowing":
                self.wfile.write(content[:-100])
                for byte in content[-100:]:
                    self.wfile.flush()
                    time.sleep(0.05)
                    self.wfile.write(bytes([byte]))
            elif kind == "vanish":
                self.wfile.write(content[:-1])
                self.wfile.flush()
                time.sleep(0.2)
                for temporary in self.vanish_from.glob(f".{name}.*.tmp"):
                    temporary.unlink()
                self.wfile.write(content[-1:])

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: Path) -> Iterator[str]:
    """A local HTTP server with fake .gz files in mnist/; their sums are made the published ones."""
    root = tmp_path / "www"
    make_files(root / "mnist", gz=True)
    sums = {f"{base}.gz": sha256_of(root / "mnist" / f"{base}.gz") for base in FILES}
    monkeypatch.setitem(datasets.CHECKSUMS, "mnist", sums)
    monkeypatch.setitem(datasets._SIZES, "mnist", {file: (root / "mnist" / file).stat().st_size for file in sums})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    # A short poll interval makes shutdown() quick.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_download_lands_in_the_cache(
    mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTNET_MIRRORS", f" {mirror}/{{name}}/ ,")
    splits = load_mnist(validation=5)
    assert [len(s) for s in splits] == [25, 5, 7]
    assert sorted(os.listdir(env / "mnist")) == sorted(f"{base}.gz" for base in FILES)
    assert len(load_mnist(download=False, validation=5).train) == 25  # found in the cache now


def test_a_failing_mirror_falls_back_to_the_next(
    mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/missing/", f"{mirror}/mnist"))
    assert len(load_mnist(validation=5).test) == 7


def test_the_command_line_says_what_it_downloads(
    mirror: str, env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first run waits for the download: each mirror tried and each file's arrival is a line on stderr."""
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/missing/", f"{mirror}/mnist/"))
    model = Network([Dense(10, Softmax())], input_size=784, seed=1).save(tmp_path / "net.npz")
    assert main(["evaluate", str(model), "--dataset", "mnist"]) == 0
    captured = capsys.readouterr()
    notes = captured.err.splitlines()
    assert notes[:4] == [
        f"distnet: downloading {mirror}/missing/{FILES[2]}.gz",
        f"distnet: {mirror}/missing/{FILES[2]}.gz: HTTP 404 File not found",
        f"distnet: downloading {mirror}/mnist/{FILES[2]}.gz",
        f"distnet: {env / 'mnist' / FILES[2]}.gz: 5.5 KB, SHA-256 verified",
    ]
    assert len(notes) == 4 * 2  # evaluate needs the two test files alone
    assert sorted(os.listdir(env / "mnist")) == [f"{FILES[2]}.gz", f"{FILES[3]}.gz"]
    assert "error rate" in captured.out
    assert main(["evaluate", str(model), "--dataset", "mnist"]) == 0  # from the cache now: nothing to say
    assert capsys.readouterr().err == ""


def test_only_missing_files_are_downloaded(
    mirror: str, env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (env / "mnist").mkdir(parents=True)
    shutil.copy(tmp_path / "www" / "mnist" / f"{FILES[0]}.gz", env / "mnist")
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/mnist/",))
    (tmp_path / "www" / "mnist" / f"{FILES[0]}.gz").unlink()  # the mirror lacks it now
    assert len(load_mnist(validation=5).test) == 7


def test_checksum_mismatch_leaves_nothing_in_the_cache_and_lists_every_missing_file(
    mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(datasets.CHECKSUMS, "mnist", {f"{base}.gz": "0" * 64 for base in FILES})
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/mnist/",))
    with pytest.raises(ChecksumError) as caught:
        load_mnist()
    message = str(caught.value)
    assert f"{mirror}/mnist/{FILES[0]}.gz: SHA-256 is " in message
    assert f"expected {'0' * 64}" in message
    assert os.listdir(env / "mnist") == []
    assert message.startswith("MNIST not found. Looked for")  # the error type kept, the context added
    assert "Still missing (with their SHA-256):" + "".join(f"\n  {base}.gz  {'0' * 64}" for base in FILES) in message
    assert "set DISTNET_MIRRORS to mirrors you can reach" in message


def test_no_mirror_reachable(mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = closed_port_url()
    mirrors = (refused, f"{mirror}/missing/", f"{mirror}/broken/", "no-such-scheme://x/")
    monkeypatch.setitem(datasets.MIRRORS, "mnist", mirrors)
    with pytest.raises(DataNotFoundError) as caught:
        load_mnist()
    message = str(caught.value)
    assert f"{refused}{FILES[0]}.gz: " in message and "refused" in message
    assert f"{mirror}/missing/{FILES[0]}.gz: HTTP 404 File not found" in message
    size = datasets._SIZES["mnist"][f"{FILES[0]}.gz"]
    assert (
        f"{mirror}/broken/{FILES[0]}.gz: connection closed after 10 of {size}"
        in message
    )
    assert "no-such-scheme://x/train-images-idx3-ubyte.gz: " in message
    assert "Download train-images-idx3-ubyte.gz by hand" in message
    assert f"put the four files in {env / 'mnist'}" in message and "DISTNET_DATA_DIR" in message
    assert os.listdir(env / "mnist") == []


def test_a_mirror_that_offers_or_sends_more_than_the_file_is_not_read_to_the_end(
    mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/bloated/", f"{mirror}/endless/"))
    with pytest.raises(DataNotFoundError) as caught:
        load_mnist()
    size = datasets._SIZES["mnist"][f"{FILES[0]}.gz"]
    message = str(caught.value)
    assert f"bloated/{FILES[0]}.gz: the mirror offers {size + 1} bytes; the file has {size}" in message
    assert f"endless/{FILES[0]}.gz: the mirror sent more than the file's {size} bytes" in message
    assert os.listdir(env / "mnist") == []


def test_a_page_for_the_file_and_a_redirect_loop_are_said_as_such_one_line_each(
    mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page (no Content-Length) was "SHA-256 is ..., expected ...", a ChecksumError, as if the
    mirror held a damaged file; the loop's reason took three lines of the one-per-mirror list."""
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/page/", f"{mirror}/loop/"))
    with pytest.raises(DataNotFoundError) as caught:
        load_mnist()
    assert not isinstance(caught.value, ChecksumError)
    size = datasets._SIZES["mnist"][f"{FILES[0]}.gz"]
    tried = str(caught.value).split("mirrors tried:\n")[1].split("\nDownload ")[0].splitlines()
    assert tried == [f"  {mirror}/page/{FILES[0]}.gz: the mirror sent 39 bytes; the file has {size} (an error page?)",
                     f"  {mirror}/loop/{FILES[0]}.gz: HTTP 302 The HTTP server returned a redirect error that would "
                     f"lead to an infinite loop. The last 30x error message was: Found"]
    assert os.listdir(env / "mnist") == []


def test_a_trickling_mirror_is_given_up_on(mirror: str, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DataNotFoundError, match=rf"trickle/{FILES[3]}.gz: too slow: \d+ bytes in the last [\d.]+ s"):
        fetch(f"{FILES[3]}.gz", "0" * 64, tmp_path / "dest", [f"{mirror}/trickle/"],
              size=datasets._SIZES["mnist"][f"{FILES[3]}.gz"], timeout=0.5)
    assert time.monotonic() - started < 3  # the whole file would take 5 s or more


def test_a_mirror_that_slows_down_after_a_fast_start_is_given_up_on(mirror: str, tmp_path: Path) -> None:
    started = time.monotonic()  # on average over the whole download, 23 KB in 5 s would pass 1 KB/s
    with pytest.raises(DataNotFoundError, match=rf"slowing/{FILES[0]}.gz: too slow: \d+ bytes in the last"):
        fetch(f"{FILES[0]}.gz", "0" * 64, tmp_path / "dest", [f"{mirror}/slowing/"],
              size=datasets._SIZES["mnist"][f"{FILES[0]}.gz"], timeout=0.5)
    assert time.monotonic() - started < 3


def test_a_file_mirror_that_lacks_a_file_is_not_called_unreachable(env: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_files(tmp_path / "both", gz=True)
    monkeypatch.setitem(datasets.CHECKSUMS, "mnist", {f"{b}.gz": sha256_of(tmp_path / "both" / f"{b}.gz") for b in FILES})
    monkeypatch.setitem(datasets._SIZES, "mnist", {f"{b}.gz": (tmp_path / "both" / f"{b}.gz").stat().st_size for b in FILES})
    for folder, files in (("tests", FILES[2:]), ("trains", FILES[:2])):  # each mirror holds half the files
        (tmp_path / folder).mkdir()
        for base in files:
            shutil.copy(tmp_path / "both" / f"{base}.gz", tmp_path / folder)
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"file://{tmp_path}/tests/", f"file://{tmp_path}/trains/"))
    assert len(load_mnist(validation=5).test) == 7


def test_a_download_whose_temporary_file_another_process_removed_tries_the_next_mirror(
    mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Handler, "vanish_from", env / "mnist")
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/vanish/", f"{mirror}/mnist/"))
    assert len(load_test_set("mnist")) == 7  # not "the cache cannot be written"


def test_an_unreachable_mirror_is_tried_for_the_first_file_only(
    mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refused = closed_port_url()
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (refused, f"{mirror}/mnist/"))
    with caplog.at_level(logging.INFO, logger="distnet.data.download"):
        assert len(load_mnist(validation=5).test) == 7
    tried = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"downloading {refused}")]
    assert tried == [f"downloading {refused}{FILES[0]}.gz"]
    assert any(r.getMessage().startswith(f"{refused}{FILES[0]}.gz: ") and "refused" in r.getMessage()
               for r in caplog.records)  # said as it moves on to the next mirror


def test_progress_is_noted_during_a_download(
    mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(download, "_PROGRESS_EVERY_S", 0.0)
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/mnist/",))
    with caplog.at_level(logging.INFO, logger="distnet.data.download"):
        load_test_set("mnist")
    noted = [m for m in caplog.messages if m.endswith(" so far")]
    assert noted and re.fullmatch(rf"{mirror}/mnist/{FILES[2]}.gz: [\d.]+ KB of 5.5 KB so far", noted[0])


def locked(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Looking into ``folder`` is refused, as for a user without the permission to (these tests may
    run as root, whom file modes do not stop)."""
    stat = os.stat

    def refusing(path, *args, **kwargs):
        if str(path).startswith(str(folder) + os.sep):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", refusing)


def test_a_data_folder_that_cannot_be_read_is_passed_over_or_named_not_a_bare_permission_error(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It ended the search with "<folder>/mnist/t10k-images-idx3-ubyte.gz: Permission denied",
    whatever the cache held (a data audit)."""
    shared = tmp_path / "shared"
    make_files(shared / "mnist")
    make_files(env / "mnist")  # (uncompressed: no published SHA-256 to match)
    monkeypatch.setenv("DISTNET_DATA_DIR", str(shared))
    locked(shared, monkeypatch)
    with pytest.warns(UserWarning, match=re.escape(f"$DISTNET_DATA_DIR is {shared}, but {shared} cannot be read "
                                                   f"(permission denied); using those in {env / 'mnist'}")):
        assert len(load_test_set("mnist")) == 7
    shutil.rmtree(env / "mnist")
    with pytest.raises(DataNotFoundError) as caught:
        load_test_set("mnist", download=False)
    assert f"\n  {shared / 'mnist'} (cannot be read: permission denied)\n" in str(caught.value)
    with pytest.raises(DataNotFoundError, match=re.escape(f"the data folder {shared / 'mnist'} cannot be read "
                                                          f"(permission denied); give one you can read")):
        load_test_set("mnist", data_dir=shared / "mnist")


def test_a_data_folder_s_data_set_folder_that_cannot_be_read_is_refused_unless_the_folder_holds_the_files(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--data-dir D, where D/mnist cannot be read: the cache's files were used, with a warning that
    D does not hold them (a review)."""
    given = tmp_path / "given"
    make_files(given / "mnist")
    make_files(env / "mnist")
    locked(given / "mnist", monkeypatch)
    with pytest.raises(DataNotFoundError, match=re.escape(f"the data folder {given / 'mnist'} cannot be read")):
        load_test_set("mnist", data_dir=given)
    make_files(given)  # D itself holds them: its mnist/ is not needed
    assert len(load_test_set("mnist", data_dir=given)) == 7


def test_a_folder_not_writable_error_keeps_its_errno_through_the_search_and_a_pickle(
    mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/mnist/",))

    def refused(*args, **kwargs):
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG), str(env / "mnist" / f"{FILES[0]}.gz"))

    monkeypatch.setattr(download, "_download", refused)
    with pytest.raises(FolderNotWritableError) as caught:
        load_mnist()
    assert caught.value.errno == errno.EFBIG
    again = pickle.loads(pickle.dumps(caught.value))
    assert (type(again), str(again), again.errno) == (FolderNotWritableError, str(caught.value), errno.EFBIG)


@pytest.mark.parametrize("limit", ["file size", "room"])
def test_a_cache_write_refused_for_its_size_or_for_room_says_what_to_do_about_that(
    limit: str, mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both were told to set XDG_CACHE_HOME to a folder they could write (a ulimit -f audit)."""
    refusal = errno.EFBIG if limit == "file size" else errno.ENOSPC
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/mnist/",))

    def refused(*args, **kwargs):
        raise OSError(refusal, os.strerror(refusal), str(env / "mnist" / f"{FILES[0]}.gz"))

    monkeypatch.setattr(download, "_download", refused)
    with pytest.raises(FolderNotWritableError) as caught:
        load_mnist()
    fix = str(caught.value).split("To fix: ")[1]
    assert fix.startswith("raise the limit on the size of the files a process writes (ulimit -f), or "
                          if limit == "file size" else
                          "free some space, or set XDG_CACHE_HOME to a folder you can write (the cache is its "
                          "distnet/ subfolder) on a disk with room, or ")


@pytest.mark.parametrize("in_the_way", ["cache", "file"])
def test_a_cache_that_cannot_be_written_is_said_as_such_not_blamed_on_the_mirrors(
    in_the_way: str, mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/mnist/",))
    if in_the_way == "cache":  # a file where the cache folder should be
        env.parent.mkdir(parents=True)
        env.write_text("")
        what = f"cannot create the folder {env / 'mnist'}: "
    else:  # a folder where a downloaded file should go
        (env / "mnist" / f"{FILES[0]}.gz").mkdir(parents=True)
        what = f"cannot write {env / 'mnist' / FILES[0]}.gz: Is a directory"
    with pytest.raises(FolderNotWritableError) as caught:
        load_mnist()
    message = str(caught.value)
    assert f"Downloading needs a cache folder it can write: {what}" in message
    assert "mirrors tried" not in message and "put the four files in" not in message
    assert "To fix: set XDG_CACHE_HOME to a folder you can write" in message


def test_the_temporary_file_of_a_killed_download_is_removed(
    mirror: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (f"{mirror}/mnist/",))
    folder = env / "mnist"
    folder.mkdir(parents=True)
    killed, live = folder / f".{FILES[2]}.gz.0123abcd.tmp", folder / f".{FILES[2]}.gz.4567cdef.tmp"
    killed.write_bytes(b"part")
    live.write_bytes(b"part")
    os.utime(killed, (time.time() - 3600, time.time() - 3600))
    load_test_set("mnist")
    assert not killed.exists() and live.exists()  # another process may be writing the fresh one


def test_only_this_file_s_temporaries_unchanged_for_ten_timeouts_are_removed(tmp_path: Path) -> None:
    """Another file's, however old, is another download's; one of this file's younger than ten
    timeouts (with a timeout long enough to make that more than ten minutes) may still grow."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"abc")
    dest = tmp_path / "dest"
    dest.mkdir()
    other, young = dest / ".g.0123abcd.tmp", dest / ".f.0123abcd.tmp"
    for path, age in ((other, 2000), (young, 700)):  # seconds unchanged
        path.write_bytes(b"part")
        os.utime(path, (time.time() - age, time.time() - age))
    fetch("f", sha256_of(tmp_path / "src" / "f"), dest, [(tmp_path / "src").as_uri() + "/"], timeout=100)
    assert other.exists() and young.exists()
    os.utime(young, (time.time() - 1100, time.time() - 1100))
    fetch("f", sha256_of(tmp_path / "src" / "f"), dest, [(tmp_path / "src").as_uri() + "/"], timeout=100)
    assert other.exists() and not young.exists()


def test_a_checksum_written_in_upper_case_is_the_same_checksum(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"abc")
    digest = sha256_of(tmp_path / "src" / "f").upper()
    assert fetch("f", digest, tmp_path / "dest", [(tmp_path / "src").as_uri() + "/"]).read_bytes() == b"abc"


def test_still_missing_names_only_the_files_not_yet_fetched(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (env / "mnist").mkdir(parents=True)
    (env / "mnist" / f"{FILES[2]}.gz").write_bytes(b"fetched earlier")
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (closed_port_url(),))
    with pytest.raises(DataNotFoundError) as caught:
        load_test_set("mnist")
    missing = str(caught.value).split("Still missing")[1].split("To fix")[0]
    assert f"{FILES[3]}.gz" in missing and f"{FILES[2]}.gz" not in missing


def test_fetch_without_mirrors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"(?s)no mirrors configured.*put it in"):
        fetch("f.gz", "0" * 64, tmp_path / "dest", [])


def test_sha256_of(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_of(tmp_path / "f") == expected


# --- the real data -----------------------------------------------------------------------------

DATA_ROOT = Path(os.environ.get("DISTNET_DATA_DIR", "/work/shared/data"))


def needs(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not (DATA_ROOT / name).is_dir(),
        reason=f"{DATA_ROOT / name} not found; set DISTNET_DATA_DIR to a folder with {name}/",
    )


MNIST_TRAIN_0 = """\
label 5
------------------------------
|                            |
|                            |
|                            |
|                            |
|                            |
|                =+*.*@@=    |
|        ..-**@@@@@%*@@#:    |
|       .@@@@@@@@@@---:.     |
|        %@@@@@##@@          |
|        -*=@@%  .*          |
|           *@-              |
|           +@#              |
|            #@:             |
|            .@%*=           |
|             -@@@=          |
|              .#@@+.        |
|                -@@#        |
|                 @@@:       |
|              .+#@@%        |
|            .+%@@@@#        |
|           =%@@@@#-         |
|         :%@@@@#-           |
|       *%@@@@#-             |
|    :*%@@@@@+               |
|    +@@@%++                 |
|                            |
|                            |
|                            |
------------------------------"""


@needs("mnist")
def test_real_mnist() -> None:
    splits = load_mnist(DATA_ROOT, download=False)
    assert [s.images.shape for s in splits] == [(50000, 784), (10000, 784), (10000, 784)]
    for split in splits:
        assert split.images.dtype == np.float32 and split.labels.dtype == np.int64
        assert split.images.min() == 0.0 and split.images.max() == 1.0
    published_train = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    counts = np.bincount(splits.train.labels, minlength=10)
    counts += np.bincount(splits.validation.labels, minlength=10)
    assert counts.tolist() == published_train
    published_test = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(splits.test.labels).tolist() == published_test
    assert splits.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@needs("mnist")
def test_real_mnist_split_partitions_the_training_file() -> None:
    full = load_mnist(DATA_ROOT, download=False, validation=0).train
    assert len(full) == 60000
    assert full.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert abs(float(full.images.mean(dtype=np.float64)) * 255 - 33.3184) < 1e-4
    assert str(full[0]) == MNIST_TRAIN_0

    splits = load_mnist(DATA_ROOT, download=False, validation=10_000, seed=3)
    held_out = np.sort(np.random.default_rng(3).permutation(60000)[:10_000])
    kept = np.setdiff1d(np.arange(60000), held_out)
    # np.array_equal: assert_array_equal takes seconds on arrays this size.
    assert np.array_equal(splits.validation.labels, full.labels[held_out])
    assert np.array_equal(splits.validation.images, full.images[held_out])
    assert np.array_equal(splits.train.labels, full.labels[kept])
    assert np.array_equal(splits.train.images, full.images[kept])
    again = load_mnist(DATA_ROOT, download=False, validation=10_000, seed=3)
    assert np.array_equal(again.validation.labels, splits.validation.labels)


@needs("fashion-mnist")
def test_real_fashion_mnist() -> None:
    splits = load_fashion_mnist(DATA_ROOT, download=False, validation=0)
    assert [len(s) for s in splits] == [60000, 0, 10000]
    assert np.bincount(splits.train.labels).tolist() == [6000] * 10
    assert np.bincount(splits.test.labels).tolist() == [1000] * 10
    assert splits.train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert splits.train.classes[9] == "Ankle boot"
    assert str(splits.train[0]).startswith("label 9 (Ankle boot)\n")
