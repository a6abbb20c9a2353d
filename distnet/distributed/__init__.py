"""The distributed trainer: GradientWorker, ParameterServer and StopEvaluator actors on Ray.

Ray takes a second or more to import, so the trainer is imported when first asked for: the
command line reads :mod:`distnet.distributed.settings` without it.
"""
from ..errors import FailureLimitError, RayFailedError
from .settings import DEFAULT_MAX_FAILURES, PROTOCOLS

__all__ = ["DEFAULT_MAX_FAILURES", "DistributedTrainer", "FailureLimitError", "PROTOCOLS", "RayFailedError"]


def __getattr__(name: str):
    if name == "DistributedTrainer":
        from .trainer import DistributedTrainer

        return DistributedTrainer
    raise AttributeError(f"module 'distnet.distributed' has no attribute {name!r}")
