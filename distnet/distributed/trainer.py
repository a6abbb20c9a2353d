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

Fault tolerance (lost actors replaced, the interrupted steps redone, and more than ``max_failures``
losses ending the run) is :class:`~distnet.distributed.recovery.Recovery`'s, a base class of this
one; how a fit reaches Ray, :class:`~distnet.distributed.ray_connection.RayConnection`'s.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import NoReturn

import numpy as np
import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from ..batches import BatchPlan
from ..data import Dataset
from ..errors import ConfigError, DistnetError, RayFailedError, first_line, warn
from ..data.augment import RandomAffine
from ..nn import Network, Optimizer
from ..nn.schedules import Schedule
from ..rundir import RunDir
from ..checks import Checked, count, positive_int, positive_real, whole_number
from ..step_stats import StepStats
from ..training import TrainerBase
from ..address import parse_address
from .gradient_worker import GradientWorker
from .parameter_server import ParameterServer
from .channel import STEP_TIMEOUT_S
from .compiled import CompiledSteps
from .protocols import CLOSE_TIMEOUT_S, ChannelSteps, PlainSteps, first_unapplied_step
from .same_code import check_same_code
from .settings import DEFAULT_MAX_FAILURES, PROTOCOLS
from .placement import on_node, worker_name
from .ray_connection import RayConnection
from .recovery import Recovery, start_failure
from .stop_evaluator import StopEvaluatorHandle

# One BLAS thread per worker: each worker owns one CPU of its bundle, and more threads only fight
# over it.
_WORKER_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _checked_workers(workers) -> int | None:
    if workers == 0:
        raise ConfigError("workers=0 means no Ray workers: train in this process with Trainer(...) instead, "
                          "or give workers=1 or more")
    return None if workers is None else positive_int("workers", workers)


def _checked_protocol(protocol) -> str:
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown step protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return protocol


def _checked_address(address) -> str | None:
    """None (RAY_ADDRESS's cluster, else a Ray of this process's own), "auto", "local" or
    HOST:PORT; ConfigError for anything else, before Ray is started or joined."""
    if address is not None and not (isinstance(address, str) and address):
        raise ConfigError(f"address must be 'auto', 'local', a cluster's HOST:PORT or None (RAY_ADDRESS's cluster, "
                          f"else a Ray of this process's own), got {address!r}")
    if address is not None:
        parse_address(address)
    return address


# How long the actors get to exit by themselves as a fit ends, before they are killed.
_EXIT_TIMEOUT_S = 2.0


def _end_actors(actors: list) -> None:
    """End ``actors``: each asked to exit, then killed (those that have not within
    ``_EXIT_TIMEOUT_S``, hung or dead). Only an actor that exits by itself removes the named
    semaphores a compiled graph made for it (``/dev/shm/sem.hdr*``, ``sem.obj*``); killed, it leaves
    them there for good."""
    exits = [actor.__ray_terminate__.remote() for actor in actors]
    if exits:
        ray.wait(exits, num_returns=len(exits), timeout=_EXIT_TIMEOUT_S)
    for actor in actors:
        ray.kill(actor)


