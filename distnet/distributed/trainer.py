"""DistributedTrainer: the driver. Starts or joins Ray, places the actors, runs the steps.

The loop itself (epochs, evaluations, early stopping, checkpoints, progress) is the shared one in
:mod:`distnet.training`; this class only says how a chunk of steps runs on the actors:

* ``"channel"``: parameter server and workers on one host exchange every step through shared
  memory and FIFOs: microseconds of coordination per step;
* ``"plain"``: ordinary Ray actor calls, chained without waiting; works across hosts;
* ``"compiled"``: each step one execution of a Ray Compiled Graph; works across hosts.

(:mod:`distnet.distributed.protocols` has the first two, :mod:`distnet.distributed.compiled` the
third.)

``protocol="auto"`` takes the channel when every actor can reach it, plain calls otherwise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import (NodeAffinitySchedulingStrategy,
                                            PlacementGroupSchedulingStrategy)

from ..batches import BatchPlan
from ..data import Dataset
from ..errors import ConfigError
from ..nn import Network, Optimizer
from ..training import StepStats, TrainerBase
from .address import check_reachable
from .gradient_worker import GradientWorker
from .parameter_server import ParameterServer
from .compiled import CompiledSteps
from .protocols import ChannelSteps, PlainSteps
from .stop_evaluator import StopEvaluatorActor

PROTOCOLS = ("auto", "channel", "compiled", "plain")
# One BLAS thread per worker: each worker owns one CPU of its bundle, and more threads only fight
# over it.
_WORKER_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


class DistributedTrainer(TrainerBase):
    """Train with ``workers`` GradientWorker actors, a ParameterServer actor and a StopEvaluator
    actor; the same math as :class:`~distnet.trainer.Trainer` (same batches for the same seed).

    >>> trainer = DistributedTrainer(network, Nesterov(0.02, 0.87), l2=1e-4, batch_size=32,
    ...                              workers=2, seed=942457)
    >>> result = trainer.fit(splits.train, splits.validation, epochs=30)

    ``address=None`` starts Ray inside this process (and stops it afterwards) unless Ray is
    already initialised; ``"auto"`` or ``"HOST:PORT"`` joins a running cluster.
    """

    def __init__(self, network: Network, optimizer: Optimizer, l2: float = 0.0, batch_size: int = 32,
                 workers: int | None = None, address: str | None = None, seed: int | None = None,
                 protocol: str = "auto", placement_timeout: float = 60.0,
                 schedule=None, augmentation=None):
        super().__init__(network, optimizer, l2=l2, batch_size=batch_size, seed=seed, schedule=schedule,
                         augmentation=augmentation)
        if protocol not in PROTOCOLS:
            raise ConfigError(f"unknown step protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
            raise ConfigError(f"workers must be a positive integer, got {workers!r}")
        self.requested_workers = workers
        self.address = address
        self.protocol = protocol
        self.placement_timeout = placement_timeout
        self.placement: list[dict] = []
        self._started_ray = False

    @property
    def shards(self) -> int:
        if self.requested_workers is None:
            raise ConfigError("the number of workers is known once Ray is up; pass workers=N")
        return self.requested_workers

    def config(self) -> dict:
        return {**super().config(), "protocol": self.protocol}

    # -- setup and teardown -----------------------------------------------------------------------
    def fit(self, train, validation=None, **kwargs):
        self._connect_ray()
        if self.requested_workers is None:
            self.requested_workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return super().fit(train, validation, **kwargs)

    def _connect_ray(self) -> None:
        if ray.is_initialized():
            return
        if self.address is None:
            ray.init(include_dashboard=False, logging_level="ERROR", configure_logging=True)
        else:
            check_reachable(self.address)  # ray.init would wait for ever on an address that is down
            ray.init(address=self.address, logging_level="ERROR")
        self._started_ray = True

    def _open(self, train: Dataset, validation: Dataset | None, plan: BatchPlan) -> None:
        n = plan.shards
        self._plan = plan
        self._pg = placement_group([{"CPU": 1}] * n, strategy="SPREAD")
        # A Ray started here cannot grow: fail at once rather than wait for CPUs that never come.
        cannot_grow = self._started_ray and self.address is None and n > ray.cluster_resources().get("CPU", 0)
        waited = 0 if cannot_grow else self.placement_timeout
        ready, _ = ray.wait([self._pg.ready()], timeout=waited)
        if not ready:
            cpus = ray.cluster_resources().get("CPU", 0)
            free = ray.available_resources().get("CPU", 0)
            remove_placement_group(self._pg)
            raise ConfigError(f"cannot place {n} workers (one CPU each): the cluster has {cpus:g} CPUs, "
                              f"{free:g} free, after waiting {waited:g} s; use "
                              f"--workers {max(1, int(free))} or fewer, or add nodes")
        spec = self.network.spec()
        plan_args = {"n_samples": plan.n_samples, "batch_size": plan.batch_size, "shards": n, "seed": plan.seed}
        worker_class = ray.remote(GradientWorker)
        self._workers = []
        for i, (lo, hi) in enumerate(plan.shard_ranges):
            # One object per shard: a worker receives (and maps) only its own samples.
            images, labels = ray.put(train.images[lo:hi]), ray.put(np.asarray(train.labels[lo:hi]))
            self._workers.append(worker_class.options(
                num_cpus=1, max_restarts=0, runtime_env={"env_vars": _WORKER_ENV},
                scheduling_strategy=PlacementGroupSchedulingStrategy(self._pg, placement_group_bundle_index=i),
            ).remote(i, spec, images, labels, plan_args, self.augmentation.spec() if self.augmentation else None))
        here = ray.get_runtime_context().get_node_id()
        self._server = ray.remote(ParameterServer).options(
            num_cpus=0, max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True),
        ).remote(spec, self.network.params, self.optimizer.spec(), self.rule.l2, self.optimizer.state())
        self._validation, self._validation_refs = validation, None
        if validation is not None:
            self._validation_refs = (ray.put(validation.images), ray.put(np.asarray(validation.labels)))
        self.placement = ray.get([w.where.remote() for w in self._workers])
        self._steps = CompiledSteps(self._server, self._workers) if self.protocol == "compiled" else None
        if self.protocol in ("auto", "channel"):
            self._steps = ChannelSteps.open(self._server, self._workers, required=self.protocol == "channel")
        self._steps = self._steps or PlainSteps(self._server, self._workers)
        self.active_protocol = self._steps.name

    def _close(self) -> None:
        try:
            if getattr(self, "_server", None) is not None:
                if self._steps is not None:
                    self._steps.close()
                self.network.set_params(ray.get(self._server.get_params.remote()))
            for actor in getattr(self, "_workers", []) + [getattr(self, "_server", None)]:
                if actor is not None:
                    ray.kill(actor)
            if getattr(self, "_stopping", None) is not None:
                self._stopping.close()
            if getattr(self, "_pg", None) is not None:
                remove_placement_group(self._pg)
        finally:
            self._workers, self._server, self._pg, self._stopping = [], None, None, None
            if self._started_ray:
                ray.shutdown()
                self._started_ray = False

    # -- the steps ------------------------------------------------------------------------------
    def _run_steps(self, epoch: int, start: int, stop: int) -> StepStats:
        self._steps.run(epoch, start, stop)
        return StepStats(*ray.get(self._server.take_stats.remote()))

    def _error_rate(self, dataset: Dataset) -> float:
        if dataset is self._validation:
            images, labels = self._validation_refs
        else:
            images, labels = ray.put(dataset.images), ray.put(np.asarray(dataset.labels))
        params = self._server.get_params.remote()
        n = len(self._workers)
        wrong = ray.get([w.count_errors.remote(params, images, labels, i, n) for i, w in enumerate(self._workers)])
        return sum(wrong) / len(dataset)

    def _params(self) -> np.ndarray:
        return ray.get(self._server.get_params.remote())

    def _params_finite(self) -> bool:
        return ray.get(self._server.params_finite.remote())

    def _optimizer_state(self) -> dict[str, np.ndarray]:
        return ray.get(self._server.state.remote())[1]

    def _set_learning_rate(self, learning_rate: float) -> None:
        super()._set_learning_rate(learning_rate)
        ray.get(self._server.set_learning_rate.remote(learning_rate))

    def _load_state(self, params: np.ndarray, optimizer_state: dict[str, np.ndarray]) -> None:
        ray.get(self._server.load_state.remote(params, optimizer_state))

    def _early_stopping(self, network_spec: dict, window: int, acceptable_error: float | None,
                        best_path: Path | None):
        self._stopping = StopEvaluatorActor(network_spec, window, acceptable_error, best_path,
                                            node_id=ray.get_runtime_context().get_node_id())
        return self._stopping
