"""The neural-network math in plain NumPy (with numba installed, the update also runs as one compiled
pass that gives the same values: :mod:`distnet.nn.fused`): no Ray, no files beyond a network's own."""
from .activations import (Activation, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh,
                          activation_from_spec)
from .costs import MSE, Cost, CrossEntropy, HalfQuadratic, Quadratic, cost_from_spec
from .initializers import (HeNormal, HeUniform, Initializer, LeCunNormal, LeCunUniform, Random,
                           XavierNormal, XavierUniform, initializer_from_spec)
from .layers import Dense
from .network import Network
from .optimizers import (Adam, GradientDescent, Momentum, Nesterov, Optimizer, UpdateRule,
                         optimizer_from_spec)
from .parallel_update import ParallelUpdate
from .schedules import CosineDecay, Schedule, StepDecay, schedule_from_spec

__all__ = [
    "Activation", "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softplus", "Softmax",
    "activation_from_spec", "Cost", "Quadratic", "HalfQuadratic", "MSE", "CrossEntropy",
    "cost_from_spec", "Initializer", "Random", "XavierUniform", "XavierNormal", "LeCunUniform",
    "LeCunNormal", "HeUniform", "HeNormal", "initializer_from_spec", "Dense", "Network",
    "Optimizer", "GradientDescent", "Momentum", "Nesterov", "Adam", "UpdateRule",
    "ParallelUpdate",
    "optimizer_from_spec", "Schedule", "CosineDecay", "StepDecay", "schedule_from_spec",
]
