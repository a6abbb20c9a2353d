"""How many steps the training loop runs between two looks at progress (:class:`ChunkSizer`)."""
from __future__ import annotations

import math


class ChunkSizer:
    """How many steps the loop runs between two looks at progress (divergence checks, the
    progress bar, step checkpoints): about ``CHUNK_SECONDS`` of work, and never fewer than a
    tenth of an epoch.

    Each look costs a few calls (on Ray actors, a round trip each); the article's network runs an
    epoch in well under a second, where ten looks per epoch cost more than the progress is worth.
    Chunks never change the result: a step computes the same whichever chunk it falls in.
    """

    CHUNK_SECONDS = 1.0

    def __init__(self, steps_per_epoch: int):
        self.smallest = max(1, math.ceil(steps_per_epoch / 10))
        self.largest = steps_per_epoch
        self.size = self.smallest

    def end(self, start: int) -> int:
        """Where the chunk that begins at step ``start`` ends: ``size`` steps on, or at the epoch's
        end when less than half a chunk would be left after it (which would cost a whole look)."""
        stop = start + self.size
        return self.largest if self.largest - stop < self.size / 2 else stop

    def record(self, steps: int, seconds: float) -> None:
        """A chunk of ``steps`` took ``seconds``: size the next one."""
        if seconds > 0:
            fitting = int(self.CHUNK_SECONDS * steps / seconds)
            self.size = min(self.largest, max(self.smallest, fitting))
