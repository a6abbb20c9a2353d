"""Classification metrics and their text form: error rate, per-class accuracy, confusion matrix."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .checks import checked_number, class_labels, count, listed, whole_number
from .data import Dataset
from .data.datasets import checked_class_names
from .errors import ConfigError
from .nn import Network
from .nn.network import check_scorable, unscorable_rows


@dataclass
class Evaluation:
    """A network's results on a labelled data set."""

    error_rate: float
    confusion: np.ndarray  # confusion[true, predicted] = count
    classes: tuple[str, ...]

    @property
    def wrong(self) -> int:
        """How many samples were misclassified."""
        return int(self.confusion.sum() - np.trace(self.confusion))

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """For each class, the fraction of its samples classified right (0 for a class without any)."""
        totals = self.confusion.sum(axis=1)
        return np.divide(np.diag(self.confusion), totals, out=np.zeros(len(totals)), where=totals > 0)

    def to_dict(self) -> dict:
        """A JSON-able form: error rate, per-class accuracy by class name, confusion matrix, classes."""
        return {"error_rate": self.error_rate,
                "per_class_accuracy": dict(zip(self.classes, self.per_class_accuracy.round(6).tolist())),
                "confusion": self.confusion.tolist(), "classes": list(self.classes)}

    def report(self) -> str:
        """Error rate, per-class accuracy and the confusion matrix as aligned text."""
        lines = [f"error rate {100 * self.error_rate:.2f}% ({self.wrong} of {int(self.confusion.sum())} wrong)", "",
                 "per-class accuracy:"]
        labels = [class_label(self.classes, i) for i in range(len(self.classes))]
        width = max(len(label) for label in labels)
        for label, accuracy, total in zip(labels, self.per_class_accuracy, self.confusion.sum(axis=1)):
            lines.append(f"  {label:<{width}}  {100 * accuracy:6.2f}%  ({count(int(total), 'sample')})")
        lines += ["", "confusion matrix (rows: true class, columns: predicted):"]
        cell = max(5, len(str(int(self.confusion.max()))) + 1)
        lines.append(" " * (width + 2) + "".join(f"{i:>{cell}}" for i in range(len(self.classes))))
        for label, row in zip(labels, self.confusion):
            lines.append(f"  {label:<{width}}" + "".join(f"{int(v):>{cell}}" for v in row))
        return "\n".join(lines)


def class_label(classes: tuple[str, ...], index: int) -> str:
    """Class ``index`` as the tables show it: its number first, which heads its column ("7" for a
    digit, "6 Shirt" for a named class)."""
    name = classes[index]
    return name if name == str(index) else f"{index} {name}"


def evaluate(network: Network, images: ArrayLike | Dataset, labels: ArrayLike | None = None,
             classes: tuple[str, ...] | int | None = None) -> Evaluation:
    """Error rate, per-class accuracy and confusion matrix of ``network`` on labelled images
    (``images`` may be a :class:`~distnet.Dataset`, which brings its labels and class names).
    ``classes``: the class names in label order (or how many there are), as a Dataset takes
    them; by default the Dataset's, else "0", "1", ..."""
    if isinstance(images, Dataset):
        if labels is not None:
            raise ConfigError("a Dataset brings its labels: evaluate(network, dataset), or evaluate(network, images, "
                              "labels) for arrays")
        images, labels, classes = images.images, images.labels, images.classes if classes is None else classes
    if labels is None:
        raise ConfigError("the labels are missing: evaluate(network, images, labels), or evaluate(network, dataset)")
    classes = None if classes is None else checked_class_names(classes, "evaluate")
    return evaluation_of(network.predict(images), labels, classes)


def evaluation_of(outputs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...] | None = None) -> Evaluation:
    """The :class:`Evaluation` of outputs already computed (one row per sample)."""
    outputs, labels = _scored(outputs, labels, classes)
    if not len(labels):
        raise ConfigError("an evaluation needs at least one sample, and the data has none")
    k = outputs.shape[1]
    predicted = outputs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return Evaluation(float(np.mean(predicted != labels)), confusion,
                      tuple(classes) if classes else tuple(str(i) for i in range(k)))


def _outputs(outputs: ArrayLike) -> np.ndarray:
    """``outputs`` as an array of one row per sample and one column per class; ConfigError otherwise."""
    outputs = np.asarray(outputs)
    if outputs.ndim != 2 or not outputs.shape[1] or outputs.dtype.kind not in "iuf":
        hint = " (one sample's outputs? pass them as outputs[None, :])" if outputs.ndim == 1 else ""
        raise ConfigError(f"the outputs must be a 2-D array of numbers, one row per sample and one column per "
                          f"class (as network.predict(X) gives them): got {outputs.dtype} data of shape "
                          f"{outputs.shape}{hint}")
    return outputs


