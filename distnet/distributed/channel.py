"""The same-host step channel: shared memory for the arrays, FIFOs for the wake-ups.

Ray actor calls cost about a millisecond per round trip and move every array through the object
store; a mini-batch step of the article's network computes for about a tenth of that. When the
parameter server and the workers run on one host they exchange each step through this channel
instead:

* one shared-memory file holds the parameters, one gradient slot per worker and a row of step
  statistics per worker; nothing is copied between processes, every side maps the same pages;
* per worker a "go" FIFO (server → worker: the epoch and step to compute) and a "done" FIFO
  (worker → server: one status byte);
* beside each FIFO message a counter in the shared memory. A waiting side first watches its
  counter for up to ``SPIN_SECONDS``, giving its core away (``sched_yield``) to anything runnable
  at every look, and only then blocks on the FIFO. Blocking alone costs more than it seems: on a
  virtual machine a process woken from a pipe after ~100 µs asleep starts ~50 µs late and then
  computes up to twice as slowly for a while (its core was idle, its caches cold), which measured
  ~300 µs per step of the article's network; a short yielding watch keeps the step's processes
  awake without taking a core from the math (each look hands the core to any runnable process);
* a pipe whose other end's process died reads end-of-file at once, so a lost worker (or a lost
  server) is noticed on the very step it dies, never by a timeout; one whose process lives but
  does not answer (stopped, say) is given up on after ``STEP_TIMEOUT_S``.

Ray still places, starts and replaces the actors and carries every call around the steps.
"""
from __future__ import annotations

import errno
import math
import mmap
import os
import re
import select
import shutil
import struct
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..nn.parallel_update import usable_cores

_COMMAND = struct.Struct("<ii")  # epoch, step
OK, FAILED = b"\x00", b"\x01"
STATS_COLUMNS = 3  # cost, correct, samples
# How long a waiting side watches its counter before it blocks: longer than the waits between the
# steps of a small network (a parameter update, a worker's gradient), far shorter than a large
# network's steps, whose waits then block and cost a negligible share of the step.
SPIN_SECONDS = 0.002
_COUNTER_STRIDE = 8  # int64s: each counter on its own 64-byte cache line
#: How long the parameter server waits for a worker's step (a step of the wide network takes a
#: tenth of a second; far longer means the worker's process is stuck, or stopped), and, doubled, a
#: worker waits for the server's next step (the server itself may wait that long for another worker).
STEP_TIMEOUT_S = 60.0


class PeerLost(RuntimeError):
    """The process at the other end of a FIFO died (its end of the pipe closed)."""


class PeerStalled(PeerLost):
    """The process at the other end of a FIFO did not answer in time: given up on, as if lost."""


class ChannelUnavailable(RuntimeError):
    """This host has no room for a channel's shared memory (a small /dev/shm, as in a container)."""


@dataclass(frozen=True)
class ChannelSpec:
    """Where a channel lives; picklable, handed to each actor to attach."""

    folder: str
    host: str
    workers: int
    parameters: int
    dtype: str

    def layout(self) -> tuple[int, int, int, int]:
        """Bytes of the parameters, the gradients, the statistics and the step counters."""
        itemsize = np.dtype(self.dtype).itemsize
        params = self.parameters * itemsize
        grads = self.workers * params
        stats = self.workers * STATS_COLUMNS * 8
        counters = (1 + self.workers) * _COUNTER_STRIDE * 8
        return params, grads, stats, counters

    @property
    def memory_path(self) -> Path:
        return Path(self.folder) / "memory"

    def fifo(self, kind: str, worker: int) -> Path:
        return Path(self.folder) / f"{kind}-{worker}"


