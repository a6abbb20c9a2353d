"""Progress reporting for training: silent, a terminal view, or JSON lines for scripts."""
from __future__ import annotations

import json
import sys
import time
from typing import TextIO


class Reporter:
    """Receives training events; this base class ignores them (the silent reporter)."""

    def on_start(self, info: dict) -> None:
        pass

    def on_steps(self, epoch: int, step: int, steps: int, stats, seconds: float) -> None:
        """``stats`` sums cost, correct and samples over the epoch's steps so far."""

    def on_evaluation(self, record: dict) -> None:
        pass

    def on_end(self, result) -> None:
        pass


class TerminalReporter(Reporter):
    """A progress bar per epoch (redrawn in place on a terminal) and one line per evaluation."""

    def __init__(self, stream: TextIO | None = None, width: int = 24):
        self.stream = stream or sys.stderr
        self.width = width
        self.interactive = self.stream.isatty()
        self._started = time.perf_counter()
        self._epochs_at_start = 0

    def on_start(self, info):
        self._started = time.perf_counter()
        self._epochs_at_start = info["first_epoch"] - 1
        self._print(f"training {info['parameters']:,} parameters, {info['workers']} worker(s), batch "
                    f"{info['batch_size']}, {info['steps_per_epoch']} steps per epoch, at most "
                    f"{info['epochs']} epochs")

    def on_steps(self, epoch, step, steps, stats, seconds):
        if not self.interactive:
            return
        filled = round(self.width * step / steps)
        rate = stats.samples / seconds if seconds > 0 else 0.0
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\repoch {epoch:>3} [{bar}] {step}/{steps}  {rate:,.0f} samples/s  "
                          f"train error {100 * stats.error_rate:5.2f}%")
        self.stream.flush()

    def on_evaluation(self, record):
        minutes = (time.perf_counter() - self._started) / 60
        pace = (record["epoch"] - self._epochs_at_start) / minutes if minutes > 0 else 0.0
        self._print(f"epoch {record['epoch']:>3}  train error {100 * record['train_error']:5.2f}%  "
                    f"validation error {100 * record['validation_error']:5.2f}%  best "
                    f"{100 * record['best_error']:5.2f}% (epoch {record['best_epoch']})  "
                    f"{pace:.1f} epochs/min")

    def on_end(self, result):
        self._print(f"stopped after {result.epochs} epochs ({result.stop_reason.replace('_', ' ')}), "
                    f"{result.seconds:.1f} s; best validation error {100 * result.best_error:.2f}% "
                    f"at epoch {result.best_epoch}")

    def _print(self, line: str) -> None:
        if self.interactive:
            line = "\r\033[K" + line
        print(line, file=self.stream, flush=True)


class JsonLinesReporter(Reporter):
    """One JSON object per event on ``stream`` (stdout by default), for scripts."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def _emit(self, event: str, data: dict) -> None:
        print(json.dumps({"event": event, **data}), file=self.stream, flush=True)

    def on_start(self, info):
        self._emit("start", info)

    def on_evaluation(self, record):
        self._emit("evaluation", record)

    def on_end(self, result):
        self._emit("end", {"epochs": result.epochs, "best_error": result.best_error,
                           "best_epoch": result.best_epoch, "stop_reason": result.stop_reason,
                           "seconds": result.seconds})