def _scored(outputs: ArrayLike, labels: ArrayLike,
            classes: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``outputs`` (see :func:`_outputs`) with finite values in every row, and ``labels`` as one
    class index per row; ConfigError otherwise, and if ``classes`` names another number of classes."""
    outputs = _outputs(outputs)
    k = outputs.shape[1]
    # Before the labels: data of other classes has labels beyond the outputs too, and this says why.
    if classes is not None and len(classes) != k:
        raise ConfigError(f"the network gives {k} outputs, one per class, and the data has {len(classes)} classes "
                          f"({listed(classes)}): evaluate it on data of the classes it was trained on")
    labels = class_labels(labels, len(outputs), k)
    check_scorable(unscorable_rows(outputs), len(outputs))
    return outputs, labels


def confident_mistakes(outputs: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the (at most) ``count`` misclassified samples whose predicted class had the
    highest output: the network's surest mistakes, surest first."""
    outputs, labels = _scored(outputs, labels)
    count = whole_number("the count of mistakes", count, 0)
    predicted = outputs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = outputs[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def recognized(outputs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Which samples some class reaches ``threshold`` for (all of them without a threshold).

    As the article suggests for Softmax outputs: where no class is probable enough, say that
    nothing was recognised rather than guess.
    """
    outputs = _outputs(outputs)
    if threshold is None:
        return np.ones(len(outputs), dtype=bool)
    # The range of the command line's --threshold: above 1 (or NaN) no sample would be recognised.
    threshold = checked_number("the threshold", threshold, numbers.Real, lambda v: 0 < v <= 1,
                               "a probability in (0, 1], such as 0.9 (or None for no threshold)")
    return outputs.max(axis=1) >= threshold


@dataclass
class Recognition:
    """How a threshold splits a labelled set: recognised (right or wrong) and not recognised."""

    threshold: float
    total: int
    recognized: int
    wrong: int  # among the recognised

    @property
    def error_rate(self) -> float:
        """Errors among the recognised samples."""
        return self.wrong / self.recognized if self.recognized else 0.0

    def to_dict(self) -> dict:
        """A JSON-able form: threshold, total, recognized, not_recognized, wrong and error_rate_recognized."""
        return {"threshold": self.threshold, "total": self.total, "recognized": self.recognized,
                "not_recognized": self.total - self.recognized, "wrong": self.wrong,
                "error_rate_recognized": self.error_rate}

    def report(self) -> str:
        """One line: how many samples the threshold recognizes, how many of those are wrong, and how many not."""
        return (f"threshold {self.threshold:g}: {self.recognized:,} of {self.total:,} recognized "
                f"({100 * self.recognized / max(self.total, 1):.2f}%), {self.wrong:,} of them wrong "
                f"({100 * self.error_rate:.2f}%); {self.total - self.recognized:,} not recognized")


def recognition(outputs: np.ndarray, labels: np.ndarray, threshold: float) -> Recognition:
    """How many samples reach ``threshold`` for some class, and how many of those are wrong."""
    if threshold is None:
        raise ConfigError("a recognition needs a threshold, a probability in (0, 1] such as 0.9; without one "
                          "every sample counts as recognized: evaluation_of(outputs, labels) gives their error rate")
    outputs, labels = _scored(outputs, labels)
    sure = recognized(outputs, threshold)
    wrong = (outputs.argmax(axis=1) != labels) & sure
    return Recognition(float(threshold), len(outputs), int(sure.sum()), int(wrong.sum()))


def probability_table(output: np.ndarray, classes: tuple[str, ...] | None = None,
                      marks: dict[int, str] | None = None) -> list[str]:
    """One sample's outputs per class as the article's table (``Class P`` ... ``Σ = 1.0``), with
    an optional note after some rows (e.g. ``{7: "predicted"}``); the classes are named "0".."k-1"
    without ``classes``."""
    output = np.asarray(output)
    if output.ndim != 1 or not output.size:
        raise ConfigError(f"a probability table shows one sample's outputs, a 1-D array of one value per class "
                          f"(such as outputs[i]): got an array of shape {output.shape}")
    k = len(output)
    classes = tuple(str(i) for i in range(k)) if classes is None else classes
    if len(classes) != k:
        raise ConfigError(f"classes must name each of the output's {k} classes, got {len(classes)} "
                          f"({listed(classes)}): give one name per output, or None for 0..{k - 1}")
    marks = marks or {}
    outside = [key for key in marks if key not in range(k)]
    if outside:
        raise ConfigError(f"the marks are keyed by class index 0..{k - 1}, such as {{{k - 1}: 'label'}}; "
                          f"got {outside[0]!r}")
    names = [class_label(classes, i) for i in range(k)]
    width = max(5, *(len(name) for name in names))
    lines = [f"{'class':<{width}}  P"]
    for i, (name, p) in enumerate(zip(names, output)):
        note = f"  <- {marks[i]}" if i in marks else ""
        lines.append(f"{name:<{width}}  {p:.3f}{note}")
    lines.append(f"{'Σ':<{width}}  {float(np.sum(output)):.3f}")
    return lines
