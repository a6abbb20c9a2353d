"""Step protocols: how one chunk of steps runs on the parameter server and the workers.

Each protocol runs steps [start, stop) of an epoch and either completes them all, returning the
parameter server's :data:`ChunkSummary` of the steps applied since the last summary, or raises
:class:`WorkerLostError` naming the first step that was *not* applied: every step before it was
applied exactly once (its statistics stay on the server for the next summary), so a caller can
replace actors and carry on from there. A step that waits more than the protocol's
``step_timeout`` for an actor (alive but stuck, or stopped) ends the chunk the same way (a
channel's stalled server, which cannot be asked, is named at the last step it called for, which it
may have applied).
"""
from __future__ import annotations

import time
from contextlib import suppress

import ray

from ..errors import ConfigError, warn
from .channel import STEP_TIMEOUT_S, ChannelSpec, ChannelUnavailable, reachable, remove_channel

# (summed cost in StepStats' units, correctly classified samples, samples, whether every parameter
# is finite)
ChunkSummary = tuple[int | float, int, int, bool]
# How long closing a protocol (and the trainer's close after it) waits for the actors: a live one
# answers within a chunk of steps (about a second) and a lost one at once, so longer means hung.
CLOSE_TIMEOUT_S = 30.0
# Once every worker's part of a chunk has ended, the server has the chunk's last update and its
# summary left to do (milliseconds): far longer means it is stuck, or stopped.
SERVER_GRACE_S = 10.0


