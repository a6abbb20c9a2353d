"""The StopEvaluator actor: :class:`distnet.stop.EarlyStopping`, unchanged, in its own process.

It receives each evaluation with the parameters, keeps a real copy of the best, writes the best
network to the run directory atomically on every improvement, and answers whether to stop.

If the actor dies, the handle starts a new one and gives it back its state: the stop rule's
state as of the last evaluation (which the handle receives with every verdict) and the best
network from the run directory's best.npz, which the lost actor wrote before it answered.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..errors import DistnetError
from ..nn import Network
from ..stop import EarlyStopping, Verdict


class _EarlyStoppingActor(EarlyStopping):
    def evaluate_with_state(self, epoch: int, error_rate: float, params: np.ndarray) -> tuple[Verdict, dict]:
        # Verdict and state in one call: an actor lost after answering has nothing the driver lacks.
        return self.evaluate(epoch, error_rate, params), self.state()


class StopEvaluatorActor:
    """Driver-side handle with the methods of :class:`EarlyStopping` that training calls.

    The actor runs on the node ``node_id`` (the driver's: the best network is written where the
    driver reads it back). ``on_failure(cause)`` is called each time the actor is found dead,
    before it is replaced; it may raise to end the run instead.
    """

    def __init__(self, network_spec: dict, window: int, acceptable_error: float | None,
                 best_path: Path | None, node_id: str, on_failure: Callable[[str], None]):
        self._args = (network_spec, window, acceptable_error, best_path)
        self._options = {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=True)}
        self._on_failure = on_failure
        self._state: dict | None = None
        self.actor = self._start()
        # Up before the first step rather than beside it: a Ray worker process takes a core for a
        # second or more to boot, which the first steps would lose.
        self._call("state")

    def _start(self):
        return ray.remote(_EarlyStoppingActor).options(**self._options).remote(*self._args)

    def _call(self, method: str, *args):
        while True:
            try:
                return ray.get(getattr(self.actor, method).remote(*args))
            except ray.exceptions.RayActorError as e:
                self._on_failure(f"the stop evaluator died ({e.__class__.__name__})")
                self._restart()

    def _restart(self) -> None:
        ray.kill(self.actor)
        self.actor = self._start()
        if self._state is None:
            return
        best_path, best = self._args[3], None
        if best_path is not None and Path(best_path).exists():
            best = Network.load(best_path).params
        elif self._state["best_epoch"] >= 0:
            raise DistnetError("the stop evaluator was lost, and with it the best network: without a run "
                               "directory it lived only in that actor; train with a run directory to "
                               "survive the loss of any actor")
        ray.get(self.actor.load_state.remote(self._state, best))

    def evaluate(self, epoch: int, error_rate: float, params: np.ndarray) -> Verdict:
        verdict, self._state = self._call("evaluate_with_state", epoch, error_rate, params)
        return verdict

    def save_best(self) -> None:
        self._call("save_best")

    def state(self) -> dict:
        return self._call("state")

    def load_state(self, state: dict, best_params: np.ndarray | None) -> None:
        self._call("load_state", state, best_params)
        self._state = state

    def close(self) -> None:
        ray.kill(self.actor)
