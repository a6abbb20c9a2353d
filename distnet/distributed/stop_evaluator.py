"""The StopEvaluator actor: :class:`distnet.stop.EarlyStopping`, unchanged, in its own process.

It receives each evaluation with the parameters (resolved from the parameter server's object,
so they need not pass through the driver), keeps a real copy of the best, writes the best
network to the run directory atomically on every improvement, and answers whether to stop.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import ray

from ..stop import EarlyStopping, Verdict


class StopEvaluatorActor:
    """Driver-side handle with the same methods as :class:`EarlyStopping`."""

    def __init__(self, network_spec: dict, window: int, acceptable_error: float | None,
                 best_path: Path | None, node_id: str | None = None):
        options = {"num_cpus": 0}
        if node_id is not None:
            # The best network is written where the driver can read it back.
            options["scheduling_strategy"] = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                node_id, soft=True)
        self.actor = ray.remote(EarlyStopping).options(**options).remote(
            network_spec, window, acceptable_error, best_path)

    def evaluate(self, epoch: int, error_rate: float, params: np.ndarray | ray.ObjectRef) -> Verdict:
        return ray.get(self.actor.evaluate.remote(epoch, error_rate, params))

    def best_network(self):
        return ray.get(self.actor.best_network.remote())

    def state(self) -> dict:
        return ray.get(self.actor.state.remote())

    def load_state(self, state: dict, best_params: np.ndarray | None) -> None:
        ray.get(self.actor.load_state.remote(state, best_params))

    def close(self) -> None:
        ray.kill(self.actor)
