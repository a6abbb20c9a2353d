"""distnet: a from-scratch NumPy neural network, trained on many cores and machines with Ray."""
from .errors import (ChecksumError, ConfigError, DataFormatError, DataNotFoundError, DistnetError,
                     ModelFormatError, TrainingDivergedError)
from .nn import (MSE, Adam, CrossEntropy, Dense, GradientDescent, HalfQuadratic, HeNormal, HeUniform,
                 Identity, LeakyReLU, LeCunNormal, LeCunUniform, Momentum, Nesterov, Network, Quadratic,
                 Random, ReLU, Sigmoid, Softmax, Softplus, Tanh, XavierNormal, XavierUniform)
from .stop import EarlyStopping, StopEvaluator

__version__ = "0.1.0"
