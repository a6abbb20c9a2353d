"""Pieces shared by several commands: the data options and loading, and the types of numeric
options (checked while the command line is parsed, before any data is loaded or Ray started)."""
from __future__ import annotations

import argparse
import contextlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..data.datasets import DATASETS
from ..errors import warn

if TYPE_CHECKING:
    import numpy as np

    from ..data import Dataset, Splits
    from ..nn import Network


def drop_output(stream: TextIO) -> None:
    """Send what goes to ``stream``, whose reader went away, to nowhere: what is still buffered
    would fail again when Python exits."""
    nowhere = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(nowhere, stream.fileno())
    finally:
        os.close(nowhere)


def add_data_arguments(parser: argparse.ArgumentParser, of_model: bool = False) -> None:
    """--dataset, --data-dir, --no-download. ``of_model``: for a command given a saved model,
    whose --dataset defaults to the one the model records (see :func:`dataset_of_model`), and
    which needs only the test files."""
    parser.add_argument("--dataset", default=None if of_model else "mnist", choices=DATASETS,
                        help="default: the one the model was trained on, as it records (or its run "
                             "directory does), else mnist" if of_model else "default: mnist")
    add_data_location_arguments(parser, test_only=of_model)


def add_data_location_arguments(parser: argparse.ArgumentParser, test_only: bool = False) -> None:
    """--data-dir, --no-download: where the data set's files are, and whether to download them
    (``test_only``: a command that reads only the two test files)."""
    files = "the two test IDX files (t10k-*)" if test_only else "the four IDX files"
    parser.add_argument("--data-dir", type=folder, help=f"folder with {files}, or the folder above a DATASET/ "
                        "subfolder with them (default: $DISTNET_DATA_DIR/DATASET, then the user cache, then a download "
                        "from the mirrors, or those $DISTNET_MIRRORS lists)")
    parser.add_argument("--no-download", action="store_true", help="never download; fail if the files are missing")


def load_data(args: argparse.Namespace, dtype: np.dtype) -> Splits:
    """The splits of the data set ``args`` name (``--dataset``, ``--data-dir``, ``--no-download``,
    ``--validation``)."""
    from ..data import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, download=not args.no_download,
                        validation=args.validation, dtype=dtype)


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """The positional MODEL of a command that uses a saved network."""
    parser.add_argument("model", type=file_or_folder,
                        help="a .npz network (e.g. RUN_DIR/best.npz), or a run directory for its best.npz")


def model_and_test_data(args: argparse.Namespace) -> tuple[Network, Dataset]:
    """The network ``args.model`` names (a run directory: its best.npz), which ``args.model``
    is then set to, and the test set it is used on (``args.dataset``, set to the data set of
    the model where not given; see :func:`dataset_of_model`), checked to fit each other."""
    from ..nn import Network
    from ..nn.network_files import saved_network_path

    args.model = saved_network_path(args.model)
    network = Network.load(args.model)
    check_takes_images(network, args.model)
    args.dataset = dataset_of_model(args.model, args.dataset)
    if args.data_dir is None:
        args.data_dir = _run_data_dir(args.model, args.dataset)
    test = load_test_data(args, dtype=network.dtype)
    check_fits(network, args.model, len(test.classes), test.name)
    return network, test


def _run_data_dir(model: Path, dataset: str) -> Path | None:
    """The data folder the run of ``model`` (a best.npz beside its run's config.json) was trained
    from, if it trained on ``dataset``: its test set is the one the run's summary scored (a folder
    of your own data, say, not the MNIST a plain load would find); None if the run records none."""
    config = _run_config(model)
    recorded = config.get("data_dir")
    if not isinstance(recorded, str) or config.get("dataset") != dataset:
        return None
    if not Path(recorded).is_dir():
        warn(f"the run's data folder {recorded} is not there any more; the test set is looked for where a "
             f"new run looks (--data-dir names another)")
        return None
    return Path(recorded)


def load_test_data(args: argparse.Namespace, dtype: np.dtype) -> Dataset:
    """The test set alone of the data set ``args`` name: only its two test files are needed."""
    from ..data import load_test_set

    return load_test_set(args.dataset, data_dir=args.data_dir, download=not args.no_download, dtype=dtype)


def trained_on(model: Path) -> dict:
    """What the saved model ``model`` records of the data it was trained on (the ``trained_on``
    of its notes, which training writes: ``name`` such as "mnist/train" and ``classes``), or {}
    for a model that records nothing."""
    from ..nn.network_files import saved_notes

    record = saved_notes(model).get("trained_on")
    return record if isinstance(record, dict) else {}


def recorded_classes(record: dict, count: int) -> tuple[str, ...] | None:
    """The class names a :func:`trained_on` record holds, if it holds ``count`` names; else None."""
    classes = record.get("classes")
    if isinstance(classes, list) and len(classes) == count and all(isinstance(c, str) for c in classes):
        return tuple(classes)
    return None


