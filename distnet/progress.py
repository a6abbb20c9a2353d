"""Progress reporting for training: silent, a terminal view, or JSON lines for scripts."""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from typing import TYPE_CHECKING, TextIO

from .checks import count, positive_int, positive_real
from .errors import ConfigError

if TYPE_CHECKING:
    from .step_stats import StepStats
    from .fit_result import FitResult


class Reporter:
    """Receives training events; this base class ignores them (the silent reporter)."""

    def on_start(self, info: dict) -> None:
        """Training starts or resumes. ``info``: steps_per_epoch, epochs (at most), batch_size,
        distributed, workers (0 in one process), shards, first_epoch (1-based; > 1 on a resume),
        first_step (the steps of first_epoch done before: > 0 on a resume within an epoch),
        parameters (their number), sizes, l2, the specs of the optimizer (with its base
        learning rate), schedule and augmentation (None for none), and largest_input (the largest
        absolute value in the training inputs). ``info``, like the stats of :meth:`on_steps` and the
        record of :meth:`on_evaluation`, is the reporter's own copy, to keep or change."""

    def on_steps(self, epoch: int, step: int, steps: int, stats: "StepStats", seconds: float) -> None:
        """After each chunk of steps: ``step`` of the ``steps`` steps of ``epoch`` (1-based) are done.
        ``stats`` sums cost, correct and samples over the epoch's steps so far; ``seconds`` is the
        time since the epoch began (in this session, on a resume)."""

    def on_evaluation(self, record: dict) -> None:
        """After an evaluation, the record the run's history keeps: epoch, train_error, train_cost (per
        sample), with a validation set validation_error, best_error and best_epoch, then learning_rate,
        epoch_seconds and elapsed_seconds (training time so far, earlier sessions included)."""

    def on_end(self, result: "FitResult") -> None:
        """The run ended, with the :class:`~distnet.fit_result.FitResult` that fit returns (also when a
        resume found it already ended: ``result.already_ended``)."""

    def on_recovery(self, what: str, failures: int, max_failures: int) -> None:
        """A distributed run recovered from a failure: ``what`` was lost, and when (as the trainer's
        ``failures`` lists it, such as "worker 1 (pid 123) lost at epoch 5, step 40"), and its
        actors were replaced; or a step stalled with every actor answering ("a step stalled at epoch
        5, step 40, every actor answering"), and the steps started again. ``failures`` counts the
        failures so far in this session of the run, of the ``max_failures`` it recovers from. (A
        reporter of your own without this method is not told.)"""


# How a failure that lost no actor begins: a step that hung with every actor answering.
STALLED = "a step stalled"


