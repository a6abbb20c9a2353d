"""The CLI's commands, one module each; every module has ``register(subparsers)``."""
from . import evaluate, plot, predict, show, train

COMMANDS = [train, evaluate, show, predict, plot]