def dataset_of_model(model: Path, given: str | None) -> str:
    """The data set to use a saved model on: ``given`` (--dataset), else the one it was trained
    on as its notes record (:func:`trained_on`), else as the run directory it is in records
    (``best.npz`` beside the run's ``config.json``, for models saved before notes), else MNIST.

    Warns (one line on stderr from the command line) when ``given`` is not the data set the
    model was trained on, and when MNIST is assumed for want of any record."""
    record = trained_on(model)
    recorded = _recorded_dataset(model, record)
    if given is not None:
        if recorded is not None and recorded != given:
            warn(f"{model} was trained on {recorded}; using it on {given}, as --dataset asks")
        return given
    if recorded is not None:
        return recorded
    name = record.get("name")
    what = (f"was trained on {name!r}, not a data set distnet knows" if isinstance(name, str) and name else
            "does not record the data set it was trained on")
    warn(f"{model} {what}, so mnist is assumed; --dataset chooses another")
    return "mnist"


def _recorded_dataset(model: Path, record: dict) -> str | None:
    """The known data set ``model`` was trained on, by its :func:`trained_on` ``record`` or else
    its run directory; None if neither says."""
    name = record.get("name")
    if isinstance(name, str) and name.split("/")[0] in DATASETS:
        return name.split("/")[0]
    recorded = _run_config(model).get("dataset")
    return recorded if recorded in DATASETS else None


def _run_config(model: Path) -> dict:
    """The configuration of the run directory ``model`` is in ({} where it is in none, or in a
    folder that distnet did not write)."""
    from ..errors import DistnetError
    from ..rundir import RunDir

    try:
        return RunDir(model.parent).config()
    except DistnetError:
        return {}


def check_takes_images(network, model: Path) -> None:
    """ConfigError unless ``network`` takes 28x28 images, as every data set and picture the commands
    read is: checked first, before a data set is chosen for it (which warns where the model
    records none) or loaded."""
    from ..data.digits import PIXELS
    from ..errors import ConfigError

    if network.input_size != PIXELS:
        raise ConfigError(f"{model} takes {network.input_size} inputs per sample, not the {PIXELS} pixels of an "
                          f"image here: distnet's commands classify images; for a network trained on data of your "
                          f"own, use it from Python: Network.load(path).predict(rows) or .error_rate(rows, labels)")


def check_fits(network, model: Path, classes: int, data_name: str) -> None:
    """ConfigError unless ``network`` (which takes images: :func:`check_takes_images`) has an output
    for each of ``classes`` classes (of the data set ``data_name``)."""
    from ..data.digits import PIXELS
    from ..errors import ConfigError

    if network.output_size != classes:
        # (every data set of distnet's has its classes: no --dataset would fit either)
        raise ConfigError(f"{model} does not fit {data_name}: the network takes {network.input_size} "
                          f"inputs and gives {network.output_size} outputs, the data has {PIXELS} "
                          f"pixels per image and {classes} classes; distnet's commands classify images into "
                          f"those classes: for a network trained on data of your own, use it from Python: "
                          f"Network.load(path).predict(rows) or .error_rate(rows, labels)")


def folder(text: str) -> Path:
    """A value that must name a folder (an empty one would mean the current folder)."""
    return _named(text, "a folder")


def file_or_folder(text: str) -> Path:
    """A value that must name a file or a run directory (an empty one would mean the current folder)."""
    return _named(text, "a file or a run directory")


def file(text: str) -> Path:
    """A value that must name a file (an empty one would mean the current folder)."""
    return _named(text, "a file")


def _named(text: str, what: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected {what}, got an empty name")
    return Path(text)


def positive_int(text: str) -> int:
    """An option's value that must be a whole number of at least 1."""
    return _whole(text, minimum=1)


def non_negative_int(text: str) -> int:
    """An option's value that must be a whole number of at least 0."""
    return _whole(text, minimum=0)


def probability(text: str) -> float:
    """An option's value that must be a probability in (0, 1]."""
    try:
        return _real(text, lambda v: 0 < v <= 1, "a probability", "a probability in (0, 1]")
    except argparse.ArgumentTypeError as refused:
        with contextlib.suppress(ValueError):  # (not a number: refused as such)
            if 1 < float(text) <= 100:  # 90 meant for 90 %
                raise argparse.ArgumentTypeError(f"{refused} (a percentage? {text} % is {float(text) / 100:g})") \
                    from None
        raise


def positive_float(text: str) -> float:
    """An option's value that must be a finite number above 0."""
    return _real(text, lambda v: math.isfinite(v) and v > 0, "a number", "a finite number above 0")


def fraction(text: str) -> float:
    """An option's value that must be a number in [0, 1)."""
    return _real(text, lambda v: 0 <= v < 1, "a number", "a number in [0, 1)")


class LayerSizes(tuple):
    """Hidden-layer sizes, written as the option takes them ("128,64", or "none" for none)."""

    def __str__(self) -> str:
        return ",".join(map(str, self)) or "none"


def layer_sizes(text: str) -> LayerSizes:
    """An option's value that must be comma-separated layer sizes ("128,64"), or "none"."""
    if text.strip().lower() == "none":
        return LayerSizes()
    try:
        sizes = LayerSizes(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes such as 128,64 (or none), got {text!r}") from None
    if not all(size >= 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"every layer needs at least 1 neuron, got {text}")
    return sizes


def _real(text: str, accept, kind: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if not accept(value):
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
    return value


def cluster_address(text: str) -> str:
    """An option's value that must be a Ray cluster address: "auto", "local" or HOST:PORT."""
    from ..address import parse_address
    from ..errors import ConfigError

    try:
        parse_address(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _whole(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value
