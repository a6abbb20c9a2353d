"""MNIST and Fashion-MNIST: finding, downloading, verifying, loading and splitting them.

Where the four standard files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each plain or with ``.gz``) are
looked for, in this order:

1. the ``data_dir`` argument (``~`` in it is the home folder), then its subfolder named after
   the data set (``mnist`` or ``fashion-mnist``);
2. ``$DISTNET_DATA_DIR/<name>``: the variable names a folder with ``mnist/`` and
   ``fashion-mnist/`` subfolders (where it is set, files found or downloaded elsewhere get a
   warning that says what is wrong with it);
3. the user cache, ``$XDG_CACHE_HOME/distnet/<name>`` or ``~/.cache/distnet/<name>``.

If none holds all four, they are downloaded into the cache (unless ``download=False``) from the
mirrors in :data:`MIRRORS`, or from the comma-separated base URLs in ``$DISTNET_MIRRORS`` when
that is set (``{name}`` in such a URL is replaced by the data set's name); each download is
checked against the published size and SHA-256 before it is renamed into place. :func:`load_test_set`
needs only the two test files (``t10k-...``), and looks for, downloads and reads only those.

Where a file is found in its ``.gz`` form (preferred when both forms are present), its SHA-256
must match the published one in :data:`CHECKSUMS`. Uncompressed files are not checked, which is
how to use data of your own: write it with :func:`distnet.data.write_idx` without ``.gz``.
"""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import DTypeLike

from distnet.checks import as_array, checked_number, count, floating_point, labels_hint, path_of, range_hint
from distnet.data.digits import PIXELS, SIDE, Digit
from distnet.data.download import fetch, sha256_of
from distnet.data.idx import read_idx
from distnet.io import FILE_TOO_LARGE, NO_ROOM
from distnet.errors import (ChecksumError, ConfigError, DataFormatError, DataNotFoundError, FolderNotWritableError,
                            warn)

__all__ = [
    "CHECKSUMS",
    "DATASETS",
    "DATA_DIR_ENV",
    "DIGIT_CLASSES",
    "FASHION_CLASSES",
    "MIRRORS",
    "MIRRORS_ENV",
    "Dataset",
    "Splits",
    "checked_class_names",
    "class_names",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_test_set",
]

DATA_DIR_ENV = "DISTNET_DATA_DIR"
MIRRORS_ENV = "DISTNET_MIRRORS"

DIGIT_CLASSES = tuple("0123456789")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

_TRAIN_IMAGES = "train-images-idx3-ubyte"
_TRAIN_LABELS = "train-labels-idx1-ubyte"
_TEST_IMAGES = "t10k-images-idx3-ubyte"
_TEST_LABELS = "t10k-labels-idx1-ubyte"
_TEST_FILES = (_TEST_IMAGES, _TEST_LABELS)
_FILES = (_TRAIN_IMAGES, _TRAIN_LABELS, *_TEST_FILES)
# How messages name each set of files: (how many, what kind).
_FILE_SETS = {_FILES: ("four", ""), _TEST_FILES: ("two", "test ")}

#: Base URLs to download each data set from, tried in order.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
}

#: The published SHA-256 of each data set's ``.gz`` files.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        _TRAIN_IMAGES + ".gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        _TRAIN_LABELS + ".gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        _TEST_IMAGES + ".gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        _TEST_LABELS + ".gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        _TRAIN_IMAGES + ".gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        _TRAIN_LABELS + ".gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        _TEST_IMAGES + ".gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        _TEST_LABELS + ".gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

# The published files' sizes in bytes: a mirror that offers or sends more is not read to the end.
_SIZES: dict[str, dict[str, int]] = {
    "mnist": {_TRAIN_IMAGES + ".gz": 9912422, _TRAIN_LABELS + ".gz": 28881,
              _TEST_IMAGES + ".gz": 1648877, _TEST_LABELS + ".gz": 4542},
    "fashion-mnist": {_TRAIN_IMAGES + ".gz": 26421880, _TRAIN_LABELS + ".gz": 29515,
                      _TEST_IMAGES + ".gz": 4422102, _TEST_LABELS + ".gz": 5148},
}

