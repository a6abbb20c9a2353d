"""``distnet predict``: classify images with a saved network and print class and probabilities.

Reads ``.npy`` arrays and IDX files (plain or gzip) without extra packages, and PNG, JPEG and
the other picture formats through Pillow (``pip install pillow``); each file by what its first
bytes say it holds, by its name only where they do not tell.
"""
from __future__ import annotations

import argparse
import json
import sys
import tokenize
from pathlib import Path

import numpy as np

from ..data.datasets import DATASETS, class_names
from ..data.digits import SIDE
from ..data.idx import GZIP_MAGIC
from ..errors import ConfigError, DataFormatError, DataNotFoundError, DistnetError, ModelFormatError
from ..nn.network_files import saved_network_path
from .common import (add_model_argument, check_fits, check_takes_images, dataset_of_model, file, probability,
                     recorded_classes, trained_on)
from .pictures import PICTURE_SUFFIXES, is_picture, read_picture

NUMPY_SIGNATURES = (b"\x93NUMPY", b"PK\x03\x04")  # an .npy array; an .npz archive (zip), which np.load names
NPY_ERRORS = (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError)


def register(subparsers: argparse._SubParsersAction) -> None:
    predict = subparsers.add_parser(
        "predict", help="classify images (PNG/JPEG, .npy or IDX) with a saved network",
        description="Print each image's class and the network's probability per class. FILE can be a "
                    "PNG/JPEG picture (needs Pillow: pip install pillow; scaled to 28x28, made square "
                    "first), a .npy array of one or more 28x28 images (or rows of 784 values), or an IDX "
                    "images file.")
    add_model_argument(predict)
    predict.add_argument("files", type=file, nargs="+", metavar="FILE",
                         help="the images: pictures, .npy arrays or IDX files (any mix)")
    predict.add_argument("--dataset", choices=DATASETS,
                         help="what the network was trained on, for the class names (default: the "
                              "classes the model records, else the data set it or its run directory "
                              "records, else mnist)")
    predict.add_argument("--invert", choices=["auto", "yes", "no"], default="auto",
                         help="pictures only: make dark-on-light images light-on-dark like MNIST "
                              "(default auto: invert when the border is light)")
    predict.add_argument("--threshold", type=probability, metavar="P",
                         help="below probability P for every class, report 'not recognized'")
    predict.add_argument("--json", action="store_true", help="print one JSON object per image")
    predict.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..nn import Network

    args.model = saved_network_path(args.model)
    try:
        network = Network.load(args.model)
    except ModelFormatError as e:
        # Images where the model belongs: a picture, an IDX file or an .npy array (an .npz that is not
        # a network may be anything, such as a run's checkpoint.npz).
        if args.model.is_file() and kind_of(head := first_bytes(args.model)) and not head.startswith(b"PK"):
            raise ModelFormatError(f"{e}; it holds images: the model comes first (distnet predict MODEL FILE...)") \
                from None
        raise
    check_takes_images(network, args.model)
    record = trained_on(args.model)
    classes = recorded_classes(record, network.output_size) if args.dataset is None else None
    if classes is None:  # else the names the model was trained with, whatever its data: they fit
        dataset = dataset_of_model(args.model, args.dataset)
        classes = class_names(dataset)
        check_fits(network, args.model, len(classes), dataset)
    # Misspelt names are said, all at once, before any image is classified (and after the model,
    # which is said on stderr only).
    if missing := [str(path) for path in args.files if not path.exists()]:
        for path in missing:
            _json_error(args, path, f"{path}: no such file")
        raise DataNotFoundError(f"{missing[0]}: no such file" if len(missing) == 1 else
                                f"no such files: {', '.join(missing)}")
    unread = 0
    for path in args.files:
        try:
            names, pixels = read_images(path, args.invert)
        except (DistnetError, OSError) as e:  # said, and the other files classified (a glob may catch a stray file)
            reason = f"{e.filename}: {e.strerror}" if isinstance(e, OSError) and e.strerror else str(e)
            _json_error(args, path, reason)
            if len(args.files) == 1:
                raise
            unread += 1
            args.unread_files = unread  # for the exit status, should the reader go away before the end
            print(f"distnet: error: {reason}", file=sys.stderr, flush=True)
            continue
        _print_predictions(args, names, network.predict(pixels), classes)
    if unread:
        others = "; the others are classified" if unread < len(args.files) else ""
        raise DistnetError(f"{unread} of {len(args.files)} files could not be read (said above){others}")
    return 0


def _print_predictions(args: argparse.Namespace, names: list[str], outputs: np.ndarray,
                       classes: tuple[str, ...]) -> None:
    """Each image's class (or 'not recognized', below ``--threshold``) and probabilities, as a line
    of text or, with --json, a JSON object."""
    from ..metrics import class_label, recognized

    for name, output, sure in zip(names, outputs, recognized(outputs, args.threshold)):
        best = int(output.argmax())
        if args.json:
            print(json.dumps({"file": name, "class": best if sure else None, "name": classes[best] if sure else None,
                              "probabilities": output.astype(float).round(6).tolist()}))
            continue
        label = class_label(classes, best)
        verdict = (f"{label}  (p {output[best]:.3f})" if sure else
                   f"not recognized  (best {label}, p {output[best]:.3f})")
        row = "  ".join(f"{c}:{p:.3f}" for c, p in enumerate(output))
        print(f"{name}: {verdict}\n    {row}")


def _json_error(args: argparse.Namespace, path: Path | str, reason: str) -> None:
    """With --json, the file ``path`` that could not be read, and why, as a line on stdout, where
    the script reading the results looks for every file it gave (stderr says it too)."""
    if args.json:
        print(json.dumps({"file": str(path), "error": reason}))


