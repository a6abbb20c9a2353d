"""The compiled-graph step protocol: one training step as a Ray Compiled Graph.

The step's data flow is declared once and compiled (``ray.dag`` + ``experimental_compile``)::

    (epoch, step) ─▶ server.params_for ─▶ worker_i.gradient ─▶ server.apply_step ─▶ driver

Ray then runs it over channels it allocates once (shared memory on a host, Ray's transfers
between hosts), with no task submission, scheduling or object-store round trip per step. It works
wherever plain actor calls work, across hosts included; on one host the ``channel`` protocol is
faster still (see ``benchmarks/README.md`` for measurements of all three).

Ray 2.60's compiled graphs have five traps, each handled:

1. An array read from a channel points into the channel's buffer, and the writer cannot reuse the
   buffer while it is alive: the workers compute on the parameters in place and drop them when the
   call returns, the server sums the gradients into its own array and keeps no reference, and the
   driver receives only a step number.
2. ``teardown()`` can block for a long time when actors die or for large buffers: :meth:`close`
   gives it a bounded time in a background thread and never blocks the trainer longer.
3. Actors in a compiled graph wait for their input by spinning on ``sched_yield`` (Ray's
   ``ReadAcquire``; see ray-project/ray#55128), so each takes a core even while it waits: on a
   machine with no more cores than workers they slow the math (the benchmarks show how much).
4. Ray removes the two named semaphores it makes per channel (``/dev/shm/sem.hdr*``, ``sem.obj*``)
   only for an actor that exits by itself; one killed leaves them there for good (18 files a fit
   of two workers). The trainer asks its actors to exit before it kills them.
5. Across nodes, a graph with more than one execution in flight hangs now and then: a step never
   completes, and the graph's teardown then crashes the reading node's raylet (``ChannelError:
   Channel closed`` in ``experimental_mutable_object_provider.cc``), in three runs of four of a
   two-node test cluster; with one execution at a time every run passed. So where the actors span
   nodes, the driver submits one step at a time.

And two costs. When PyTorch is installed, Ray's channel layer imports it in every actor of a graph
(for GPU tensors), about 180 MB per process plus a device check around every read and write.
This graph carries NumPy arrays only, so its actors tell Ray's channel layer to leave PyTorch out.
And a channel starts with a 1 MB buffer; a larger message makes Ray allocate one of exactly the
message's size and keep the old one mapped (Ray 2.60 does not free it), so a message that grows by
a byte (a worker's count of correct samples passing 255 pickles one byte longer) costs another
parameter-sized buffer: on the wide network 15 MB more per worker. The actors therefore start
their channels at the parameters' size plus room for the rest of a message.
"""
from __future__ import annotations

import logging
import threading
from collections import deque

import ray
from ray.dag import InputNode

from .channel import STEP_TIMEOUT_S
from .protocols import ChunkSummary, StepProtocol

# Steps submitted ahead of the one being waited for let the driver's submission of the next step
# overlap the current one; Ray's default limit on executions in flight is 10. But Ray gives every
# channel of the graph one shared-memory buffer per execution in flight, and each actor maps every
# buffer it reads or writes: with the wide network's 7.5 MB parameters and gradients, two steps
# ahead cost each worker 38 MB (peak 252 MB against 214). Submitting ahead pays only while steps are
# short, which is while the arrays are small; so the steps ahead shrink as the parameters grow.
_MAX_STEPS_AHEAD = 2
_BUFFER_BUDGET_BYTES = 8 * 2**20  # per channel


def steps_ahead(parameter_bytes: int) -> int:
    """Steps to submit ahead for parameters of this size: as many as (at most
    ``_MAX_STEPS_AHEAD``) keep a channel's buffers within ``_BUFFER_BUDGET_BYTES``."""
    buffers = _BUFFER_BUDGET_BYTES // max(1, parameter_bytes)
    return max(0, min(_MAX_STEPS_AHEAD, buffers - 1))