_NUM_CLASSES = 10
_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
_CLASSES = {"mnist": DIGIT_CLASSES, "fashion-mnist": FASHION_CLASSES}
DATASETS = tuple(_CLASSES)  # the names load_dataset takes


def class_names(name: str) -> tuple[str, ...]:
    """The names of data set ``name``'s classes, in label order."""
    return _CLASSES[name]


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view: callers cannot change data that a cache or a Dataset shares."""
    view = array.view()
    view.flags.writeable = False
    return view


def checked_class_names(classes: Sequence[str] | int, where: str) -> tuple[str, ...]:
    """``classes`` (names, or how many) as a tuple of names; ConfigError if they are neither."""
    if isinstance(classes, numbers.Integral) and not isinstance(classes, bool) and classes >= 0:
        return tuple(str(label) for label in range(classes))
    # tuple() would split a string into one class per letter, and give a set's names in any order.
    if isinstance(classes, (str, Set, Mapping)) or not isinstance(classes, Iterable):
        raise ConfigError(f"{where}: classes must be the class names in label order, such as "
                          f"classes=('cat', 'dog', 'bird'), or how many there are, got {classes!r}")
    names = tuple(map(str, classes))  # names: 0 given for a class shows as "0", not as "0 0" (index, name)
    if len(set(names)) < len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise ConfigError(f"{where}: the class names must differ from each other, got {twice!r} twice")
    return names


@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples with a class label each: MNIST's 28x28 images, or any features of your own.

    Attributes:
        images: ``(n, values)`` floating-point samples; for MNIST-style data ``(n, 784)`` pixels
            in [0, 1] (byte / 255), ``float32`` as loaded. Read-only.
        labels: ``(n,)`` ``int64`` class indices into *classes*. Read-only.
        name: what the samples are, for messages, e.g. ``"mnist/train"``.
        classes: the class names, indexed by label (kept as strings); given as a number ``k``
            instead, the classes are named ``"0" .. "k-1"``, as the ten default ones are.

    The images are not copied, nor are labels given as ``int64`` (other integer labels are
    converted, a copy); the data set holds read-only views of them. Change the arrays given, and
    the data set's samples change with them, unchecked: give it copies to keep editing yours.

    Raises:
        ConfigError: the images are not a 2-D floating-point array, the labels are not ``n``
            integers in ``0 .. len(classes) - 1``, or *classes* are neither names nor a number.
    """

    images: np.ndarray
    labels: np.ndarray
    name: str = ""
    classes: tuple[str, ...] | Sequence[str] | int = DIGIT_CLASSES  # always a tuple once made

    def __post_init__(self) -> None:
        where = self.name or "dataset"
        images = as_array(f"{where}: images", self.images)
        labels = as_array(f"{where}: labels", self.labels)
        classes = checked_class_names(self.classes, where)
        if images.ndim != 2 or images.shape[1] < 1:
            raise ConfigError(f"{where}: images must be a 2-D array, one row of values per sample (such as "
                              f"(n, {PIXELS}) for {SIDE}x{SIDE} images: images.reshape(n, {PIXELS})), got shape "
                              f"{images.shape}")
        floating_point(f"{where}: images", images, "images")
        # An empty list becomes a float array; it holds no labels, so it is fine.
        if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
            raise ConfigError(f"{where}: labels must be a 1-D array of integer class indices, got {labels.dtype} "
                              f"data of shape {labels.shape}{labels_hint(labels, len(images))}")
        if len(images) != len(labels):
            raise ConfigError(f"{where}: {len(images)} images but {len(labels)} labels")
        outside = labels[(labels < 0) | (labels >= len(classes))]
        if outside.size:
            own = ("; for classes of your own, give their names: Dataset(images, labels, classes=[...])"
                   if classes == DIGIT_CLASSES and outside[0] > 0 else range_hint(labels, len(classes)))
            within = f"0..{len(classes) - 1}" if classes else "the classes: there are none (classes=0)"
            raise ConfigError(f"{where}: label {outside[0]} is outside {within}{own}")
        object.__setattr__(self, "images", _read_only(images))
        object.__setattr__(self, "labels", _read_only(labels.astype(np.int64, copy=False)))
        object.__setattr__(self, "classes", classes)

    def __reduce__(self):
        # Through the constructor, which makes the arrays read-only again: unpickled (as Ray ships
        # a data set) or deep-copied, they came back writable.
        return Dataset, (self.images, self.labels, self.name, self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Digit:
        """Sample *index* (negative counts from the end) as a :class:`Digit` (28x28 images with
        pixels in [0, 1] only)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(
                f"Dataset indices must be integers, not {type(index).__name__}; use subset()"
            )
        if self.images.shape[1] != PIXELS:
            raise ConfigError(f"dataset[i] draws a {SIDE}x{SIDE} image, and these samples have "
                              f"{self.images.shape[1]} values each; use dataset.images[i] and dataset.labels[i]")
        label = int(self.labels[index])
        return Digit(self.images[index], label, self.classes[label])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, samples={len(self)}, "
            f"dtype={self.images.dtype}, classes={len(self.classes)})"
        )

    def one_hot(self, dtype: DTypeLike = np.float32) -> np.ndarray:
        """The labels as a new ``(n, len(classes))`` array with a 1 in each label's column."""
        encoded = np.zeros((len(self), len(self.classes)), dtype=dtype)
        encoded[np.arange(len(self)), self.labels] = 1
        return encoded

    def subset(self, indices: slice | Sequence[int] | np.ndarray) -> Dataset:
        """The samples selected by a slice, integer indices (negative ones count from the end) or
        a boolean mask, in that order."""
        if not isinstance(indices, slice):
            indices = self._checked_indices(np.asarray(indices))
        return replace(self, images=self.images[indices], labels=self.labels[indices])

    def _checked_indices(self, indices: np.ndarray) -> np.ndarray:
        """``indices`` as ``subset`` uses them; ConfigError, saying what it takes, unless they
        are integer indices of samples or a mask of one value per sample."""
        n, where = len(self), self.name or "dataset"
        takes = f"subset() takes a slice, integer indices or a boolean mask of {n} values, one per sample"
        if indices.ndim != 1:
            got = (f"the one index {indices.item()!r}; dataset[i] gives one sample" if indices.ndim == 0
                   else f"an array of shape {indices.shape}")
            raise ConfigError(f"{where}: {takes}, got {got}")
        if indices.size == 0:
            return indices.astype(np.intp)  # [] would otherwise be float and not index
        if indices.dtype.kind == "b":
            if len(indices) != n:
                raise ConfigError(f"{where}: {takes}, got a mask of {len(indices)} values")
        elif indices.dtype.kind not in "iu":
            raise ConfigError(f"{where}: {takes}, got {indices.dtype} values")
        elif (outside := indices[(indices < -n) | (indices >= n)]).size:
            raise ConfigError(f"{where}: index {outside[0]} is outside its {n} samples, numbered 0..{n - 1} "
                              f"(-{n}..-1 from the end)")
        return indices

    def astype(self, dtype: DTypeLike) -> Dataset:
        """The same samples with the images in the floating-point *dtype* (no copy when they already
        are: a read-only view of the same memory)."""
        return replace(self, images=self.images.astype(dtype, copy=False))


class Splits(NamedTuple):
    """A data set's training, validation and test samples."""

    train: Dataset
    validation: Dataset
    test: Dataset


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    validation: int = 10_000,
    seed: int = 0,
    dtype: DTypeLike = np.float32,
) -> Splits:
    """Load MNIST handwritten digits; see :func:`load_dataset`."""
    return load_dataset("mnist", data_dir, download, validation, seed, dtype)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    validation: int = 10_000,
    seed: int = 0,
    dtype: DTypeLike = np.float32,
) -> Splits:
    """Load Fashion-MNIST images of clothing; see :func:`load_dataset`."""
    return load_dataset("fashion-mnist", data_dir, download, validation, seed, dtype)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    validation: int = 10_000,
    seed: int = 0,
    dtype: DTypeLike = np.float32,
) -> Splits:
    """Load ``"mnist"`` or ``"fashion-mnist"`` as training, validation and test sets.

    The files are looked for, downloaded and verified as the module documentation describes.

    The validation set is held out of the training file: ``validation`` samples chosen by a
    permutation from ``np.random.default_rng(seed)``, so the same seed always picks the same
    ones. ``train`` holds the other samples. Both keep the samples in the file's order. The
    test set is the whole test file. Pixels are the bytes divided by 255 in ``dtype`` (float32,
    or float64 for a float64 network: the original's byte / 255.0, not float32 values widened).
    Loaded files are cached for the life of the process; the returned arrays are read-only.

    Raises:
        ConfigError: *name* is not a known data set, *validation* is negative or not less
            than the number of training samples, *seed* is not a whole number >= 0 (None, a
            random split, is refused: it would differ between loads), or *dtype* is not a
            floating-point type.
        DataNotFoundError: the files are not on disk and could not be downloaded.
        ChecksumError: a ``.gz`` file (found or downloaded) is not the published one.
        DataFormatError: a file is malformed or the files do not fit together.
    """
    _check_name(name)
    validation = checked_number("validation", validation, numbers.Integral, lambda v: v >= 0,
                                "a whole number of samples, not negative")
    # No None for a random seed: a split that changes between loads would put samples that a
    # resumed run trained on into its validation set.
    seed = checked_number("seed", seed, numbers.Integral, lambda v: v >= 0,
                          "a whole number >= 0 such as 0, the default: it picks the validation samples, "
                          "and each load must pick the same")
    dtype = _checked_dtype(dtype)
    train_x, train_y, test_x, test_y = _read(name, _FILES, data_dir, download)
    if validation >= len(train_y):
        raise ConfigError(
            f"the training file has {count(len(train_y), 'sample')}, too few to hold {validation} out for "
            f"validation (what early stopping judges by) and train on the rest: give a training file of more than "
            f"{validation} samples, or hold out fewer (distnet train --validation N; load_dataset(..., "
            f"validation=N) in Python)"
        )
    order = np.random.default_rng(seed).permutation(len(train_y))
    held_out = np.sort(order[:validation])
    kept = np.sort(order[validation:])
    return Splits(
        train=_dataset(name, "train", train_x[kept], train_y[kept], dtype),
        validation=_dataset(name, "validation", train_x[held_out], train_y[held_out], dtype),
        test=_dataset(name, "test", test_x, test_y, dtype),
    )


