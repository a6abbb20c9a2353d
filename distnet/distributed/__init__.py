"""The distributed trainer: GradientWorker, ParameterServer and StopEvaluator actors on Ray."""
from .trainer import PROTOCOLS, DistributedTrainer, WorkerLostError

__all__ = ["DistributedTrainer", "PROTOCOLS", "WorkerLostError"]
