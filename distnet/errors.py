"""The error types distnet raises on purpose, and :func:`warn`, which its warnings go through.

Every error a user can cause derives from :class:`DistnetError`, but for a call that Python itself
refuses (an argument a function does not take, an index that is no integer: Python's TypeError);
its message says what is wrong and how to fix it. The CLI prints such messages without a traceback
and exits with status 2.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (the network module imports this one)
    from .nn.network import Network


class DistnetError(Exception):
    """Base class of every error distnet raises for bad input, configuration or data (a call Python
    itself refuses is Python's TypeError)."""


class ConfigError(DistnetError, ValueError):
    """An option or argument is out of range or inconsistent with another."""


class DataFormatError(DistnetError, ValueError):
    """A data file (IDX, gzip) is malformed; the message names the file and the defect."""


class DataNotFoundError(DistnetError, FileNotFoundError):
    """A data set is not on disk and could not be downloaded."""


class FolderNotWritableError(DataNotFoundError):
    """A download's folder (distnet's cache), or the file's place in it, cannot be written;
    ``errno`` says why (no room, a limit on file sizes, no permission), where known."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno

    def __reduce__(self):  # (pickled, as between processes, with its errno)
        return type(self), (str(self), self.errno)


class ChecksumError(DataFormatError):
    """A file's SHA-256 does not match the published value."""


class ModelFormatError(DistnetError, ValueError):
    """A saved model or checkpoint is truncated, corrupt, or not a distnet file."""


class NewerFormatError(ModelFormatError):
    """A saved model or checkpoint was written by a newer distnet, in a format this one cannot read."""


class ClusterUnreachableError(DistnetError, ConnectionError):
    """The Ray cluster address given does not accept connections."""


class OutOfMemoryError(DistnetError, MemoryError):
    """What was asked for (such as a network of a given size) needs more memory than this machine has."""


class TrainingDivergedError(DistnetError, FloatingPointError):
    """The cost or the gradient became NaN or infinite during training.

    From ``fit``, ``best_network`` is the best network of the run so far (a
    :class:`~distnet.nn.Network`: the one of the lowest validation error), or None where nothing
    was scored yet; the trainer's own network holds the diverged parameters.
    """

    def __init__(self, message: str, best_network: Network | None = None):
        super().__init__(message)
        self.best_network = best_network


class FailureLimitError(DistnetError, RuntimeError):
    """More actors were lost during a distributed run than its ``max_failures`` allows."""


class RayFailedError(DistnetError, RuntimeError):
    """Ray failed in a way the distributed trainer does not recover from; the Ray error is its
    ``__cause__``."""


def first_line(error: BaseException) -> str:
    """An error's message, its first line only (Ray's run on with remote tracebacks)."""
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else "no details"


def warn(message: str) -> None:
    """Issue a UserWarning attributed to the first caller outside distnet: Python's report then
    names the line of the user's code that led to it, not a line deep inside the library."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level + 1 if frame is not None else 2)