class TerminalReporter(Reporter):
    """A progress bar per epoch (redrawn in place on a terminal) and one line per evaluation, on
    ``stream`` (stderr by default, so that results on stdout stay apart).

    The bar shows samples per second and the running train error of the epoch (on the augmented
    images when the run augments); an evaluation line marks a new best with ``*`` and shows the
    learning rate when a schedule changes it, and the pace in epochs per minute since the evaluation
    before (a first epoch's compiling or warming up does not weigh on later ones). The first
    evaluation whose train error is no better than guessing adds a hint to check the learning rate
    (a far too high one saturates the outputs without ever overflowing, so the run does not count
    as diverged), and the inputs' scale where they go beyond [-1, 1] (such as pixels left at
    0-255). Each failure a distributed run recovers from is one ``recovered: ...`` line.

    A stream that is not a terminal (a log file, a job's output) gets no bar: instead, the bar's
    counts as a line of their own once ``log_every`` seconds have passed without a line, so that a
    log shows the run alive between evaluations minutes apart.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 24, log_every: float = 60.0):
        self.stream = _text_stream(stream, sys.stderr)
        self.width = positive_int("the progress bar's width", width)
        self.log_every = positive_real("log_every", log_every)
        self.interactive = callable(getattr(self.stream, "isatty", None)) and self.stream.isatty()
        self._last_look = (time.perf_counter(), 0)  # (when, epoch) of the start or the last evaluation
        self._last_line = self._last_look[0]  # when the last line was written
        self._resumed_at = (1, 0)  # (epoch, step) where this session's steps begin
        self._batch_size = 0
        self._scheduled = False
        self._classes = 0
        self._largest_input = 0.0
        self._hinted = False

    def on_start(self, info: dict) -> None:
        # A resume within an epoch has that epoch's first steps done: the pace counts only the rest.
        done = info["first_epoch"] - 1 + info["first_step"] / info["steps_per_epoch"]
        self._last_look = (time.perf_counter(), done)
        self._last_line = self._last_look[0]
        self._resumed_at = (info["first_epoch"], info["first_step"])
        self._batch_size = info["batch_size"]
        self._classes = info["sizes"][-1] if info.get("sizes") else 0
        self._largest_input = info.get("largest_input", 0.0)
        self._hinted = False  # once per fit
        self._scheduled = bool(info.get("schedule"))
        sizes = "-".join(map(str, info["sizes"])) + ", " if info.get("sizes") else ""
        where = count(info["workers"], "worker") if info.get("distributed") else "in this process"
        resuming = ""
        if info["first_epoch"] > info["epochs"]:  # trained to the end, but for the last epoch's evaluation
            resuming = f", resuming to evaluate epoch {info['epochs']}, the last"
        elif info["first_epoch"] > 1 or info["first_step"] > 0:  # within epoch 1 too (--checkpoint-every)
            at = f" at step {info['first_step']}" if info["first_step"] else ""
            resuming = f", resuming in epoch {info['first_epoch']}{at}"
        self._print(f"training {sizes}{info['parameters']:,} parameters, {where}, batch "
                    f"{info['batch_size']}, {count(info['steps_per_epoch'], 'step')} per epoch, at most "
                    f"{count(info['epochs'], 'epoch')}{resuming}")
        if info.get("optimizer"):
            self._print(describe_training(info))

    def on_steps(self, epoch: int, step: int, steps: int, stats: "StepStats", seconds: float) -> None:
        if not self.interactive:
            now = time.perf_counter()
            if now - self._last_line >= self.log_every:
                self._last_line = now
                self._print(f"epoch {epoch:>3} {self._counts(epoch, step, steps, stats, seconds)}")
            return
        counts = self._counts(epoch, step, steps, stats, seconds)
        # A line wider than the terminal wraps, and each redraw (\r goes back to the start of the
        # last row only) would leave the rows before it behind: the bar narrows, goes, and then the
        # line's end is cut.
        columns = _columns(self.stream) - 1
        width = min(self.width, columns - len(f"epoch {epoch:>3} [] {counts}"))
        filled = round(width * step / steps)
        bar = f"[{'#' * filled}{'-' * (width - filled)}] " if width >= 5 else ""
        self.stream.write("\r" + f"epoch {epoch:>3} {bar}{counts}"[:columns])
        self.stream.flush()

    def _counts(self, epoch: int, step: int, steps: int, stats: "StepStats", seconds: float) -> str:
        # every step trains one full batch; a resume's steps done before were not timed here
        steps_timed = step - (self._resumed_at[1] if epoch == self._resumed_at[0] else 0)
        rate = steps_timed * self._batch_size / seconds if seconds > 0 else 0.0
        return f"{step}/{steps}  {rate:,.0f} samples/s  train error {100 * stats.error_rate:5.2f}%"

    def on_evaluation(self, record: dict) -> None:
        (then, epoch_then), now = self._last_look, time.perf_counter()
        minutes = (now - then) / 60
        pace = (record["epoch"] - epoch_then) / minutes if minutes > 0 else 0.0  # since the last look: the pace now
        self._last_look = (now, record["epoch"])
        self._last_line = now
        # (no pace for an evaluation owed by a resume, of an epoch trained before it)
        pace_shown = f"  {pace:.1f} epochs/min" if record["epoch"] > epoch_then else ""
        rate = f"  lr {record['learning_rate']:.2e}" if self._scheduled and "learning_rate" in record else ""
        if "validation_error" in record:
            improved = record["best_epoch"] == record["epoch"]
            scores = (f"validation error {100 * record['validation_error']:5.2f}%  best "
                      f"{100 * record['best_error']:5.2f}% (epoch {record['best_epoch']}){'*' if improved else ' '}")
        else:
            scores = f"train cost {record['train_cost']:.4g}"
        self._print(f"epoch {record['epoch']:>3}  train error {100 * record['train_error']:5.2f}%  {scores}"
                    f"{rate}{pace_shown}")
        guessing = 1 - 1 / self._classes if self._classes > 1 else 1.0
        if not self._hinted and record["train_error"] >= 0.95 * guessing:
            self._hinted = True
            self._print(f"hint: a train error of {100 * record['train_error']:.2f}% is no better than guessing "
                        f"({100 * guessing:.0f}% with {self._classes} classes); if it stays there, the network is "
                        f"not learning: check the learning rate ({record['learning_rate']:g} now)"
                        + (f", and the inputs' scale: they reach {self._largest_input:g}, where networks like "
                           f"this one learn from inputs in [0, 1] (divide pixels by 255)"
                           if self._largest_input > 1 else ""))

    def on_recovery(self, what: str, failures: int, max_failures: int) -> None:
        done = "the steps started again" if what.startswith(STALLED) else "replaced"  # (a stall lost nothing)
        self._last_line = time.perf_counter()
        self._print(f"recovered: {what}; {done} ({failures} of {count(max_failures, 'failure')} allowed)")

    def on_end(self, result: "FitResult") -> None:
        best = (f"best validation error {100 * result.best_error:.2f}% at epoch {result.best_epoch}"
                if math.isfinite(result.best_error) else "no validation set, so the last network is kept")
        self._print(f"stopped after {count(result.epochs, 'epoch')} ({result.stop_reason.replace('_', ' ')}), "
                    f"{result.seconds:.1f} s of training; {best}")

    def _print(self, line: str) -> None:
        if self.interactive:
            line = "\r\033[K" + line
        print(line, file=self.stream, flush=True)


def _columns(stream: TextIO) -> int:
    """How many characters a line of ``stream``'s terminal holds: $COLUMNS where set above 0 (as for
    :func:`shutil.get_terminal_size`), else the terminal's own, else 80."""
    if os.environ.get("COLUMNS", "").isdigit() and int(os.environ["COLUMNS"]) > 0:
        return int(os.environ["COLUMNS"])
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    return columns or shutil.get_terminal_size().columns  # 0: a terminal that does not say


