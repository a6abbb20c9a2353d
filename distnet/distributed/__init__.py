"""The distributed trainer: GradientWorker, ParameterServer and StopEvaluator actors on Ray."""
from .protocols import WorkerLostError
from .trainer import PROTOCOLS, DistributedTrainer, FailureLimitError, RayFailedError

__all__ = ["DistributedTrainer", "FailureLimitError", "PROTOCOLS", "RayFailedError", "WorkerLostError"]
