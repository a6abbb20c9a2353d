"""distnet: a from-scratch NumPy neural network, trained on many cores and machines with Ray.

>>> from distnet import Network, Dense, LeakyReLU, Softmax, XavierNormal, Nesterov, Trainer
>>> from distnet import load_mnist
"""
import importlib

# First: the stamps of the source files as this process imports them (see distnet.source_files).
importlib.import_module(".source_files", __name__)
del importlib  # not a name of distnet's
from .data import Dataset, Splits, load_dataset, load_fashion_mnist, load_mnist
from .errors import (ChecksumError, ClusterUnreachableError, ConfigError, DataFormatError, DataNotFoundError,
                     DistnetError, FailureLimitError, FolderNotWritableError, ModelFormatError, NewerFormatError,
                     OutOfMemoryError, RayFailedError, TrainingDivergedError)
from .nn import (MSE, Adam, CrossEntropy, Dense, GradientDescent, HalfQuadratic, HeNormal, HeUniform,
                 Identity, LeakyReLU, LeCunNormal, LeCunUniform, Momentum, Nesterov, Network, Quadratic,
                 Random, ReLU, Sigmoid, Softmax, Softplus, Tanh, XavierNormal, XavierUniform)
from .data.augment import RandomAffine
from .nn.schedules import CosineDecay, StepDecay
from .presets import PRESETS, Preset, get_preset
from .progress import JsonLinesReporter, Reporter, TerminalReporter
from .stop import EarlyStopping, StopEvaluator
from .trainer import Trainer
from .fit_result import FitResult

__version__ = "0.1.0"

__all__ = [
    "Network", "Dense", "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softplus", "Softmax",
    "Quadratic", "HalfQuadratic", "MSE", "CrossEntropy", "Random", "XavierUniform", "XavierNormal",
    "LeCunUniform", "LeCunNormal", "HeUniform", "HeNormal", "GradientDescent", "Momentum", "Nesterov",
    "Adam", "Trainer", "DistributedTrainer", "FitResult", "StopEvaluator", "EarlyStopping", "CosineDecay",
    "StepDecay", "RandomAffine", "Reporter", "TerminalReporter", "JsonLinesReporter", "Preset",
    "PRESETS", "get_preset", "Dataset", "Splits", "load_mnist", "load_fashion_mnist", "load_dataset",
    "DistnetError", "ConfigError", "DataFormatError", "DataNotFoundError", "FolderNotWritableError", "ChecksumError",
    "ModelFormatError", "NewerFormatError", "TrainingDivergedError", "FailureLimitError", "RayFailedError",
    "ClusterUnreachableError", "OutOfMemoryError",
]


def __dir__() -> list[str]:
    return sorted([*globals(), "DistributedTrainer"])


def __getattr__(name: str):
    # Ray takes a second to import; only the distributed trainer needs it.
    if name == "DistributedTrainer":
        from .distributed import DistributedTrainer

        return DistributedTrainer
    raise AttributeError(f"module 'distnet' has no attribute {name!r}")