def describe_training(info: dict) -> str:
    """One line on how the run learns: optimizer, learning rate, schedule, augmentation."""
    optimizer = dict(info["optimizer"])
    parts = [f"{optimizer.pop('name')} (learning rate {optimizer.pop('learning_rate'):g}"
             + "".join(f", {k} {v:g}" for k, v in optimizer.items() if isinstance(v, (int, float))) + ")"]
    if info.get("l2"):
        parts.append(f"L2 {info['l2']:g}")
    if info.get("schedule"):
        schedule = dict(info["schedule"])
        parts.append(f"{schedule.pop('name')} schedule" +
                     (f" ({', '.join(f'{k} {v:g}' for k, v in schedule.items())})" if schedule else ""))
    augmentation = info.get("augmentation")
    if augmentation:
        parts.append(f"random affine augmentation (±{augmentation['rotation']:g}°, "
                     f"±{100 * augmentation['scale']:g}% scale, ±{augmentation['shift']:g} px)")
    return "learning with " + ", ".join(parts)


def _text_stream(stream, default: TextIO) -> TextIO:
    """``stream`` (``default`` for None), or ConfigError for what cannot be written to."""
    if stream is None:
        return default
    if not all(callable(getattr(stream, method, None)) for method in ("write", "flush")):
        raise ConfigError(f"a reporter writes to a text stream, such as sys.stdout or open(path, 'w'), not {stream!r}")
    return stream


class JsonLinesReporter(Reporter):
    """One JSON object per event on ``stream`` (stdout by default), for scripts: ``start``,
    ``evaluation``, ``recovery`` and ``end`` (not :meth:`Reporter.on_steps`, the progress bar's,
    thousands a run)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = _text_stream(stream, sys.stdout)

    def _emit(self, event: str, data: dict) -> None:
        print(json.dumps({"event": event, **data}), file=self.stream, flush=True)

    def on_start(self, info: dict) -> None:
        self._emit("start", info)

    def on_evaluation(self, record: dict) -> None:
        self._emit("evaluation", record)

    def on_recovery(self, what: str, failures: int, max_failures: int) -> None:
        self._emit("recovery", {"what": what, "failures": failures, "max_failures": max_failures})

    def on_end(self, result: "FitResult") -> None:
        best_error = result.best_error if math.isfinite(result.best_error) else None  # NaN is not JSON
        self._emit("end", {"epochs": result.epochs, "best_error": best_error,
                           "best_epoch": result.best_epoch, "stop_reason": result.stop_reason,
                           "seconds": result.seconds})
