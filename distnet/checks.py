"""Checks of the values a user gives (sizes, rates, counts): each says what was expected, where the
value is given, so that a string from a config file or a class where an instance belongs fails
there and not with a TypeError deep in training."""
from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import ConfigError


def checked_number(what: str, value, kind: type, accept: Callable, expected: str):
    """``value`` as a plain ``int`` (``kind`` Integral) or ``float`` (``kind`` Real) if it is such
    a number (a bool or a string is not) that ``accept`` takes; otherwise ConfigError "<what> must
    be <expected>". The plain types keep NumPy scalars out of JSON files."""
    if isinstance(value, bool) or not isinstance(value, kind) or not accept(value):
        raise ConfigError(f"{what} must be {expected}, got {value!r}")
    return int(value) if kind is numbers.Integral else float(value)


def whole_number(what: str, value, least: int) -> int:
    """``value`` as an int of at least ``least``; ConfigError naming ``what`` otherwise."""
    return checked_number(what, value, numbers.Integral, lambda v: v >= least, f"a whole number of at least {least}")


def positive_int(what: str, value) -> int:
    """``value`` as an int above 0; ConfigError naming ``what`` otherwise."""
    return checked_number(what, value, numbers.Integral, lambda v: v > 0, "a positive integer")


def positive_real(what: str, value) -> float:
    """``value`` as a finite float above 0; ConfigError naming ``what`` otherwise."""
    return checked_number(what, value, numbers.Real, lambda v: 0 < v < math.inf, "a positive finite number")


def fraction(what: str, value) -> float:
    """``value`` as a float in [0, 1); ConfigError naming ``what`` otherwise."""
    return checked_number(what, value, numbers.Real, lambda v: 0 <= v < 1, "a number in [0, 1)")


def acceptable_error_or_none(value) -> float | None:
    """The stop rule's ``acceptable_error``: an error rate in [0, 1), or None for none."""
    if value is None:
        return None
    return checked_number("acceptable_error", value, numbers.Real, lambda v: 0 <= v < 1,
                          "an error rate, a fraction in [0, 1) such as 0.02 for 2 %")


def class_labels(labels, rows: int, classes: int) -> np.ndarray:
    """``labels`` as an integer array of one class index 0..classes-1 for each of ``rows`` rows;
    ConfigError otherwise (one-hot rows are named as such)."""
    labels = np.asarray(labels)
    if labels.shape != (rows,) or (labels.size and labels.dtype.kind not in "iu"):
        raise ConfigError(f"the labels must be integer class labels 0..{classes - 1}, one per row: "
                          f"got {labels.dtype} data of shape {labels.shape} for {rows} rows{labels_hint(labels, rows)}")
    if rows and not (0 <= labels.min() and labels.max() < classes):
        raise ConfigError(f"the labels must be class labels 0..{classes - 1} (one per output), "
                          f"got labels from {labels.min()} to {labels.max()}{range_hint(labels, classes)}")
    return labels


def labels_hint(labels: np.ndarray, rows: int) -> str:
    """How labels that are not one integer class index per row may be made so, where the mistake
    is a common one (one-hot rows, class names, whole numbers as floats); "" otherwise."""
    if labels.ndim == 2 and labels.shape == (rows, 1):
        whole = labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels % 1 == 0).all()
        return f" (one label per row in a column? pass labels.ravel(){'.astype(int)' if whole else ''})"
    if labels.ndim == 2 and labels.shape[0] == rows:
        if labels.dtype.kind in "biuf" and np.isin(labels, (0, 1)).all() and (labels.sum(axis=1) == 1).all():
            return " (one-hot rows? pass their argmax(axis=1))"
        return (" (training and error rates take one class label per row; other targets, such as regression, "
                "train with Trainer.step(X, Y))")
    if labels.ndim == 1 and labels.dtype.kind in "USO":
        return (" (class names? names, labels = np.unique(labels, return_inverse=True) gives the names and each "
                "row's index)")
    if labels.ndim == 1 and labels.dtype.kind == "f" and np.isfinite(labels).all() and (labels % 1 == 0).all():
        return " (whole numbers as floats? labels.astype(int))"
    return ""


def range_hint(labels: np.ndarray, classes: int) -> str:
    """For integer labels outside 0..classes-1: a hint where they run 1..classes (counted from 1)."""
    return "; counted from 1? use labels - 1" if labels.min() == 1 and labels.max() == classes else ""