def load_test_set(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    dtype: DTypeLike = np.float32,
) -> Dataset:
    """Load the test set of ``"mnist"`` or ``"fashion-mnist"`` alone: what
    ``load_dataset(name, ...).test`` holds, from the two test files only.

    Those two files (``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, plain or ``.gz``)
    are looked for, downloaded and verified as :func:`load_dataset`'s four are, so a folder
    holding just them will do, and the training files are neither needed nor read.

    Raises:
        As :func:`load_dataset`.
    """
    _check_name(name)
    dtype = _checked_dtype(dtype)
    test_x, test_y = _read(name, _TEST_FILES, data_dir, download)
    return _dataset(name, "test", test_x, test_y, dtype)


def _check_name(name: str) -> None:
    """ConfigError unless ``name`` is a data set distnet knows."""
    if name not in _CLASSES:
        raise ConfigError(f"unknown data set {name!r}; choose one of: {', '.join(_CLASSES)}")


def _checked_dtype(dtype: DTypeLike) -> np.dtype:
    """``dtype`` as a NumPy dtype; ConfigError unless it is a floating-point type."""
    try:
        kind = None if dtype is None else np.dtype(dtype)  # np.dtype(None) would be float64
    except TypeError:
        kind = None
    if kind is None or kind.kind != "f":
        raise ConfigError(f"dtype must be a floating-point type such as float32 or float64, got {dtype!r}")
    return kind