# What a gradient message holds besides the gradient (cost, counts, pickle framing: ~20 bytes).
_MESSAGE_ROOM_BYTES = 64 * 2**10

_TEARDOWN_TIMEOUT_S = 10.0


class _LostActorNoise(logging.Filter):
    """Drops Ray's ``Error cancelling worker task`` log record, with its ~45 lines of traceback,
    where the graph's teardown found an actor gone: a loss that the trainer reports in a line of
    its own, and recovers from."""

    def filter(self, record: logging.LogRecord) -> bool:
        lost = record.exc_info is not None and isinstance(record.exc_info[1], ray.exceptions.RayActorError)
        return not (lost and record.getMessage() == "Error cancelling worker task")


_LOST_ACTOR_NOISE = _LostActorNoise()


class CompiledSteps(StepProtocol):
    """Each step is one execution of a compiled graph over the server and the workers."""

    name = "compiled"

    def __init__(self, server, workers: list, parameter_bytes: int, across_nodes: bool = False,
                 step_timeout: float = STEP_TIMEOUT_S):
        super().__init__(server, workers, step_timeout)
        self._ahead = 0 if across_nodes else steps_ahead(parameter_bytes)  # (trap 5)
        buffer_bytes = parameter_bytes + _MESSAGE_ROOM_BYTES
        ray.get([actor.__ray_call__.remote(_prepare_channels, buffer_bytes) for actor in (server, *workers)])
        with InputNode() as command:
            epoch, step = command[0], command[1]
            params = server.params_for.bind(epoch, step)
            results = [worker.gradient.bind(params, epoch, step) for worker in workers]
            applied = server.apply_step.bind(epoch, step, *results)
        # Before the graph runs: Ray's own monitor thread tears it down when a task fails, at times
        # before the trainer does. (A filter is added once, however many graphs add it.)
        logging.getLogger("ray.dag.compiled_dag_node").addFilter(_LOST_ACTOR_NOISE)
        self._graph = applied.experimental_compile(_submit_timeout=step_timeout,
                                                   _max_inflight_executions=self._ahead + 1)

    def run(self, epoch: int, start: int, stop: int) -> ChunkSummary:
        pending: deque = deque()
        waiting_for = start  # the oldest step in flight
        try:
            for step in range(start, stop):
                pending.append(self._graph.execute(epoch, step))
                if len(pending) > self._ahead:
                    ray.get(pending.popleft(), timeout=self.step_timeout)
                    waiting_for += 1
            while pending:
                ray.get(pending.popleft(), timeout=self.step_timeout)
                waiting_for += 1
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayChannelTimeoutError):
            raise self._stalled(epoch, waiting_for) from None
        except ray.exceptions.RayError as e:
            raise self._lost(e, epoch, start) from e
        return self._summary()

    def close(self):
        """Tear the graph down (the actors then take ordinary calls again), waiting at most
        ``_TEARDOWN_TIMEOUT_S``: after a lost actor Ray's own teardown can wait far longer."""
        graph, self._graph = self._graph, None
        if graph is None:
            return
        finished = threading.Thread(target=graph.teardown, name="distnet-compiled-teardown", daemon=True)
        finished.start()
        finished.join(_TEARDOWN_TIMEOUT_S)


def _prepare_channels(actor, buffer_bytes: int) -> None:
    """Runs inside each actor before the graph is compiled: the channels it writes start with
    buffers of at least ``buffer_bytes`` (never resized, see above), and Ray's channel layer treats
    PyTorch as absent (a private flag of Ray 2.x; with another Ray the graph still works, only
    heavier)."""
    from ray.dag import DAGContext

    context = DAGContext.get_current()
    context.buffer_size_bytes = max(context.buffer_size_bytes, buffer_bytes)
    try:
        from ray.experimental.channel.common import ChannelContext

        ChannelContext.get_current()._torch_available = False
    except ImportError:
        pass
