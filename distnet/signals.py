"""Ctrl-C and SIGTERM kept from cutting short what must not be: the distributed trainer keeps Ray
from deciding what they do to the process it runs in (``ray.init`` installs a SIGTERM handler of
its own, and a signal that cuts ``ray.shutdown`` short leaves Ray half stopped), and the one-pass
update holds them while numba compiles its kernel (a Ctrl-C then lands in numba's callbacks)."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn


class _Terminated:
    arrived = False  # SIGTERM arrived (a stopped job, a scheduler's time limit)


def terminate_as_interrupted(signum, frame) -> NoReturn:
    """SIGTERM's handler for the command line: stop as Ctrl-C stops, letting go of what the program
    holds (Ray, the run directory): a KeyboardInterrupt, the one exception Ray's waits turn into an
    interruption of the call; :func:`was_terminated` then tells the two apart."""
    _Terminated.arrived = True
    raise KeyboardInterrupt


def was_terminated() -> bool:
    """Whether the KeyboardInterrupt being handled came of SIGTERM (exit status 143, not 130)."""
    return _Terminated.arrived


def forget_termination() -> None:
    """Forget a SIGTERM of an earlier command run in this process (tests run many)."""
    _Terminated.arrived = False


@contextmanager
def sigterm_handler_kept() -> Iterator[None]:
    """The process's SIGTERM handler as it was before: ``ray.init`` sets one that exits the
    process from inside Ray's waits (exit status 1; nothing let go, nothing said), where the
    application's own (the command line's: stop as after Ctrl-C) should decide."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    try:
        yield
    finally:
        if previous is not None:  # None: one not set from Python, which cannot be put back
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def interruptions_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM delivered once the block has run, or at once if one comes a second time
    meanwhile (the way out of a block that hangs): a ``ray.shutdown`` cut short (by a second Ctrl-C
    soon after the first) stops Ray's processes half-way, and Ray's core worker, finding them gone,
    then ends the process at once with exit status 1 (nothing said, and Ray's agents left running)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    # Not one ignored, nor one set outside Python (None), which could not be put back.
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    handlers = {signum: handler for signum, handler in handlers.items() if handler not in (signal.SIG_IGN, None)}
    held: list[int] = []

    def restore() -> None:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)

    def hold(signum, frame) -> None:
        held.append(signum)
        if len(held) == 2:
            restore()
            signal.raise_signal(signum)

    for signum in handlers:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        if len(held) < 2:
            restore()
            if held:  # to its own handler, as if it came now (SIGTERM's default ends the process)
                signal.raise_signal(held[0])
