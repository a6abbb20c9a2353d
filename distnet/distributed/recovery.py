"""Fault tolerance of a DistributedTrainer's fit: the :class:`Recovery` it is made with.

A lost GradientWorker is started again in its placement-group bundle with its shard from the
object store, the step protocol is opened anew around it, and the interrupted step is redone (the
parameter server knows the first step it has not applied). A lost parameter server is started
again from the run directory's newest checkpoint (or the run's start) and replays the steps since,
which gives exactly the parameters it had, since every step is determined by (seed, epoch, step).
A lost StopEvaluator is restarted by its handle. More than ``max_failures`` losses end the run with
:class:`~distnet.errors.FailureLimitError`, and a failure of Ray that is none of these (an actor
lost while the actors start, say) with :class:`~distnet.errors.RayFailedError`; either way the best
network and the last checkpoint stay as they were, and the error says so (:meth:`Recovery._what_is_kept`).
"""
from __future__ import annotations

import re
import time
from contextlib import suppress

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..checks import count
from ..errors import DistnetError, FailureLimitError, first_line, warn
from ..progress import STALLED
from .gradient_worker import GradientWorker
from .parameter_server import ParameterServer
from .placement import worker_name
from .channel import STEP_TIMEOUT_S
from .protocols import WorkerLostError
from .same_code import check_same_code
from .stop_evaluator import StopEvaluatorActor

__all__ = ["LOST", "Recovery", "answered", "start_failure"]

# What a lost actor looks like to the driver: a protocol's report, or a call on a dead actor.
LOST = (WorkerLostError, ray.exceptions.RayActorError)

# How long a recovery waits for each actor to answer: a live one, on however loaded a host, answers
# within seconds of its step's end; one that has not answered by then is replaced. (A trainer whose
# steps may take longer than the default limit's waits that much longer: see _replace_lost_actors.)
ANSWER_TIMEOUT_S = 30.0
# How long the task that asks them may take to start (a new Python process that imports Ray).
_TASK_START_S = 60.0

_ACTOR_ROLES = {GradientWorker.__name__: "a gradient worker", ParameterServer.__name__: "the parameter server",
                StopEvaluatorActor.__name__: "the stop evaluator"}


def start_failure(error: ray.exceptions.RayActorError) -> str:
    """What an actor whose constructor raised tells the user: which actor, and the exception.
    Ray keeps only the text of a creation task's error: its first line names the actor's class
    in colour codes, its last lines (after the traceback's indented ones) hold the exception."""
    text = str(error)
    actor = re.search(r"ray::(\w+)\.__init__\(\)", text)
    role = _ACTOR_ROLES.get(actor[1], f"an actor ({actor[1]})") if actor else "an actor"
    lines = text.splitlines()
    indented = [i for i, line in enumerate(lines) if line[:1].isspace()]
    exception = lines[indented[-1] + 1:] if indented else []
    if not exception or not re.match(r"[A-Za-z_][\w.]*(:|$)", exception[0]):
        return f"{role} could not start ({first_line(error)})"
    return f"{role} could not start ({exception[0][:300]})"


def answered(calls: list[tuple], timeout: float) -> list[bool]:
    """Which of these calls ``(actor, method, *args)``, one per actor, were answered within
    ``timeout`` s, i.e. which actors are alive (one dead, or stuck, is replaced). The calls come
    from a task of their own: Ray runs an actor's calls from one caller in the order they were
    sent, so the driver's would wait behind the steps it sent the actor before, which a stalled
    step holds up."""
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.get(_answered.options(scheduling_strategy=here).remote(calls, timeout),
                   timeout=timeout + _TASK_START_S)


@ray.remote(num_cpus=0, max_retries=0)
def _answered(calls: list[tuple], timeout: float) -> list[bool]:
    pending = [getattr(actor, method).remote(*args) for actor, method, *args in calls]
    ray.wait(pending, num_returns=len(pending), timeout=timeout)
    alive = []
    for call in pending:
        try:
            ray.get(call, timeout=0)
            alive.append(True)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            alive.append(False)  # dead, or stuck: either way it is replaced
    return alive


