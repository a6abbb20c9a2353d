"""The CLI's commands, one module each. Every module has ``register(subparsers)``, which adds the
command's parser with ``handler=run``, and ``run(args)``, which carries the command out and returns
its exit status (errors it raises are :mod:`distnet.cli`'s to report)."""
from . import evaluate, plot, predict, show, submit, train

COMMANDS = [train, submit, evaluate, show, predict, plot]