def count(n: int, noun: str) -> str:
    """``n`` and ``noun`` in words: "1 epoch", "3 epochs"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def listed(classes) -> str:
    """The first dozen of ``classes``, for a message."""
    return f"{', '.join(map(str, classes[:12]))}{', ...' if len(classes) > 12 else ''}"


def as_array(what: str, values) -> np.ndarray:
    """``values`` as a NumPy array; ConfigError, naming ``what``, for nested lists of different
    lengths (which NumPy refuses with a ValueError about sequences)."""
    try:
        return np.asarray(values)
    except ValueError:
        raise ConfigError(f"{what} must be rows of one length each (an array, or lists of equal length); "
                          f"some rows here are longer than others") from None


def floating_point(what: str, values: np.ndarray, name: str) -> None:
    """ConfigError unless ``values`` (``what``, written ``name`` in the advice) are floating-point:
    image bytes go in scaled, as MNIST's are."""
    if values.dtype.kind != "f":
        raise ConfigError(f"{what} must be floating-point values, got {values.dtype} (image bytes: "
                          f"{name}.astype(np.float32) / 255, as MNIST's are scaled; other numbers: "
                          f"{name}.astype(np.float32))")


def seed_or_none(value) -> int | None:
    """A random generator's seed: a whole number >= 0, or None for a random one."""
    if value is None:
        return None
    return checked_number("seed", value, numbers.Integral, lambda v: v >= 0,
                          "a whole number >= 0 (or None for a random one)")


def path_of(what: str, value) -> Path:
    """``value`` as a Path ("~" expanded); ConfigError unless it is a str or os.PathLike, and not
    empty (which would mean the current folder)."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ConfigError(f"{what} must be a path (a str or pathlib.Path, not empty), got {value!r}")
    return home_expanded(value)


def home_expanded(path: str | os.PathLike) -> Path:
    """``path`` with a leading "~" or "~user" expanded; ConfigError where there is no such user."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # pathlib's "Could not determine home directory."
        user = Path(path).parts[0]
        raise ConfigError(f"{path}: this machine has no user {user[1:]!r} whose home {user} could mean; give the "
                          f"path in full") from None


def real_numbers(what: str, values: np.ndarray) -> np.ndarray:
    """``values``, unless they are not real numbers (text, objects, complex numbers): ConfigError."""
    if values.dtype.kind not in "biuf":
        raise ConfigError(f"{what} must be real numbers, got {values.dtype} values")
    return values


def instance_of(name: str, value, kind: type, example: str, optional: bool = False):
    """``value`` if it is a ``kind`` (or None, if ``optional``); else ConfigError, saying how to make one."""
    if isinstance(value, kind) or (optional and value is None):
        return value
    given = f"the class {value.__name__}, not an instance" if isinstance(value, type) else repr(value)
    raise ConfigError(f"{name} must be {with_article(kind.__name__)}{' or None' if optional else ''}, such as "
                      f"{example}; got {given}")


def with_article(noun: str) -> str:
    """``noun`` after "a" or "an": "an activation", "a cost"."""
    return f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}"


class Checked:
    """An attribute whose every assignment (in ``__init__`` and after it) goes through
    ``check(name, value)``, which returns the value to keep or raises ConfigError: a setting
    changed on an object after it was built is checked as one given to it."""

    def __init__(self, check: Callable):
        self.check = check

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.slot = name, "_" + name

    def __get__(self, obj, owner=None):
        return self if obj is None else getattr(obj, self.slot)

    def __set__(self, obj, value) -> None:
        setattr(obj, self.slot, self.check(self.name, value))


def json_object(what: str, value, example: str) -> dict:
    """``value`` as the JSON object it will be written as (a copy): a dict by string keys of what
    JSON holds (strings, finite numbers, booleans, None, lists and dicts of them, by string keys
    too); ConfigError otherwise, naming ``what`` and showing ``example``."""
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a dict of JSON values by name, such as {example}, got {value!r:.80}")
    try:
        key = _key_not_text(value)
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply to be written as JSON") from None
    if key is not None:  # JSON would write it as text, and a key of that text would replace it
        raise ConfigError(f"{what} must be a dict of JSON values by name, such as {example}, and so must the dicts "
                          f"within it: got the key {key!r}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:  # an object JSON lacks, NaN or infinity, a circular reference
        raise ConfigError(f"{what} must hold only what JSON can (strings, finite numbers, booleans, None, lists "
                          f"and dicts of them): {e}") from None
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply to be written as JSON") from None


def _key_not_text(value):
    """The first key of a dict within ``value`` (itself included) that is not a string; None if none."""
    if isinstance(value, dict):
        keys = [key for key in value if not isinstance(key, str)]
        if keys:
            return keys[0]
        values = value.values()
    elif isinstance(value, (list, tuple)):
        values = value
    else:
        return None
    return next((key for item in values if (key := _key_not_text(item)) is not None), None)


def float_dtype(dtype) -> np.dtype:
    """``dtype`` (np.float32, "float64", ...) as a NumPy dtype; ConfigError unless float32 or float64."""
    try:
        dtype = np.dtype(dtype) if dtype is not None else dtype  # (NumPy's np.dtype(None) is float64)
    except TypeError:  # a name NumPy does not know, such as "foo": refused below as int is
        pass
    if not isinstance(dtype, np.dtype) or dtype not in (np.float32, np.float64):
        raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")
    return dtype
