"""The CLI's commands, one module each; every module has ``register(subparsers)``."""
from . import evaluate, plot, predict, show, submit, train

COMMANDS = [train, submit, evaluate, show, predict, plot]
