"""Pieces shared by several commands: the data options and loading, and the types of numeric
options (checked while the command line is parsed, before any data is loaded or Ray started)."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..data.datasets import DATASETS


def add_data_arguments(parser: argparse.ArgumentParser, of_model: bool = False) -> None:
    """--dataset, --data-dir, --no-download. ``of_model``: for a command given a saved model,
    whose --dataset defaults to the one the model's run directory records (see
    :func:`dataset_of_model`)."""
    parser.add_argument("--dataset", default=None if of_model else "mnist", choices=DATASETS,
                        help="default: the one the model's run directory records, else mnist" if of_model
                        else "default: mnist")
    add_data_location_arguments(parser)


def add_data_location_arguments(parser: argparse.ArgumentParser) -> None:
    """--data-dir, --no-download: where the data set's files are, and whether to download them."""
    parser.add_argument("--data-dir", type=Path, help="folder with the four IDX files "
                        "(default: $DISTNET_DATA_DIR/DATASET, then the user cache, then download)")
    parser.add_argument("--no-download", action="store_true", help="never download; fail if the files are missing")


def load_data(args, dtype, validation: int = 10_000):
    from ..data import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, download=not args.no_download,
                        validation=validation, dtype=dtype)


def dataset_of_model(model: Path, given: str | None) -> str:
    """The data set to use a saved model on: ``given`` (--dataset), else the one recorded by the
    run directory the model is in (``best.npz`` beside the run's ``config.json``), else MNIST."""
    from ..errors import DistnetError
    from ..rundir import RunDir

    if given is not None:
        return given
    try:
        recorded = RunDir(model.parent).config().get("dataset")
    except DistnetError:  # no run directory, or not one distnet wrote
        recorded = None
    return recorded if recorded in DATASETS else "mnist"


def check_fits(network, model: Path, pixels: int, classes: int, data_name: str) -> None:
    """ConfigError unless ``network`` takes images of ``pixels`` pixels and has an output for each
    of ``classes`` classes (of the data set ``data_name``)."""
    from ..errors import ConfigError

    if network.input_size != pixels or network.output_size != classes:
        raise ConfigError(f"{model} does not fit {data_name}: the network takes {network.input_size} "
                          f"inputs and gives {network.output_size} outputs, the data has {pixels} "
                          f"pixels per image and {classes} classes; use it on the data it was trained on")


def folder(text: str) -> Path:
    """An option's value that must name a folder (an empty one would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty name")
    return Path(text)


def positive_int(text: str) -> int:
    """An option's value that must be a whole number of at least 1."""
    return _whole(text, minimum=1)


def non_negative_int(text: str) -> int:
    """An option's value that must be a whole number of at least 0."""
    return _whole(text, minimum=0)


def probability(text: str) -> float:
    """An option's value that must be a probability in (0, 1]."""
    return _real(text, lambda v: 0 < v <= 1, "a probability", "a probability in (0, 1]")


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