def _read(name: str, bases: tuple[str, ...], data_dir: str | os.PathLike[str] | None,
          download: bool) -> tuple[np.ndarray, ...]:
    """Find (or download), verify and read the files ``bases`` (pairs of images and labels, in
    that order) of data set ``name``: their arrays, in the same order."""
    expected = CHECKSUMS[name]
    keys = [_file_key(path, expected.get(path.name)) for path in _locate(name, data_dir, download, bases)]
    return tuple(array for i in range(0, len(keys), 2)
                 for array in _read_files(name, keys[i], keys[i + 1], download))


def _dataset(name: str, split: str, images: np.ndarray, labels: np.ndarray, dtype: np.dtype) -> Dataset:
    """The split ``split`` of data set ``name``: the images' bytes / 255 in ``dtype``."""
    pixels = images.reshape(len(images), PIXELS).astype(dtype)
    pixels /= 255
    return Dataset(pixels, labels, f"{name}/{split}", _CLASSES[name])


def _locate(name: str, data_dir: str | os.PathLike[str] | None, download: bool,
            bases: tuple[str, ...]) -> list[Path]:
    """Return the paths of the files ``bases`` (the four, or the two test files), downloading
    them into the cache if need be."""
    title = _TITLES[name]
    count, kind = _FILE_SETS[bases]
    folders = []
    # "~" in a config file, a Python call or --data-dir=~/... reaches here unexpanded by any shell.
    given = None if data_dir is None else path_of("data_dir", data_dir)
    if given is not None:
        if _unreadable(given):
            raise _unreadable_data_folder(given)
        if not given.is_dir():  # a typo would otherwise go unnoticed, the files found elsewhere
            what = "is a file, not a folder" if given.exists() else "does not exist"
            raise DataNotFoundError(f"the data folder {given} {what}; give the folder that holds the "
                                    f"{title} files, or none to use ${DATA_DIR_ENV}, the cache or a download")
        folders += [given, given / name]
    shared = _shared_data_dir()
    if shared is not None:
        folders.append(shared / name)
        if shared.name == name:  # the data set's own folder named, not the one above it: its files are there
            folders.append(shared)
    cache = _cache_dir(name)
    folders.append(cache)

    incomplete = []  # folders with some of the files: the likeliest place of a mistake
    for folder in folders:
        if given is not None and folder == given / name and _unreadable(folder):  # (given itself lacks the files)
            raise _unreadable_data_folder(folder)
        found = [path for base in bases if (path := _find(folder, base))]
        if len(found) == len(bases):
            _note_passed_over(name, bases, folder, given, shared)
            return found
        if found:
            lacking = ", ".join(f"{base}[.gz]" for base in bases if not _find(folder, base))
            incomplete.append(f"{folder} lacks {lacking}\n")

    fix = f"put the {count} {kind}files in {cache if given is None else given}, or "
    failure: type[DataNotFoundError | ChecksumError] = DataNotFoundError
    refusal = None  # a cache write's errno
    if download:
        _note_passed_over(name, bases, cache, given, shared, downloading=True)
        unreachable: set[str] = set()  # a dead mirror costs its timeout once, not once per file
        try:
            # Keeps what an interrupted earlier download already fetched.
            return [_find(cache, base) or _fetch(name, base, cache, unreachable) for base in bases]
        except FolderNotWritableError as exc:
            failure, refusal = FolderNotWritableError, exc.errno
            why = f"Downloading needs a cache folder it can write: {exc}."
            elsewhere = "set XDG_CACHE_HOME to a folder you can write (the cache is its distnet/ subfolder)"
            fix = ("raise the limit on the size of the files a process writes (ulimit -f), or "
                   if exc.errno == FILE_TOO_LARGE else
                   f"free some space, or {elsewhere} on a disk with room, or " if exc.errno in NO_ROOM else
                   f"{elsewhere}, or ")
        except (DataNotFoundError, ChecksumError) as exc:
            failure = type(exc)
            missing = [f"{base}.gz" for base in bases if not _find(cache, base)]
            why = (f"Downloading failed: {exc}\nStill missing (with their SHA-256):"
                   + "".join(f"\n  {file}  {CHECKSUMS[name][file]}" for file in missing))
            fix += f"set {MIRRORS_ENV} to mirrors you can reach (base URLs, comma-separated), or "
    else:
        why = "Downloading is turned off (download=False, --no-download)."
    looked = "\n".join(f"  {folder}" + (" (cannot be read: permission denied)" if _unreadable(folder) else "")
                       for folder in folders)
    unset = "set but empty" if os.environ.get(DATA_DIR_ENV) == "" else "not set"
    env_note = (f"{DATA_DIR_ENV} is {unset}" if shared is None else
                f"${DATA_DIR_ENV} is {shared}, {_shared_mistake(name, bases, shared)}")
    data_dir_option = ("pass --data-dir (data_dir= in Python)" if given is None else
                       "give --data-dir (data_dir= in Python) another folder")
    wanted = ", ".join(f"{base}[.gz]" for base in bases)
    message = (f"{title} not found. Looked for {wanted} in:\n{looked}\n{''.join(incomplete)}{why}\n"
               f"To fix: {fix}{data_dir_option}, or set {DATA_DIR_ENV} to a folder with mnist/ and "
               f"fashion-mnist/ subfolders ({env_note}).")
    raise FolderNotWritableError(message, refusal) if failure is FolderNotWritableError else failure(message)


