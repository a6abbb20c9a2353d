"""Classification metrics and their text form: error rate, per-class accuracy, confusion matrix."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nn import Network


@dataclass
class Evaluation:
    """A network's results on a labelled data set."""

    error_rate: float
    confusion: np.ndarray  # confusion[true, predicted] = count
    classes: tuple[str, ...]

    @property
    def per_class_accuracy(self) -> np.ndarray:
        totals = self.confusion.sum(axis=1)
        return np.divide(np.diag(self.confusion), totals, out=np.zeros(len(totals)), where=totals > 0)

    def to_dict(self) -> dict:
        return {"error_rate": self.error_rate,
                "per_class_accuracy": dict(zip(self.classes, self.per_class_accuracy.round(6).tolist())),
                "confusion": self.confusion.tolist(), "classes": list(self.classes)}

    def report(self) -> str:
        """Error rate, per-class accuracy and the confusion matrix as aligned text."""
        lines = [f"error rate {100 * self.error_rate:.2f}% ({int(self.confusion.sum() - np.trace(self.confusion))} "
                 f"of {int(self.confusion.sum())} wrong)", "", "per-class accuracy:"]
        width = max(len(c) for c in self.classes)
        for name, accuracy, total in zip(self.classes, self.per_class_accuracy, self.confusion.sum(axis=1)):
            lines.append(f"  {name:>{width}}  {100 * accuracy:6.2f}%  ({int(total)} samples)")
        lines += ["", "confusion matrix (rows: true class, columns: predicted):"]
        cell = max(5, len(str(int(self.confusion.max()))) + 1)
        lines.append(" " * (width + 2) + "".join(f"{i:>{cell}}" for i in range(len(self.classes))))
        for i, (name, row) in enumerate(zip(self.classes, self.confusion)):
            lines.append(f"  {name:>{width}}" + "".join(f"{int(v):>{cell}}" for v in row) + f"   ({i})")
        return "\n".join(lines)


def evaluate(network: Network, images: np.ndarray, labels: np.ndarray,
             classes: tuple[str, ...] | None = None) -> Evaluation:
    labels = np.asarray(labels)
    predicted = network.predict(images).argmax(axis=1)
    k = network.output_size
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return Evaluation(float(np.mean(predicted != labels)) if len(labels) else 0.0, confusion,
                      tuple(classes) if classes else tuple(str(i) for i in range(k)))
