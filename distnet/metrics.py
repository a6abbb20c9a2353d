"""Classification metrics and their text form: error rate, per-class accuracy, confusion matrix."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import class_labels
from .data import Dataset
from .errors import ConfigError
from .nn import Network
from .nn.network import check_scorable


@dataclass
class Evaluation:
    """A network's results on a labelled data set."""

    error_rate: float
    confusion: np.ndarray  # confusion[true, predicted] = count
    classes: tuple[str, ...]

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
        lines = [f"error rate {100 * self.error_rate:.2f}% ({int(self.confusion.sum() - np.trace(self.confusion))} "
                 f"of {int(self.confusion.sum())} wrong)", "", "per-class accuracy:"]
        labels = [class_label(self.classes, i) for i in range(len(self.classes))]
        width = max(len(label) for label in labels)
        for label, accuracy, total in zip(labels, self.per_class_accuracy, self.confusion.sum(axis=1)):
            lines.append(f"  {label:<{width}}  {100 * accuracy:6.2f}%  ({int(total)} samples)")
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


def evaluate(network: Network, images, labels: np.ndarray | None = None,
             classes: tuple[str, ...] | None = None) -> Evaluation:
    """Error rate, per-class accuracy and confusion matrix of ``network`` on labelled images
    (``images`` may be a :class:`~distnet.Dataset`, which brings its labels and class names)."""
    if isinstance(images, Dataset) and labels is None:
        images, labels, classes = images.images, images.labels, classes or images.classes
    if labels is None:
        raise ConfigError("the labels are missing: evaluate(network, images, labels), or evaluate(network, dataset)")
    return evaluation_of(network.predict(images), labels, classes)


def evaluation_of(outputs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...] | None = None) -> Evaluation:
    """The :class:`Evaluation` of outputs already computed (one row per sample)."""
    k = outputs.shape[1]
    if classes is not None and len(classes) != k:
        raise ConfigError(f"the network gives {k} outputs, one per class, and the data has {len(classes)} classes "
                          f"({', '.join(map(str, classes[:12]))}{', ...' if len(classes) > 12 else ''}): evaluate it "
                          f"on data of the classes it was trained on")
    labels = class_labels(labels, len(outputs), k)
    if not len(labels):
        raise ConfigError("an evaluation needs at least one sample, and the data has none")
    check_scorable(outputs)
    predicted = outputs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return Evaluation(float(np.mean(predicted != labels)), confusion,
                      tuple(classes) if classes else tuple(str(i) for i in range(k)))


def confident_mistakes(outputs: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the (at most) ``count`` misclassified samples whose predicted class had the
    highest output: the network's surest mistakes, surest first."""
    predicted = outputs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != np.asarray(labels))
    confidence = outputs[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def recognized(outputs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Which samples some class reaches ``threshold`` for (all of them without a threshold).

    As the article suggests for Softmax outputs: where no class is probable enough, say that
    nothing was recognised rather than guess.
    """
    if threshold is None:
        return np.ones(len(outputs), dtype=bool)
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
        return {"threshold": self.threshold, "total": self.total, "recognized": self.recognized,
                "not_recognized": self.total - self.recognized, "wrong": self.wrong,
                "error_rate_recognized": self.error_rate}

    def report(self) -> str:
        return (f"threshold {self.threshold:g}: {self.recognized:,} of {self.total:,} recognized "
                f"({100 * self.recognized / max(self.total, 1):.2f}%), {self.wrong:,} of them wrong "
                f"({100 * self.error_rate:.2f}%); {self.total - self.recognized:,} not recognized")


def recognition(outputs: np.ndarray, labels: np.ndarray, threshold: float) -> Recognition:
    """How many samples reach ``threshold`` for some class, and how many of those are wrong."""
    sure = recognized(outputs, threshold)
    wrong = (outputs.argmax(axis=1) != class_labels(labels, len(outputs), outputs.shape[1])) & sure
    return Recognition(threshold, len(outputs), int(sure.sum()), int(wrong.sum()))


def probability_table(output: np.ndarray, classes: tuple[str, ...], marks: dict[int, str] | None = None) -> list[str]:
    """One sample's outputs per class as the article's table (``Class P`` ... ``Σ = 1.0``), with
    an optional note after some rows (e.g. ``{7: "predicted"}``)."""
    marks = marks or {}
    names = [class_label(classes, i) for i in range(len(classes))]
    width = max(5, *(len(name) for name in names))
    lines = [f"{'class':<{width}}  P"]
    for i, (name, p) in enumerate(zip(names, output)):
        note = f"  <- {marks[i]}" if i in marks else ""
        lines.append(f"{name:<{width}}  {p:.3f}{note}")
    lines.append(f"{'Σ':<{width}}  {float(np.sum(output)):.3f}")
    return lines
