"""What a fit returns: the best network, the history, why it stopped (:class:`FitResult`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .nn import Network


@dataclass(repr=False)
class FitResult:
    """What ``fit`` of a :class:`~distnet.trainer.Trainer` or a
    :class:`~distnet.distributed.DistributedTrainer` returns (its repr counts the ``history``'s
    records as ``evaluations``).

    ``best_network`` is the network of the lowest validation error (a copy: the trainer's own
    ``network`` holds the last parameters), ``best_error`` that error and ``best_epoch`` its
    epoch; without a validation set nothing is scored, ``best_network`` is the last one and
    ``best_error`` is NaN. ``epochs`` counts the epochs trained in all, ``stop_reason`` is
    ``"early_stop"`` (the stop rule) or ``"max_epochs"``, ``history`` holds one record per
    evaluation (epoch, train error and cost, validation error and best so far when there is a
    validation set, learning rate, seconds), ``run_dir`` the run directory if any, ``seconds`` the
    training time (steps, evaluations, checkpoints; not the start of Ray and the actors) over every
    session of a resumed run, and ``already_ended`` says a resume found the run ended and trained
    nothing.
    """

    best_network: Network
    best_error: float
    best_epoch: int
    epochs: int
    stop_reason: str
    history: list[dict] = field(default_factory=list)
    run_dir: Path | None = None
    seconds: float = 0.0
    already_ended: bool = False

    def __repr__(self) -> str:
        return (f"FitResult(best_error={self.best_error:.4f}, best_epoch={self.best_epoch}, epochs={self.epochs}, "
                f"stop_reason={self.stop_reason!r}, evaluations={len(self.history)}, "
                f"run_dir={str(self.run_dir) if self.run_dir else None!r}, "
                f"seconds={self.seconds:.1f})")