def _unreadable_data_folder(folder: Path) -> DataNotFoundError:
    return DataNotFoundError(f"the data folder {folder} cannot be read (permission denied); give one you can read, "
                             f"or none to use ${DATA_DIR_ENV}, the cache or a download")


def _shared_data_dir() -> Path | None:
    """The folder ``$DISTNET_DATA_DIR`` names, if it is set."""
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        return None
    try:
        return Path(value).expanduser()  # a Ray job's value is not shell-expanded
    except RuntimeError:  # "~user" of a user this machine does not have: a folder that does not exist
        return Path(value)


def _note_passed_over(name: str, bases: tuple[str, ...], used: Path, given: Path | None,
                      shared: Path | None, downloading: bool = False) -> None:
    """Warn when the files ``bases`` come from elsewhere than the data folder the caller gave, or
    (given none) the one ``$DISTNET_DATA_DIR`` names: a mistake there would otherwise go unnoticed."""
    count, kind = _FILE_SETS[bases]
    files = f"the {count} {_TITLES[name]} {kind}files"
    then = f"downloading them into {used}" if downloading else f"using those in {used}"
    if given is not None:
        if used not in (given, given / name):
            warn(f"{given} does not hold {files}; {then}")
    elif shared is not None and used == shared:
        warn(f"${DATA_DIR_ENV} is {shared}, the {_TITLES[name]} folder itself; using the files in it (it names the "
             f"folder above {name}/ and the other data sets' folders, here {shared.parent})")
    elif shared is not None and used != shared / name:
        warn(f"${DATA_DIR_ENV} is {shared}, {_shared_mistake(name, bases, shared)}; {then}")