class Recovery:
    """The fault tolerance of :class:`~distnet.distributed.trainer.DistributedTrainer`, a base
    class of it: each call on the actors goes through :meth:`_recovering`, which replaces the
    actors lost meanwhile, counts and reports the failure, and tries again.

    A base class rather than an object the trainer holds, since recovering is done to the
    trainer's own state: its actors (``_server``, ``_worker_actors``, ``placement``, ``_steps``),
    where the run stands (``_confirmed``, ``_origin``, ``_plan``, ``_run``) and how it starts them
    (``_start_worker``, ``_start_server``, ``_open_steps``).
    """

    def _recovering(self, call, again=None):
        """``call()``; after a loss, the lost actors are replaced and ``again()`` (default: ``call()``)
        is tried, as often as ``max_failures`` allows. A replacement whose constructor raised is no
        loss: its error ends the run (another start would only raise it again)."""
        attempt = call
        while True:
            try:
                return attempt()
            except LOST as e:
                cause = e
            while True:  # a recovery can itself be interrupted by another loss
                try:
                    self._replace_lost_actors(cause)
                    break
                except LOST as e:
                    if isinstance(e, ray.exceptions.RayActorError) and e.actor_init_failed:
                        raise
                    cause = e
            self._report_recoveries()
            attempt = again or call

    def _count_failure(self, what: str) -> None:
        """A loss found, before its actors are replaced: recorded in the run directory (whose
        summary lists the failures of every session), and FailureLimitError beyond
        ``max_failures``; else it is reported once they are (:meth:`_report_recoveries`)."""
        self.failures.append(what)
        if self._run is not None:
            try:
                self._run.append_failure(what)
            except OSError as e:  # a full disk, say: the recovery goes on all the same
                warn(f"cannot record the failure in {self._run.failures_path} ({e.strerror or e}); the run "
                     f"goes on, and its summary will not list it")
        if len(self.failures) <= self.max_failures:
            self._unreported.append((what, len(self.failures)))
            return
        # A failure is one recovery: it may have replaced several actors (a node that held them).
        kept = self._what_is_kept()
        if kept:
            setting = "max_failures=N" if self._run.started_by_fit() else "--max-failures N"
            kept += f" (which counts failures afresh; {setting} allows another number)"
        raise FailureLimitError(f"giving up after {count(len(self.failures), 'failure')} (max_failures="
                                f"{self.max_failures}); the last: {what}{kept}")

    def _report_recoveries(self) -> None:
        """Tell the fit's reporter of each failure recovered from since the last call (a reporter
        without ``on_recovery``, one of the user's own, hears nothing of them)."""
        report = getattr(self._reporter, "on_recovery", None)
        unreported, self._unreported = self._unreported, []
        for what, number in unreported if callable(report) else ():
            report(what, number, self.max_failures)

    def _what_is_kept(self, cpus_now: int | None = None) -> str:
        """For a run that fails: what of it stays, and how to go on (on fewer workers, where the
        cluster has ``cpus_now`` CPUs, fewer than the run's workers)."""
        if self._run is None or not self._run.has_checkpoint():
            return ""
        command = self._run.resume_command(address=self.address)
        kept = (f"; the best network so far and the last checkpoint in {self._run.path} are intact: "
                f"continue with {command}")
        if cpus_now is not None and 0 < cpus_now < self.shards:
            kept += (f" once the cluster has room for {count(self.shards, 'worker')} again, or now on the "
                     f"{count(cpus_now, 'CPU')} it has with {self._resume_on(cpus_now)}")
        return kept

    def _resume_on(self, workers: int) -> str:
        """The command that continues the run on ``workers`` workers, and what that does to its batches."""
        return (f"{self._run.resume_command(workers=workers, address=self.address)} (from there its mini-batches "
                f"are drawn from {count(workers, 'shard')}: another draw of the same training)")

    def _replace_lost_actors(self, cause: Exception) -> None:
        """After ``cause`` (a loss, or what looked like one): the lost actors counted as a failure
        and replaced, the step protocol opened anew and the steps confirmed so far replayed; or
        the error an actor raised itself, re-raised, where none was lost."""
        # Closing the protocol first frees the survivors (a channel's workers wait for the server).
        with suppress(ray.exceptions.RayError):
            self._steps.close()
        server_alive, *workers_alive = answered([(self._server, "params_finite")]
                                               + [(w, "where") for w in self._worker_actors],
                                               ANSWER_TIMEOUT_S + max(0.0, self.step_timeout - STEP_TIMEOUT_S))
        lost = [f"worker {i} (pid {self.placement[i]['pid']})" for i, alive in enumerate(workers_alive)
                if not alive] + ([] if server_alive else ["the parameter server"])
        raised = cause.__cause__ if isinstance(cause, WorkerLostError) else None
        if not lost and isinstance(raised, ray.exceptions.RayTaskError):
            # Every actor is there: one raised an error of its own (out of memory, a bug), which a
            # retry would only raise again. That error, then, not a loss (see
            # DistributedTrainer._session).
            raise raised
        when = self._when(cause)
        self._count_failure(f"{', '.join(lost)} lost {when}" if lost else f"{STALLED} {when}, every actor answering")
        self._restart(server_alive, workers_alive)
        # A new server stands at its checkpoint, and one whose replay was cut short by another
        # loss somewhere after it: either way short of the steps confirmed so far.
        self._replay(tuple(ray.get(self._server.next_position.remote())), self._confirmed)

    def _when(self, cause: Exception) -> str:
        """Where in the run ``cause`` struck, for the failure's record."""
        if isinstance(cause, WorkerLostError):
            return f"at epoch {cause.epoch + 1}, step {cause.step}"
        if isinstance(cause, ray.exceptions.RayTaskError) and isinstance(cause.cause, BaseException):
            cause = cause.cause  # an actor's call that failed on a lost actor: what was lost, not the wrapper
        return f"in epoch {self._confirmed[0] + 1} ({cause.__class__.__name__})"

    def _restart(self, server_alive: bool, workers_alive: list[bool]) -> None:
        """New actors in place of the lost ones (a server from the newest checkpoint), and the step
        protocol opened anew between them all."""
        for i, alive in enumerate(workers_alive):
            if not alive:
                ray.kill(self._worker_actors[i])
                self._start_replacement(i)
        if not server_alive:
            ray.kill(self._server)
            self._server = self._restore_server()
        self._steps = self._open_steps()
        self.active_protocol = self._steps.name

    def _start_replacement(self, index: int) -> None:
        """A new worker ``index`` in its placement-group bundle, running within ``placement_timeout``.

        A replacement that dies before it starts is started again: the same loss, not another. (A
        node that stops answering is declared dead only some seconds later; until then its bundles
        stay there, and so does a replacement started in one, which dies with the node.)"""
        deadline = time.monotonic() + self.placement_timeout
        while True:
            self._worker_actors[index] = self._start_worker(index)
            try:
                where = self._worker_actors[index].where.remote()
                self.placement[index] = ray.get(where, timeout=max(0.0, deadline - time.monotonic()))
                check_same_code({worker_name(index, self.placement[index]): self._worker_actors[index]})
                return
            except ray.exceptions.RayActorError as e:
                if e.actor_init_failed:
                    raise  # an error of its own, which another start would only raise again
                if time.monotonic() >= deadline:
                    break
            except ray.exceptions.GetTimeoutError:
                break
        cpus = None
        with suppress(ray.exceptions.RayError):
            cpus = int(ray.cluster_resources().get("CPU", 0))  # the nodes alive now
        raise DistnetError(f"cannot start a replacement for worker {index} within "
                           f"{self.placement_timeout:g} s: its placement-group bundle has no room "
                           f"(was its node lost?){self._what_is_kept(cpus)}") from None

    def _restore_server(self):
        """A new parameter server in the state of the newest checkpoint (or of the run's start)."""
        epoch, step, params, optimizer_state = self._origin
        if self._run is not None and self._run.has_checkpoint():
            checkpoint = self._run.load_checkpoint()
            epoch, step, params, optimizer_state = (checkpoint.epoch, checkpoint.step, checkpoint.params,
                                                    checkpoint.optimizer_state)
        return self._start_server(params, optimizer_state, (epoch, step))

    def _replay(self, start: tuple[int, int], stop: tuple[int, int]) -> None:
        """Run every step from position ``start`` up to (not including) ``stop``, each epoch at its
        scheduled learning rate; the server is left at the rate of ``stop``'s epoch."""
        per_epoch = self._plan.steps_per_epoch
        position, end = start[0] * per_epoch + start[1], stop[0] * per_epoch + stop[1]
        while position < end:
            epoch, step = divmod(position, per_epoch)
            upto = min(end, (epoch + 1) * per_epoch)
            self._set_server_rate(epoch)
            self._steps.run(epoch, step, upto - epoch * per_epoch)  # its statistics were counted already
            position = upto
        self._set_server_rate(stop[0])

    def _set_server_rate(self, epoch: int) -> None:
        if self.schedule is not None:
            ray.get(self._server.set_learning_rate.remote(self._scheduled_rate(epoch)))
