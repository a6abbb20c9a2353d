"""Hostile file content for the robustness tests: an object that runs code when unpickled."""
from __future__ import annotations

from pathlib import Path


class PicklePayload:
    """Unpickling this creates the marker file: proof that pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))