def _shared_mistake(name: str, bases: tuple[str, ...], shared: Path) -> str:
    """What is wrong with ``$DISTNET_DATA_DIR`` (``shared``), which does not give the files ``bases``."""
    for folder in (shared, shared / name):
        if _unreadable(folder):
            return f"but {folder} cannot be read (permission denied)"
    if not shared.is_dir():
        return "a file, not a folder" if shared.exists() else "a folder that does not exist"
    if all(_find(shared, base) for base in bases):
        return (f"which holds data files itself: it names the folder above mnist/ and "
                f"fashion-mnist/, here perhaps {shared.parent}")
    count, kind = _FILE_SETS[bases]
    return f"but {shared / name} does not hold the {count} {_TITLES[name]} {kind}files"


def _find(folder: Path, base: str) -> Path | None:
    """The file *base* in *folder*, compressed preferred because it can be verified; None also
    where *folder* cannot be read (the error, where nothing is found, says so: :func:`_unreadable`)."""
    for candidate in (folder / f"{base}.gz", folder / base):
        try:
            if candidate.is_file():
                return candidate
        except PermissionError:
            if _unreadable(folder):
                return None
            raise  # the file's own (a link into a folder that cannot be read): its error names it
    return None


def _unreadable(folder: Path) -> bool:
    """Whether the files in *folder* cannot be looked at: it, or a folder above it, lacks the
    permission (False where it does not exist, or is no folder)."""
    try:
        os.stat(os.path.join(folder, "."))  # (pathlib would drop the ".", which needs the permission)
    except PermissionError:
        return True
    except (OSError, ValueError):  # (ValueError: a NUL in the name)
        return False
    return False


def _fetch(name: str, base: str, cache: Path, unreachable: set[str]) -> Path:
    filename = f"{base}.gz"
    return fetch(filename, CHECKSUMS[name][filename], cache, _mirrors(name), size=_SIZES[name][filename],
                 unreachable=unreachable)


