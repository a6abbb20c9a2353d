"""The CLI's commands, one module each; every module has ``register(subparsers)``."""
from . import evaluate, train

COMMANDS = [train, evaluate]
