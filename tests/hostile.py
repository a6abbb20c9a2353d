"""Hostile content for the robustness tests: an object that runs code when unpickled, and JSON
values nested deeper than a recursive encoder can go."""
from __future__ import annotations

from pathlib import Path


class PicklePayload:
    """Unpickling this creates the marker file: proof that pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def deeply_nested(depth: int) -> dict:
    """A dict holding a dict holding ... ``depth`` levels down."""
    nested = {}
    for _ in range(depth):
        nested = {"inner": nested}
    return nested