def _mirrors(name: str) -> Sequence[str]:
    override = os.environ.get(MIRRORS_ENV, "")
    if override.strip():
        urls = (url.strip() for url in override.split(","))
        return [url.replace("{name}", name) for url in urls if url]
    return MIRRORS[name]


def _cache_dir(name: str) -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore a relative path.
    root = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "distnet" / name


# A file's resolved path, modification time, size and published SHA-256 (None: don't check).
_FileKey = tuple[str, int, int, "str | None"]


def _file_key(path: Path, sha256: str | None) -> _FileKey:
    """Identify a file's content cheaply, so that a replaced file is read again."""
    stat = path.stat()
    checked = sha256 if path.suffix == ".gz" else None
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size, checked


@functools.lru_cache(maxsize=8)
def _read_files(name: str, images: _FileKey, labels: _FileKey, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """Verify and read an images file and its labels file of data set ``name``, as read-only arrays.

    The cache lets repeated loads (tests, several runs in one process, a test set loaded alone
    and then with the rest) skip the decompression; the arrays are read-only so that no caller
    can change what the next one gets. ``download`` only shapes the advice of a ChecksumError.
    """
    for path, _, _, sha256 in (images, labels):
        if sha256 is not None and (actual := sha256_of(path)) != sha256:
            raise ChecksumError(_checksum_message(name, Path(path), actual, sha256, download))
    return _read_pair(images[0], labels[0])


def _checksum_message(name: str, path: Path, actual: str, published: str, download: bool) -> str:
    """What a file of data set ``name`` whose SHA-256 is not the published one is, and what to do
    about it."""
    published_as = {sha: (owner, file) for owner, sums in CHECKSUMS.items() for file, sha in sums.items()}
    if actual not in published_as:
        fix = "Delete it to have it downloaded again, or replace it" if download else "Replace it with the original"
        return (f"{path}: SHA-256 is {actual}, the published value is {published}; the file is damaged or "
                f"not the original. {fix}.")
    owner, file = published_as[actual]
    title, owner_title = _TITLES[name], _TITLES[owner]
    if owner != name and not _beside_own_files(name, path):
        return (f"{path} is {owner_title}'s {file}, not {title}'s: its folder holds the {owner_title} files; "
                f"use them with --dataset {owner} (load_dataset({owner!r}) in Python), or give the folder "
                f"that holds the {title} files")
    fix = f"replace it with the real {title} {path.name}"
    if download:  # deleting it helps only where it will be downloaded again
        fix += ", or delete it to download it again"
    if owner == name:
        return f"{path} holds {title}'s {file} (its SHA-256 is that file's): a file copied or renamed over it; {fix}"
    return f"{path} holds {owner_title}'s {file} (its SHA-256 is that file's), not {title}'s {path.name}; {fix}"


def _beside_own_files(name: str, path: Path) -> bool:
    """Whether another of data set ``name``'s published files is in ``path``'s folder: then
    ``path`` is one stray file among them, not the first of a folder of the other data set."""
    others = ((path.parent / file, sha) for file, sha in CHECKSUMS[name].items() if file != path.name)
    return any(other.is_file() and sha256_of(other) == sha for other, sha in others)


def _read_pair(images_path: str, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and its labels file, and check that they fit together; a
    DataFormatError says what to do (a .gz file's checksum said it first, where it was not the
    original)."""
    fix = ("; the file is damaged or not the original: replace it with the original (its .gz is checked against "
           "the published checksum)")
    try:
        images = read_idx(images_path, (None, SIDE, SIDE), f"{SIDE}x{SIDE} images")
        labels = read_idx(labels_path, (None,), "a vector of labels")
    except DataFormatError as e:
        raise DataFormatError(f"{e}{fix}") from None
    if len(images) != len(labels):
        raise DataFormatError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
                              f"labels; one of them is damaged or not the original: replace them with the originals")
    if labels.max() >= _NUM_CLASSES:
        raise DataFormatError(f"{labels_path}: label {labels.max()} is outside 0..{_NUM_CLASSES - 1}{fix}")
    return _read_only(images), _read_only(labels)
