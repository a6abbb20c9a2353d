"""The StopEvaluator actor: :class:`distnet.stop.EarlyStopping` in its own process, with one method
added that answers with the verdict and the stop rule's state together.

It receives each evaluation with the parameters, keeps a real copy of the best, and answers
whether to stop. The best network's file is written by the handle, in the driver: the run
directory is on the driver's disk, and an actor, even on the driver's node, may see other files
under the same path (a container, a private /tmp).

If the actor dies, the handle starts a new one and gives it back its state: the stop rule's
state as of the last evaluation (which the handle receives with every verdict) and the best
network's parameters (which the handle keeps from the evaluation that found them), with or
without a run directory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import ray

from ..stop import EarlyStopping, Verdict
from .placement import on_node


class StopEvaluatorActor(EarlyStopping):
    """The stop rule in its actor's process (``ray::StopEvaluatorActor`` in ps)."""

    def evaluate_with_state(self, epoch: int, error_rate: float, params: np.ndarray) -> tuple[Verdict, dict]:
        # Verdict and state in one call: an actor lost after answering has nothing the driver lacks.
        return self.evaluate(epoch, error_rate, params), self.state()


class StopEvaluatorHandle:
    """Driver-side handle with the methods of :class:`EarlyStopping` that training calls.

    The actor runs on the node ``node_id`` (the driver's: its calls, each with the parameters, stay
    on one machine); the handle writes the best network to ``best_path`` on every improvement.
    ``on_failure(cause)`` is called each time the actor is found dead, before it is replaced; it
    may raise to end the run instead (an actor whose constructor raised is no loss: its error is
    raised). ``on_recovery()`` is called once a replacement has its state back. ``notes`` go into
    the best network's file, as :class:`EarlyStopping`'s do.
    """

    def __init__(self, network_spec: dict, window: int, acceptable_error: float | None,
                 best_path: Path | None, node_id: str, on_failure: Callable[[str], None],
                 notes: dict | None = None, on_recovery: Callable[[], None] = lambda: None):
        self._args = (network_spec, window, acceptable_error)  # no path: the actor writes no file
        # The same rule's keeper, here: given the actor's state and the best parameters, it writes
        # best.npz (and best.json) as the actor would, but on the driver's disk.
        self._writer = EarlyStopping(network_spec, window, acceptable_error, best_path, notes)
        self._options = on_node(node_id)
        self._on_failure = on_failure
        self._on_recovery = on_recovery
        self._state: dict | None = None
        self._best: np.ndarray | None = None
        self.actor = self._start()
        # Up before the first step rather than beside it: a Ray worker process takes a core for a
        # second or more to boot, which the first steps would lose.
        try:
            self._call("state")
        except BaseException:  # Ctrl-C as it boots: no handle is kept to close it, so it goes now
            ray.kill(self.actor)
            raise

    def _start(self):
        return ray.remote(StopEvaluatorActor).options(**self._options).remote(*self._args)

    def _call(self, method: str, *args, when: str = "as the run started"):
        restored, replaced = True, False
        while True:
            try:
                # A replacement gets its state back within the loop, so that a loss meanwhile is
                # one more failure to replace, not the end of the run.
                if not restored:
                    ray.get(self.actor.load_state.remote(self._state, self._best))
                    restored = True
                if replaced:
                    replaced = False
                    self._on_recovery()
                return ray.get(getattr(self.actor, method).remote(*args))
            except ray.exceptions.RayActorError as e:
                if e.actor_init_failed:
                    raise  # its constructor raised: no loss, and another start would only raise again
                self._on_failure(f"the stop evaluator lost {when} ({e.__class__.__name__})")
                ray.kill(self.actor)
                self.actor = self._start()
                restored, replaced = self._state is None, True

    def evaluate(self, epoch: int, error_rate: float, params: np.ndarray) -> Verdict:
        """As :meth:`EarlyStopping.evaluate`; ``params`` must not change afterwards (the handle
        keeps them when they are the best)."""
        verdict, self._state = self._call("evaluate_with_state", epoch, error_rate, params,
                                          when=f"at epoch {epoch}'s evaluation")
        if verdict.improved:
            self._best = params
            self.save_best()
        return verdict

    def save_best(self) -> None:
        """As :meth:`EarlyStopping.save_best`, written by this process."""
        if self._state is not None:
            self._writer.load_state(self._state, self._best)
            self._writer.save_best()

    def state(self) -> dict:
        # The actor's state changes only through evaluate and load_state, which both hand it here.
        return self._state if self._state is not None else self._call("state", when="before its first evaluation")

    def load_state(self, state: dict, best_params: np.ndarray | None) -> None:
        self._call("load_state", state, best_params, when="as the run resumed")
        self._state, self._best = state, best_params

    def close(self) -> None:
        ray.kill(self.actor)