class DistributedTrainer(Recovery, TrainerBase):
    """Train with ``workers`` GradientWorker actors, a ParameterServer actor and a StopEvaluator
    actor; the same math as :class:`~distnet.trainer.Trainer` (same batches for the same seed).

    >>> trainer = DistributedTrainer(network, Nesterov(0.02, 0.87), l2=1e-4, batch_size=32,
    ...                              workers=2, seed=942457)
    >>> result = trainer.fit(splits.train, splits.validation, epochs=30)

    ``workers=None`` takes one worker per CPU of the cluster (at most one per sample of a batch),
    or, resuming a run, the run's number, decided afresh at each fit (``shards`` says the number
    of the fit under way, or of the last). ``address=None`` joins the cluster that
    ``RAY_ADDRESS`` names, if set, and otherwise starts a Ray of this process's own (stopped
    afterwards), unless Ray is already initialised; ``"auto"`` or ``"HOST:PORT"`` joins a running
    cluster; ``"local"`` starts a Ray of its own even where ``RAY_ADDRESS`` is set.

    ``protocol`` is how each step travels between workers and server: ``"channel"`` (shared memory,
    one host), ``"compiled"`` (Ray Compiled Graphs), ``"plain"`` (actor calls) or ``"auto"``
    (``channel`` where every actor shares the host, else ``plain``); see the module's
    documentation. ``placement_timeout`` is how many seconds to wait for the cluster to make room
    for the actors (a CPU for each worker) before giving up with a message. ``step_timeout`` is how
    many seconds a step waits for an actor (a worker's gradient, the server's update) before it
    takes the actor for stuck (stopped, say): a failure, recovered from as a lost actor is; a
    network whose steps take longer needs more.

    Up to ``max_failures`` failures are recovered from during a fit without changing its result,
    each by replacing the actors (workers, parameter server, stop evaluator) then lost (a resumed
    run counts afresh; its config.json records the number);
    ``failures`` lists what was lost each time in this fit (a run directory's failures.jsonl, in
    every session of the run), and the fit's reporter hears of each recovery as it completes
    (``on_recovery``).

    Resuming a run (``fit(..., resume=True)``), ``workers=N`` other than the run's continues it on N
    workers, its mini-batches then drawn from N shards: another draw of the same training (see
    :meth:`~distnet.training.TrainerBase.fit`).
    """

    distributed = True
    _INSTANCE_ATTRIBUTES = (*TrainerBase._INSTANCE_ATTRIBUTES, "placement", "failures", "active_protocol")
    workers = Checked(lambda name, workers: _checked_workers(workers))
    address = Checked(lambda name, address: _checked_address(address))
    protocol = Checked(lambda name, protocol: _checked_protocol(protocol))
    placement_timeout = Checked(positive_real)
    step_timeout = Checked(positive_real)
    max_failures = Checked(lambda name, value: whole_number(name, value, 0))

    def __init__(self, network: Network, optimizer: Optimizer, l2: float = 0.0, batch_size: int = 32,
                 workers: int | None = None, address: str | None = None, seed: int | None = None,
                 protocol: str = "auto", placement_timeout: float = 60.0, max_failures: int = DEFAULT_MAX_FAILURES,
                 schedule: Schedule | None = None, augmentation: RandomAffine | None = None,
                 step_timeout: float = STEP_TIMEOUT_S):
        super().__init__(network, optimizer, l2=l2, batch_size=batch_size, seed=seed, schedule=schedule,
                         augmentation=augmentation)
        self.workers = workers
        self.address = address
        self.protocol = protocol
        self.placement_timeout = placement_timeout
        self.step_timeout = step_timeout
        self.max_failures = max_failures
        self.placement: list[dict] = []
        self.failures: list[str] = []
        self._reporter = None  # during a fit: where recoveries are reported
        self._run: RunDir | None = None  # the run directory of the fit under way (or the last), if any
        self._unreported: list[tuple[str, int]] = []  # failures recovered from, to report, with their number
        self._ray = RayConnection()  # the Ray this trainer's fits run on
        self._steps = None  # how steps are exchanged, once the actors run
        self.active_protocol: str | None = None  # its name (None until a fit has opened one)

    def config(self) -> dict:
        return {**super().config(), "protocol": self.protocol, "max_failures": self.max_failures}

    def step(self, X: np.ndarray, Y: np.ndarray) -> NoReturn:
        """Not a DistributedTrainer's: it trains through :meth:`fit` alone, its workers drawing the
        mini-batches; ConfigError, saying so (``Trainer.step`` trains on batches of one's own)."""
        raise ConfigError("a DistributedTrainer trains through fit alone, its workers drawing the mini-batches from "
                          "the training set; for steps on mini-batches of your own, use a Trainer (in this process): "
                          "Trainer(network, optimizer).step(X, Y)")

    def _repr_extras(self) -> dict:
        return {"workers": self.workers, "protocol": self.protocol, "address": self.address,
                **super()._repr_extras()}

    # -- setup and teardown -----------------------------------------------------------------------
    def _told_workers(self) -> int | None:
        return self.workers

    def _decide_workers(self, run_workers: int | None) -> None:
        if self.workers is None:  # each worker needs a sample of every batch
            self._fit_workers = run_workers or max(1, min(int(ray.cluster_resources().get("CPU", 1)),
                                                          self.batch_size))

    @contextmanager
    def _session(self, run: RunDir | None, reporter) -> Iterator[None]:
        self._run = run  # recovery restores a lost parameter server from the run's checkpoints
        self.failures, self._unreported, self._reporter = [], [], reporter
        self._connect_ray()
        try:
            yield
        except ray.exceptions.RayTaskError as e:  # an actor's method raised
            cause = e.cause if isinstance(e.cause, BaseException) else e
            if isinstance(cause, DistnetError):  # as if raised here: it says what is wrong and how to fix it
                cause.args = (f"{cause}{self._what_is_kept()}",)  # (the error itself: its class may take more)
                raise cause from e
            if self._names_a_run_file(cause):
                raise cause from e  # the command line names the file, and how to resume once it is fixed
            raise RayFailedError(f"an actor failed ({type(cause).__name__}: {first_line(cause)})"
                                 f"{self._what_is_kept()}") from e
        except ray.exceptions.RayError as e:
            if isinstance(e, ray.exceptions.RayActorError) and e.actor_init_failed:
                raise RayFailedError(f"{start_failure(e)}{self._what_is_kept()}") from e
            raise RayFailedError(f"Ray failed ({type(e).__name__}: {first_line(e)}){self._what_is_kept()}") from e
        finally:
            self._reporter = None
            self._close()  # again (it does nothing twice): also when the run fails before its actors start

    def _names_a_run_file(self, error: BaseException) -> bool:
        """Whether ``error`` is the file system refusing a file of the run directory (which the
        command line reports with the file, and how to resume once it is fixed)."""
        if not isinstance(error, OSError) or isinstance(error, BrokenPipeError) or not error.filename:
            return False
        return self._run is not None and Path(error.filename).absolute().is_relative_to(self._run.path.absolute())

    def _connect_ray(self) -> None:
        self._ray.connect(self.address)

    def _open(self, train: Dataset, validation: Dataset | None, plan: BatchPlan) -> None:
        n = plan.shards
        self._plan = plan
        self._pg = self._placement_group(n)
        self._spec = self.network.spec()
        # One object per shard: a worker receives (and maps) only its own samples, and a
        # replacement worker gets the same objects again.
        self._shards = [(ray.put(train.images[lo:hi]), ray.put(np.asarray(train.labels[lo:hi])))
                        for lo, hi in plan.shard_ranges]
        self._worker_actors = [self._start_worker(i) for i in range(n)]
        # Where a new parameter server starts when the run directory has no checkpoint yet.
        self._origin = (0, 0, self.network.params.copy(), self.optimizer.state())
        self._server = self._start_server(self.network.params, self.optimizer.state())
        self._confirmed = (0, 0)
        self._validation, self._validation_refs = validation, None
        if validation is not None:
            self._validation_refs = (ray.put(validation.images), ray.put(np.asarray(validation.labels)))
        self.placement = ray.get([w.where.remote() for w in self._worker_actors])
        # (The stop evaluator runs beside the server, on the driver's node: the same code.)
        check_same_code({"the parameter server": self._server,
                         **{worker_name(i, self.placement[i]): w for i, w in enumerate(self._worker_actors)}})
        self._steps = self._open_steps()
        self.active_protocol = self._steps.name

    def _start_worker(self, index: int):
        plan = self._plan
        plan_args = {"n_samples": plan.n_samples, "batch_size": plan.batch_size, "shards": plan.shards,
                     "seed": plan.seed, "carried": plan.carried}
        images, labels = self._shards[index]
        return ray.remote(GradientWorker).options(
            num_cpus=1, max_restarts=0, runtime_env={"env_vars": _WORKER_ENV},
            scheduling_strategy=PlacementGroupSchedulingStrategy(self._pg, placement_group_bundle_index=index),
        ).remote(index, self._spec, images, labels, plan_args,
                 self.augmentation.spec() if self.augmentation else None)

    def _start_server(self, params: np.ndarray, optimizer_state: dict, position: tuple[int, int] = (0, 0)):
        here = ray.get_runtime_context().get_node_id()
        return ray.remote(ParameterServer).options(max_restarts=0, **on_node(here)).remote(
            self._spec, params, self.optimizer.spec(), self.rule.l2, optimizer_state, position=position)

    def _placement_group(self, workers: int):
        """A placement group of one CPU for each of ``workers`` workers, spread over the nodes, once
        the cluster has made room; ConfigError, with how many would fit, where it does not."""
        group = placement_group([{"CPU": 1}] * workers, strategy="SPREAD")
        # A Ray started here cannot grow: fail at once rather than wait for CPUs that never come.
        cannot_grow = self._ray.embedded and workers > ray.cluster_resources().get("CPU", 0)
        waited = 0 if cannot_grow else self.placement_timeout
        try:
            if ray.wait([group.ready()], timeout=waited)[0]:
                return group
        except BaseException:  # Ctrl-C while it waits: the group, once placed, would hold its CPUs for good
            remove_placement_group(group)
            raise
        cpus = ray.cluster_resources().get("CPU", 0)
        free = ray.available_resources().get("CPU", 0)
        remove_placement_group(group)
        fits = int(free)
        # A Ray started here is this machine alone: more room is had from a cluster, not by waiting.
        where, more = ((f"this machine has {cpus:g} CPUs for the Ray this run started", "or join a cluster "
                        "with more (--address; address= in Python)") if cannot_grow else
                       (f"the cluster has {cpus:g} CPUs, {free:g} free, after waiting {waited:g} s", "or add nodes"))
        if not cannot_grow and free < workers <= cpus:  # the room is there, taken by others for now
            where += f" (the other {cpus - free:g} in use by other jobs or actors: once they end, {workers} fit)"
        advice = f"use at most {count(fits, 'worker')} (--workers {fits}; workers={fits} in Python), {more}"
        resumed = self._run.config() if self._run is not None and self._run.has_checkpoint() else None
        if resumed is not None and resumed.get("protocol") is None:  # a run of one process, told to go on on Ray
            trainer = " (with a Trainer)" if self._run.started_by_fit() else ""
            advice = f"continue it as it was, in this process{trainer}: {self._run.resume_command()}"
            if fits >= 1:
                advice += f", or on at most {count(fits, 'worker')}: {self._resume_on(fits)}"
        elif fits < 1:
            advice = f"end what holds the CPUs, {more}"
        elif resumed is not None and resumed["workers"] <= fits:
            # a resume told more workers than the run's own number, which fits: no other draw is needed
            advice = (f"continue it as it was, on its own {count(resumed['workers'], 'worker')}: "
                      f"{self._run.resume_command(address=self.address)}, {more}")
        elif resumed is not None:
            advice = f"continue with at most {count(fits, 'worker')}: {self._resume_on(fits)}, {more}"
        raise ConfigError(f"cannot place {count(workers, 'worker')} (one CPU each): {where}; {advice}")

    def _open_steps(self):
        if self.protocol == "compiled":  # the server runs on the driver's node
            nodes = {p["node_id"] for p in self.placement} | {ray.get_runtime_context().get_node_id()}
            return CompiledSteps(self._server, self._worker_actors, self.network.params.nbytes,
                                 across_nodes=len(nodes) > 1, step_timeout=self.step_timeout)
        steps = None
        if self.protocol in ("auto", "channel"):
            steps = ChannelSteps.open(self._server, self._worker_actors, required=self.protocol == "channel",
                                      step_timeout=self.step_timeout)
        return steps or PlainSteps(self._server, self._worker_actors, self.step_timeout)

    def _close(self) -> None:
        unanswered = None
        try:
            # Each step runs whatever ends one before it (a second Ctrl-C, a hung server): actors
            # or a placement group left behind would hold their CPUs for the rest of the session.
            with ExitStack() as closing:
                if getattr(self, "_pg", None) is not None:
                    closing.callback(remove_placement_group, self._pg)
                if getattr(self, "_stopping", None) is not None:
                    closing.callback(self._stopping.close)
                closing.callback(_end_actors, [actor for actor in getattr(self, "_worker_actors", []) +
                                               [getattr(self, "_server", None)] if actor is not None])
                if getattr(self, "_server", None) is not None:
                    unanswered = self._take_back_state()
        finally:
            self._worker_actors, self._server, self._pg, self._stopping, self._steps = [], None, None, None, None
            # The fit's data, in the object store: a Ray this trainer did not start keeps running.
            self._shards, self._validation, self._validation_refs, self._origin = [], None, None, None
            self._ray.close()
        if unanswered:  # once every actor is let go of (with warnings as errors, this raises)
            warn(unanswered)

    def _take_back_state(self) -> str | None:
        """The parameter server's parameters and optimizer state into the trainer's network and
        optimizer, so that a later fit goes on from here, as Trainer's does; the step protocol is
        closed first. A server that does not answer within ``CLOSE_TIMEOUT_S`` (hung) is left
        behind: the warning to give is returned."""
        started = time.monotonic()
        # After a failure (or the failure limit) some actors may be dead: close what lives.
        with suppress(ray.exceptions.RayError):
            if self._steps is not None:
                self._steps.close()
        # At least a few seconds for the server itself, however long a hung worker held up the close.
        left = max(5.0, CLOSE_TIMEOUT_S - (time.monotonic() - started))
        try:
            params, state = ray.get([self._server.get_params.remote(), self._server.optimizer_state.remote()],
                                    timeout=left)
        except ray.exceptions.GetTimeoutError:
            # The network got the last parameters only where the fit got as far as its result.
            waited = time.monotonic() - started
            kept = (f"; the run's last checkpoint, {self._run.checkpoint_path}, is as it was written"
                    if self._run is not None and self._run.has_checkpoint() else "")
            return (f"the parameter server did not answer within {waited:.0f} s as the fit ended (is it hung, or a "
                    f"worker it waits for?): the trainer's optimizer keeps the state it had before the fit, and its "
                    f"network the parameters it had before the fit too unless the fit returned its result (which "
                    f"gave it the last ones), so a later fit of this trainer would not go on from where this one "
                    f"ended{kept}")
        except ray.exceptions.RayError:
            return None  # a lost server, or its answer lost: the trainer keeps what it had
        self.network.set_params(params)
        self.optimizer.load_state(state)
        return None

    # -- the steps ------------------------------------------------------------------------------
    def _run_steps(self, epoch: int, start: int, stop: int) -> tuple[StepStats, bool]:
        self._confirmed = (epoch, start)

        def run(first: int) -> tuple[StepStats, bool]:
            *stats, params_finite = self._steps.run(epoch, first, stop)
            return StepStats(*stats), params_finite

        # After a recovery the server says where to carry on: at the interrupted step.
        stats = self._recovering(lambda: run(start),
                                 again=lambda: run(first_unapplied_step(self._server, epoch, start)))
        self._confirmed = (epoch, stop)
        return stats

    def _validation_error_rate(self) -> float:
        images, labels = self._validation_refs  # in the object store since _open, for every evaluation

        def errors() -> int:
            # Over a channel the workers read the server's parameters where they are; otherwise
            # each gets the server's copy.
            params = None if isinstance(self._steps, ChannelSteps) else self._server.get_params.remote()
            n = len(self._worker_actors)
            return sum(ray.get([w.count_errors.remote(params, images, labels, i, n)
                                for i, w in enumerate(self._worker_actors)]))

        return self._recovering(errors) / len(self._validation)

    def _params(self) -> np.ndarray:
        return self._recovering(lambda: ray.get(self._server.get_params.remote()))

    def _optimizer_state(self) -> dict[str, np.ndarray]:
        return self._recovering(lambda: ray.get(self._server.optimizer_state.remote()))

    def _set_learning_rate(self, learning_rate: float) -> None:
        # The driver's optimizer keeps the rate too, so a replacement server starts with it.
        super()._set_learning_rate(learning_rate)
        self._recovering(lambda: ray.get(self._server.set_learning_rate.remote(learning_rate)))

    def _load_state(self, params: np.ndarray, optimizer_state: dict[str, np.ndarray],
                    position: tuple[int, int]) -> None:
        self._confirmed = tuple(position)  # where a loss meanwhile is said to strike, and replays to
        self._recovering(lambda: ray.get(self._server.load_state.remote(params, optimizer_state, position)))

    def _early_stopping(self, network_spec: dict, window: int, acceptable_error: float | None,
                        best_path: Path | None, notes: dict | None = None) -> StopEvaluatorHandle:
        self._stopping = StopEvaluatorHandle(network_spec, window, acceptable_error, best_path,
                                             node_id=ray.get_runtime_context().get_node_id(),
                                             on_failure=self._count_failure, on_recovery=self._report_recoveries,
                                             notes=notes)
        return self._stopping