def create_channel(workers: int, parameters: int, dtype: np.dtype | str) -> ChannelSpec:
    """Create the shared-memory file and FIFOs (in /dev/shm where it exists), first removing the
    channels whose creators have died."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    remove_abandoned_channels(base)
    folder = Path(base) / f"{_creator_prefix()}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    spec = ChannelSpec(str(folder), _host_id(), workers, parameters, np.dtype(dtype).name)
    size = sum(spec.layout())
    try:
        folder.mkdir(mode=0o700)
        with open(spec.memory_path, "wb") as f:
            # Allocated now: a file only truncated to its size is sparse, and where tmpfs has no
            # room for a page when it is first written, the writing process dies (SIGBUS).
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, size)
            else:  # macOS
                f.truncate(size)
        for i in range(workers):
            os.mkfifo(spec.fifo("go", i), 0o600)
            os.mkfifo(spec.fifo("done", i), 0o600)
    except BaseException as e:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.ENOMEM):
            raise ChannelUnavailable(f"{base} has no room for the step channel's {size / 2**20:.1f} MiB of "
                                     f"shared memory ({e.strerror})") from None
        raise
    return spec


def remove_channel(spec: ChannelSpec) -> None:
    shutil.rmtree(spec.folder, ignore_errors=True)


def remove_abandoned_channels(base: str) -> None:
    """Remove the channels in ``base`` whose creating process has died: a channel's names go once
    everyone has attached, so only a crash, or an interruption, while one opens leaves them (the
    shared memory too, up to (workers + 1) x the parameters' size). Only channels of processes
    this one can see (its PID namespace) are judged, and only names as :func:`create_channel`
    makes them (anyone may write into /dev/shm)."""
    name = re.compile(re.escape(_creator_prefix()) + r"([0-9]{1,10})-[0-9a-f]{12}")
    try:
        folders = list(Path(base).iterdir())
    except OSError:
        return  # a new channel does not need the old ones gone
    for folder in folders:
        creator = name.fullmatch(folder.name)
        if creator and not _process_exists(int(creator[1])):
            shutil.rmtree(folder, ignore_errors=True)


def _creator_prefix() -> str:
    """The start of the name of a channel this process creates: "distnet-", then the PID namespace."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # no /proc (macOS): one namespace
        namespace = 0
    return f"distnet-{namespace}-"


def _process_exists(pid: int) -> bool:
    """Whether process ``pid`` may still run: False only when no such process exists (a zombie,
    another user's process and a number no PID can be all count as running: left alone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's; a number no PID can be
        return True
    return True


def reachable(spec: ChannelSpec) -> bool:
    """Whether this process can attach to the channel (it runs on the channel's host)."""
    return spec.host == _host_id() and spec.memory_path.exists()


def _host_id() -> str:
    # Ray's node IDs differ between nodes started on one machine; what matters for shared memory
    # is the machine (its boot), so several local "nodes" share one channel.
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{os.uname().nodename}/{boot}"


class _Attached:
    """The shared arrays, mapped into this process."""

    def __init__(self, spec: ChannelSpec):
        self.spec = spec
        with open(spec.memory_path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), 0)
        params_bytes, grads_bytes, stats_bytes, _ = spec.layout()
        dtype = np.dtype(spec.dtype)
        self.params = np.frombuffer(self._map, dtype, spec.parameters, 0)
        self.grads = np.frombuffer(self._map, dtype, spec.workers * spec.parameters,
                                   params_bytes).reshape(spec.workers, spec.parameters)
        self.stats = np.frombuffer(self._map, np.float64, spec.workers * STATS_COLUMNS,
                                   params_bytes + grads_bytes).reshape(spec.workers, STATS_COLUMNS)
        # started[0]: steps the server has started; finished[i, 0]: steps worker i has finished. Each
        # is written by one side only, always after its FIFO message, so whoever sees a counter
        # move finds the message (and, behind the FIFO's ordering, the arrays) ready.
        counters = np.frombuffer(self._map, np.int64, (1 + spec.workers) * _COUNTER_STRIDE,
                                 params_bytes + grads_bytes + stats_bytes).reshape(1 + spec.workers, _COUNTER_STRIDE)
        self.started, self.finished = counters[0], counters[1:]

    def close(self) -> None:
        # The arrays are views of the map; drop them before unmapping.
        self.params = self.grads = self.stats = self.started = self.finished = None
        try:
            self._map.close()
        except BufferError:  # a caller still holds a view; the map goes with the process
            pass


def _open_read(path: Path) -> int:
    # Non-blocking open of the read end never waits for a writer; then reads block again.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    return fd


def _open_write(path: Path, timeout: float) -> int:
    # A FIFO's write end opens only once a reader has it open; both sides open their read ends
    # first, so this wait is short unless the peer never arrives.
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:  # not "no reader yet": the FIFO is gone, say (a closed channel)
                raise PeerLost(f"cannot open {path.name} of the channel: {e.strerror}") from None
            if time.monotonic() > deadline:
                raise PeerLost(f"no process opened {path.name} within {timeout:.0f} s") from None
            time.sleep(0.001)
            continue
        os.set_blocking(fd, True)
        return fd


def _watch(waiting) -> None:
    """Return once ``waiting()`` is false, or after ``SPIN_SECONDS``; the core is offered to any
    other runnable process at every look."""
    deadline = time.perf_counter() + SPIN_SECONDS
    while waiting() and time.perf_counter() < deadline:
        os.sched_yield()


def _await(fd: int, timeout: float, peer: str) -> None:
    """Return once ``fd`` can be read (a message, or end-of-file), or raise PeerStalled after ``timeout`` s."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(math.ceil(timeout * 1000)):  # (a signal's interruption is retried, PEP 475)
        raise PeerStalled(f"{peer} did not answer within {timeout:g} s (its process is stuck, or stopped)")


def _read_exactly(fd: int, n: int, peer: str) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise PeerLost(f"{peer} closed its end of the step channel (its process died)")
        data += chunk
    return data


class ServerEnd(_Attached):
    """The parameter server's end: wakes every worker for a step and waits for all of them."""

    def __init__(self, spec: ChannelSpec, timeout: float = 120.0):
        super().__init__(spec)
        self.done: list[int] = []
        self.go: list[int] = []
        try:
            self.done += (_open_read(spec.fifo("done", i)) for i in range(spec.workers))
            self.go += (_open_write(spec.fifo("go", i), timeout) for i in range(spec.workers))
        except BaseException:
            self.close()  # what opened, and the map: a failed attach holds nothing
            raise
        self._started = 0
        # While the workers compute, watching takes a core only if one is left over for it.
        self.watch_workers = usable_cores() > spec.workers

    def start_step(self, epoch: int, step: int) -> None:
        message = _COMMAND.pack(epoch, step)
        for i, fd in enumerate(self.go):
            try:
                os.write(fd, message)
            except BrokenPipeError:
                raise PeerLost(f"worker {i} closed its end of the step channel (its process died)") from None
        self._started += 1
        self.started[0] = self._started

    def wait_step(self, timeout: float = STEP_TIMEOUT_S) -> list[int]:
        """Wait for every worker; returns the indices of workers that reported a failure.
        PeerLost for a worker whose process died, PeerStalled for one that has not answered
        within ``timeout`` s."""
        if self.watch_workers:
            _watch(lambda: (self.finished[:, 0] < self._started).any())
        deadline = time.monotonic() + timeout
        failed = []
        for i, fd in enumerate(self.done):
            if self.finished[i, 0] < self._started:  # (else its message is in the FIFO already)
                _await(fd, max(0.0, deadline - time.monotonic()), f"worker {i}")
            if _read_exactly(fd, 1, f"worker {i}") != OK:
                failed.append(i)
        return failed

    def close(self) -> None:
        for fd in self.go + self.done:
            os.close(fd)
        self.go, self.done = [], []
        super().close()


class WorkerEnd(_Attached):
    """A worker's end: waits for its next step, reports it done."""

    def __init__(self, spec: ChannelSpec, worker: int, timeout: float = 120.0):
        super().__init__(spec)
        self.worker = worker
        self.go = self.done = None
        try:
            self.go = _open_read(spec.fifo("go", worker))
            self.done = _open_write(spec.fifo("done", worker), timeout)
        except BaseException:
            self.close()  # what opened, and the map: a failed attach holds nothing
            raise
        self.grad = self.grads[worker]
        self._steps = 0

    def next_step(self, timeout: float = 2 * STEP_TIMEOUT_S) -> tuple[int, int]:
        """The (epoch, step) the server calls for next. PeerLost once the server's process has
        died (or its end closed), PeerStalled if it has called for none within ``timeout`` s."""
        _watch(lambda: self.started[0] <= self._steps)
        if self.started[0] <= self._steps:
            _await(self.go, timeout, "the parameter server")
        command = _COMMAND.unpack(_read_exactly(self.go, _COMMAND.size, "the parameter server"))
        self._steps += 1
        return command

    def finish_step(self, ok: bool = True) -> None:
        try:
            os.write(self.done, OK if ok else FAILED)
        except BrokenPipeError:
            raise PeerLost("the parameter server closed its end of the step channel") from None
        self.finished[self.worker, 0] = self._steps

    def close(self) -> None:
        for fd in (self.go, self.done):
            if fd is not None:
                os.close(fd)
        self.go = self.done = self.grad = None
        super().close()
