"""The run directory: what a training run leaves on disk.

    config.json           the run's configuration (network, optimizer, data, seed, workers, ...)
    history.jsonl         one JSON line per evaluation
    best.npz, best.json   the best network so far and when/how good it was (written on every
                          improvement, atomically)
    checkpoint.npz        the newest checkpoint; checkpoint.prev.npz the one before it
    summary.json          written at the end: test error, per-class accuracy, placement, timing
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from .checkpoint import Checkpoint
from .errors import ConfigError, ModelFormatError
from .io import write_json


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    history_path = property(lambda self: self.path / "history.jsonl")
    best_path = property(lambda self: self.path / "best.npz")
    checkpoint_path = property(lambda self: self.path / "checkpoint.npz")
    previous_checkpoint_path = property(lambda self: self.path / "checkpoint.prev.npz")
    summary_path = property(lambda self: self.path / "summary.json")

    def create(self, config: dict) -> None:
        """Start a new run here; refuses a folder that already holds a run."""
        if self.config_path.exists():
            raise ConfigError(f"{self.path} already holds a run; resume it with --resume {self.path} "
                              f"or choose another --run-dir")
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config_path, config)
        self.history_path.write_text("")

    def config(self) -> dict:
        try:
            return json.loads(self.config_path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{self.path} is not a run directory (no config.json)") from None
        except ValueError:
            raise ModelFormatError(f"{self.config_path}: not valid JSON") from None

    def append_history(self, record: dict) -> None:
        with open(self.history_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def rewrite_history(self, records: list[dict]) -> None:
        """Make history.jsonl match a checkpoint's history (after a resume)."""
        from .io import atomic_writer

        with atomic_writer(self.history_path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Write the newest checkpoint, keeping the one before as checkpoint.prev.npz."""
        if self.checkpoint_path.exists():
            os.replace(self.checkpoint_path, self.previous_checkpoint_path)
        checkpoint.save(self.checkpoint_path)

    def load_checkpoint(self) -> Checkpoint:
        """The newest readable checkpoint; a damaged newest one falls back, with a warning, to the
        previous one."""
        candidates = [p for p in (self.checkpoint_path, self.previous_checkpoint_path) if p.exists()]
        if not candidates:
            raise ConfigError(f"{self.path} has no checkpoint to resume from")
        errors = []
        for path in candidates:
            try:
                checkpoint = Checkpoint.load(path)
            except ModelFormatError as e:
                errors.append(str(e))
                continue
            if errors:
                warnings.warn(f"{errors[0]}; resuming from the previous checkpoint {path.name} instead")
            return checkpoint
        raise ModelFormatError("no usable checkpoint: " + "; ".join(errors))

    def write_summary(self, summary: dict) -> None:
        write_json(self.summary_path, summary)