class WorkerLostError(RuntimeError):
    """A worker (or the parameter server) failed, died or stalled during a chunk of steps."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.epoch, self.step = epoch, step


def first_unapplied_step(server, epoch: int, start: int) -> int:
    """After a failed chunk of ``epoch`` that began at ``start``: the first step the server has
    not applied (it applies steps in order, each exactly once)."""
    next_epoch, next_step = ray.get(server.next_position.remote())
    return next_step if next_epoch == epoch else start


class StepProtocol:
    """How the steps of a chunk travel between the workers and the parameter server: ``run``
    applies steps ``start..stop-1`` of ``epoch`` and returns their summary, or raises
    WorkerLostError saying the first step not applied; ``close`` lets the actors go (they may
    then run another protocol). A step waits at most ``step_timeout`` s for an actor."""

    name = ""

    def __init__(self, server, workers: list, step_timeout: float = STEP_TIMEOUT_S):
        self.server, self.workers, self.step_timeout = server, workers, step_timeout

    def run(self, epoch: int, start: int, stop: int) -> ChunkSummary:
        raise NotImplementedError

    def _summary(self) -> ChunkSummary:
        return ray.get(self.server.take_stats.remote())

    def _lost(self, error: Exception, epoch: int, start: int) -> WorkerLostError:
        """The WorkerLostError for a chunk from ``start`` that ``error`` (Ray's) ended."""
        applied = first_unapplied_step(self.server, epoch, start)
        return WorkerLostError(f"a step failed at epoch {epoch + 1}, step {applied}: {error}", epoch, applied)

    @staticmethod
    def _stalled(epoch: int, step: int) -> WorkerLostError:
        """The WorkerLostError for a chunk whose ``step`` waited ``step_timeout`` for an actor, every
        step before it applied (the driver's own call to ask the server would wait behind the
        stalled step)."""
        return WorkerLostError(f"a step stalled at epoch {epoch + 1}, step {step}", epoch, step)

    def close(self) -> None:
        pass


class PlainSteps(StepProtocol):
    """Ordinary actor calls, chained without waiting: each worker's gradient goes straight to the
    parameter server, whose new parameters go straight to the next step's workers. Works across
    hosts; costs about a millisecond of Ray overhead per step."""

    name = "plain"

    def run(self, epoch: int, start: int, stop: int) -> ChunkSummary:
        params = self.server.get_params.remote()
        applied = []  # per step, the step's number once applied (small, unlike the parameters)
        for step in range(start, stop):
            grads = [w.gradient.remote(params, epoch, step) for w in self.workers]
            params, step_applied = self.server.apply.options(num_returns=2).remote(epoch, step, *grads)
            applied.append(step_applied)
        waiting_for = start
        try:
            for step_applied in applied:
                ray.get(step_applied, timeout=self.step_timeout)
                waiting_for += 1
        except ray.exceptions.GetTimeoutError:
            raise self._stalled(epoch, waiting_for) from None
        except ray.exceptions.RayError as e:
            raise self._lost(e, epoch, start) from e
        return self._summary()


class ChannelSteps(StepProtocol):
    """Same-host shared memory and FIFOs (:mod:`distnet.distributed.channel`): one Ray call per
    actor per chunk (the server's answer carries the chunk's summary), microseconds of coordination
    per step."""

    name = "channel"

    def __init__(self, server, workers, spec, step_timeout: float = STEP_TIMEOUT_S):
        super().__init__(server, workers, step_timeout)
        self.spec = spec
        self.closed = False

    @classmethod
    def open(cls, server, workers, required: bool, step_timeout: float = STEP_TIMEOUT_S) -> "ChannelSteps | None":
        """Connect everyone to a new channel; None (or ConfigError if ``required``) when some
        worker runs on another host, or the host has no room for the channel."""
        try:
            spec = ray.get(server.create_channel.remote(len(workers)))
        except ChannelUnavailable as e:  # (Ray's error for an actor's exception is an instance of its class)
            reason = getattr(e, "cause", e)
            if required:
                raise ConfigError(f"protocol 'channel': {reason}; give the host's shared memory more room (in "
                                  f"Docker: --shm-size), or use protocol 'plain'") from None
            warn(f"{reason}: the steps go by plain actor calls, slower for a small network (in Docker, "
                 f"--shm-size gives the shared memory more room)")
            return None
        try:
            if not all(ray.get([w.can_reach.remote(spec) for w in workers])):
                if required:
                    raise ConfigError("protocol 'channel' needs the parameter server and every worker on "
                                      "one host, sharing its /dev/shm (not in containers of their own); use "
                                      "protocol 'plain' (or 'auto') on a multi-host cluster")
                return None
            _connect(server, workers, spec)
            return cls(server, workers, spec, step_timeout)
        finally:
            # Once everyone holds the memory mapped and the FIFOs open the names can go, so that no
            # crash (of a driver, server or worker) can leave files behind in /dev/shm; nor may a
            # failure on the way there. (A crash on the way: the next channel created on the host
            # removes them, its creator being gone.)
            _remove_channel(server, spec)

    def run(self, epoch: int, start: int, stop: int) -> ChunkSummary:
        # A worker waits for the server's next step up to twice as long as the server waits for a
        # worker's: the server may be waiting that long for another worker.
        pending = [w.serve_steps.remote(epoch, start, stop, 2 * self.step_timeout) for w in self.workers]
        done, summary = self._server_answer(self.server.serve_steps.remote(epoch, start, stop, self.step_timeout),
                                            pending, epoch, start)
        if summary is None:
            message, error = self._cause(pending, epoch, start + done)
            raise WorkerLostError(message, epoch, start + done) from error
        # Every step was applied, and the server has handed over their statistics: a worker lost (or
        # stalled) after its last step must not undo that (the next chunk finds it so).
        with suppress(ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            ray.get(pending, timeout=SERVER_GRACE_S)
        return summary

    @staticmethod
    def _server_answer(serving, pending, epoch: int, start: int) -> tuple[int, ChunkSummary | None]:
        """The server's answer to its part of the chunk (``serving``); WorkerLostError if it has
        given none ``SERVER_GRACE_S`` after every worker's part ended (a worker ends its part
        early when the server calls for no step in time), naming the last step it called for."""
        running = list(pending)
        while running:
            ready, _ = ray.wait([serving, *running], num_returns=1)
            if serving in ready:
                return ray.get(serving)
            running.remove(ready[0])
        if ray.wait([serving], timeout=SERVER_GRACE_S)[0]:
            return ray.get(serving)
        called_for = [0]
        for part in pending:
            with suppress(ray.exceptions.RayError):
                called_for.append(ray.get(part))
        step = start + max(0, max(called_for) - 1)
        raise WorkerLostError(f"the parameter server stopped answering at epoch {epoch + 1}, step {step}", epoch,
                              step)

    @staticmethod
    def _cause(pending, epoch: int, step: int) -> tuple[str, Exception | None]:
        """What stopped the chunk, and the worker's error (None: none answered with one)."""
        # The worker that failed or died answers at once, and a worker the server told to stop
        # ends without error; the others wait for the channel to close, so only briefly for them.
        deadline = time.monotonic() + 5
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                ray.get(ready[0])
            except Exception as e:  # the first worker failure is the cause
                return f"a worker failed at epoch {epoch + 1}, step {step}: {e}", e
        return f"a worker stopped answering at epoch {epoch + 1}, step {step}", None

    def close(self):
        """Detach the parameter server and every worker from the channel, so that none keeps its
        memory mapped (the survivors of a lost actor go on with the protocol opened next, which
        may be another); GetTimeoutError if the server has not answered within
        ``CLOSE_TIMEOUT_S`` (hung). A lost actor has nothing to close, and the channel's files
        were removed when it opened. Once closed, closing again does nothing: a recovery that
        failed after closing it may have put a worker that never joined it (nor started, at times)
        into the workers' list."""
        if self.closed:
            return
        self.closed = True
        server = self.server.disconnect.remote()
        # Sent at once: a worker still serving a chunk takes its call when the server's end closes.
        workers = [w.disconnect.remote() for w in self.workers]
        ray.wait([server, *workers], num_returns=1 + len(workers), timeout=CLOSE_TIMEOUT_S)
        for call in workers:
            with suppress(ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                ray.get(call, timeout=0)  # a lost or hung worker: the trainer replaces or kills it
        with suppress(ray.exceptions.RayActorError):
            ray.get(server, timeout=0)


def _connect(server, workers, spec: ChannelSpec) -> None:
    """Everyone attached to the channel, or the first failure raised at once."""
    pending = [server.connect.remote(spec)] + [w.connect.remote(spec) for w in workers]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            ray.get(ready[0])
        except ray.exceptions.RayError:
            # A worker lost now leaves the server waiting (two minutes) for its end of a FIFO: with
            # the channel's files gone (from this host, where the driver usually is), that wait ends at once.
            if reachable(spec):
                remove_channel(spec)
            raise


def _remove_channel(server, spec: ChannelSpec) -> None:
    try:
        ray.get(server.remove_channel.remote(spec))
    except ray.exceptions.RayError:
        if reachable(spec):  # the server is lost, and its host is this one
            remove_channel(spec)
