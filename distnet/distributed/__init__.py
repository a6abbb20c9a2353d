"""The distributed trainer: GradientWorker, ParameterServer and StopEvaluator actors on Ray."""
from .protocols import WorkerLostError
from .trainer import PROTOCOLS, DistributedTrainer, FailureLimitError

__all__ = ["DistributedTrainer", "FailureLimitError", "PROTOCOLS", "WorkerLostError"]