def read_images(path: Path, invert: str = "auto") -> tuple[list[str], np.ndarray]:
    """The images in ``path`` as ``(names, pixels)``: one name per image (``path`` for a single
    one, ``path[i]`` in a stack) and an ``(n, 784)`` float32 array with values in [0, 1]."""
    head = first_bytes(path)
    kind = kind_of(head) or kind_of_name(path)
    if kind == "picture":
        return [str(path)], read_picture(path, invert)[None, :]
    array = read_npy(path, head) if kind == "npy" else read_idx_images(path)
    pixels = as_pixels(array, str(path))
    names = [str(path)] if array.ndim in (1, 2) and array.size == SIDE * SIDE else \
        [f"{path}[{i}]" for i in range(len(pixels))]
    return names, pixels


def first_bytes(path: Path) -> bytes:
    """The first 16 bytes of the file ``path``, enough to tell what it holds."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give the image files in it (such as {path / '*.png'})")
    if not path.exists():
        raise DataNotFoundError(f"{path}: no such file")
    if not path.is_file():  # read twice (what it holds, then all of it), which a pipe cannot be
        raise ConfigError(f"{path} is not a file but a pipe or a device; save what it gives to a file first "
                          f"(such as: command > digit.png) and give that")
    with open(path, "rb") as file:
        return file.read(16)


def kind_of(head: bytes) -> str | None:
    """``"picture"``, ``"npy"`` or ``"idx"``: what a file's first bytes say it holds; None where
    they do not tell."""
    if is_picture(head):
        return "picture"
    if head.startswith(NUMPY_SIGNATURES):
        return "npy"
    if head.startswith((b"\0\0", GZIP_MAGIC)):  # an IDX magic number, or gzip (of an IDX file)
        return "idx"
    return None


def kind_of_name(path: Path) -> str:
    """What a file holds by its name alone, for content that does not tell (IDX files have no
    extension)."""
    suffix = path.suffix.lower()
    return "picture" if suffix in PICTURE_SUFFIXES else "npy" if suffix == ".npy" else "idx"


def read_npy(path: Path, head: bytes) -> np.ndarray:
    """The array of an .npy file (not its pickled objects, were it to hold any)."""
    if not head.startswith(NUMPY_SIGNATURES):
        # np.load unpickles any content it does not recognize (or advises turning pickle loading on).
        reason = "the file is empty" if not head else "it does not start with the .npy signature \\x93NUMPY"
        raise DataFormatError(f"{path}: not a readable .npy array ({reason})")
    try:
        # Mapped, not read: a header that claims more than the file holds is refused, not allocated.
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except NPY_ERRORS as e:
        reason = "it holds pickled Python objects, and distnet never loads pickled data: save the images " \
                 "as a numeric array" if holds_objects(path) else e
        raise DataFormatError(f"{path}: not a readable .npy array ({reason})") from None
    if not isinstance(array, np.ndarray):  # np.load returns an archive for .npz content
        raise DataFormatError(f"{path}: holds an .npz archive, not one .npy array")
    return np.array(array)  # off the map: the file may change or go


def holds_objects(path: Path) -> bool:
    """Whether an .npy file's header declares Python objects, which only unpickling reads."""
    with open(path, "rb") as file:
        try:
            version = np.lib.format.read_magic(file)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            return read_header(file)[2].hasobject
        except NPY_ERRORS:
            return False


def read_idx_images(path: Path) -> np.ndarray:
    """The array of an IDX file, plain or gzip."""
    from ..data import read_idx

    try:
        return read_idx(path)
    except DataFormatError as e:
        raise DataFormatError(f"{e}; predict reads .npy arrays, IDX files and (with Pillow) "
                              f"{', '.join(sorted(PICTURE_SUFFIXES))} pictures") from None


def as_pixels(array: np.ndarray, name: str) -> np.ndarray:
    """One image (28x28 or 784 values) or a stack of them as (n, 784) float32 in [0, 1]; bytes
    (integers 0..255) are divided by 255, floats must already be in [0, 1]."""
    shapes = {(SIDE, SIDE), (SIDE * SIDE,)}
    if array.shape in shapes:
        array = array.reshape(1, -1)
    elif array.ndim in (2, 3) and array.shape[1:] in shapes:
        if not len(array):
            raise DataFormatError(f"{name}: holds no images (shape {array.shape})")
        array = array.reshape(len(array), SIDE * SIDE)
    else:
        labels = " (one number per sample: a labels file?)" if array.ndim == 1 else ""
        raise DataFormatError(f"{name}: expected 28x28 images (shape (28, 28), (784,), (n, 28, 28) or "
                              f"(n, 784)), got shape {array.shape}{labels}")
    if array.dtype.kind in "iu":  # bytes, whatever integer type holds them (np.array([[0, 255]]) is int64)
        if array.min(initial=0) < 0 or array.max(initial=0) > 255:
            raise DataFormatError(f"{name}: integer pixels must be bytes 0..255, got {array.min()}..{array.max()}")
        return array.astype(np.float32) / 255
    if array.dtype.kind != "f":
        raise DataFormatError(f"{name}: pixels must be bytes (integers 0..255) or floats in [0, 1], got {array.dtype}")
    if not np.isfinite(array).all():
        raise DataFormatError(f"{name}: {np.count_nonzero(~np.isfinite(array))} pixels are NaN or infinite; "
                              f"pixels must be floats in [0, 1]")
    if array.size and (array.min() < 0 or array.max() > 1):
        raise DataFormatError(f"{name}: float pixels must lie in [0, 1] (got {array.min():g}..{array.max():g}); "
                              f"divide bytes by 255")
    return array.astype(np.float32)
