"""The distributed trainer: GradientWorker, ParameterServer and StopEvaluator actors on Ray."""
from .protocols import WorkerLostError
from ..errors import FailureLimitError, RayFailedError
from .trainer import PROTOCOLS, DistributedTrainer

__all__ = ["DistributedTrainer", "FailureLimitError", "PROTOCOLS", "RayFailedError", "WorkerLostError"]
