"""The same-host step channel without Ray: a ParameterServer and two GradientWorkers (the plain
classes the actors wrap) in threads of this process, over a real channel (shared memory and
FIFOs). What a chunk of steps computes, and what it reports, whatever goes wrong in between."""
import contextlib
import dataclasses
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import ray

from distnet import ConfigError, Dense, Nesterov, Network
from distnet.batches import BatchPlan
from distnet.distributed import channel as ch
from distnet.distributed.gradient_worker import GradientWorker
from distnet.distributed.parameter_server import ParameterServer
from distnet.distributed.protocols import ChannelSteps

STEPS = 6
WORKERS = 2


def network():
    return Network([Dense(8, "leaky_relu"), Dense(3, "softmax")], input_size=5, seed=2, dtype=np.float64)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.random((100, 5)), rng.integers(0, 3, 100)


def connected(data, prepare_worker=lambda worker: None):
    """A ParameterServer and WORKERS GradientWorkers (each given to ``prepare_worker`` first) on a
    fresh channel: (workers, server, channel spec)."""
    images, labels = data
    net = network()
    plan = BatchPlan(len(images), batch_size=10, shards=WORKERS, seed=1)
    plan_args = {"n_samples": plan.n_samples, "batch_size": 10, "shards": WORKERS, "seed": 1}
    workers = [GradientWorker(i, net.spec(), images[lo:hi], labels[lo:hi], plan_args)
               for i, (lo, hi) in enumerate(plan.shard_ranges)]
    for worker in workers:
        prepare_worker(worker)
    server = ParameterServer(net.spec(), net.params, Nesterov(0.1, 0.9).spec(), 1e-3)
    spec = server.create_channel(WORKERS)
    connect_all(server, workers, spec)
    return workers, server, spec


def connect_all(server, workers, spec) -> None:
    """Connect the server and the workers to the channel ``spec`` all at once, as the trainer's
    calls do: each side waits for the other's FIFO ends."""
    connecting = [threading.Thread(target=w.connect, args=(spec,), daemon=True) for w in workers]
    for thread in connecting:
        thread.start()
    server.connect(spec)
    for thread in connecting:
        thread.join(timeout=30)


def run_chunk(data, prepare_worker=lambda worker: None):
    """Steps 0..STEPS-1 of epoch 0 over a fresh channel; returns the server's answer (steps done,
    summary), its parameters, and what the workers raised."""
    workers, server, spec = connected(data, prepare_worker)
    errors = []

    def serve(worker):
        try:
            worker.serve_steps(0, 0, STEPS)
        except BaseException as e:
            errors.append(e)
            worker.disconnect()  # so that a server waiting for this worker notices, and no test hangs

    threads = [threading.Thread(target=serve, args=(w,), daemon=True) for w in workers]
    try:
        for thread in threads:
            thread.start()
        answer = server.serve_steps(0, 0, STEPS)
    finally:
        close(workers, server, spec, threads)
    return answer, server.get_params(), errors


def close(workers, server, spec, threads) -> None:
    """As the driver closes the protocol (which frees workers waiting for a step), then the rest;
    every thread serving the chunk has ended."""
    server.disconnect()
    for thread in threads:
        thread.join(timeout=30)
    for worker in workers:
        worker.disconnect()
    server.remove_channel(spec)
    assert not any(thread.is_alive() for thread in threads)


def test_a_chunk_over_the_channel_applies_every_step_and_returns_its_statistics(data):
    (done, summary), params, errors = run_chunk(data)
    assert (done, errors) == (STEPS, [])
    cost, correct, samples, finite = summary
    assert samples == STEPS * 10 and 0 <= correct <= samples and cost > 0 and finite
    # The same mini-batches, split the same way, through the server's ordinary call.
    images, labels = data
    net = network()
    plan = BatchPlan(len(images), batch_size=10, shards=WORKERS, seed=1)
    server = ParameterServer(net.spec(), net.params, Nesterov(0.1, 0.9).spec(), 1e-3)
    targets = np.eye(3)[labels]
    for step, rows in enumerate(plan.epoch_batches(0)[:STEPS]):
        net.set_params(server.get_params())
        results = []
        for part in np.split(rows, [plan.shard_batch_sizes[0]]):
            grad, cost, correct = net.backprop(images[part], targets[part])
            results.append((grad, cost, correct, len(part)))
        server.apply(0, step, *results)
    np.testing.assert_array_equal(params, server.get_params())
    assert server.take_stats() == summary


def test_a_next_batch_that_cannot_be_gathered_early_is_gathered_again_at_its_step(data):
    (done, summary), params, _ = run_chunk(data)
    calls = []

    def failing_once(worker):
        gather = worker._batch

        def batch(epoch, step):
            calls.append((worker.index, step))
            if (worker.index, step) == (1, 3) and calls.count((1, 3)) == 1:
                raise MemoryError("no room for the next batch just now")
            return gather(epoch, step)

        worker._batch = batch

    (done_again, summary_again), params_again, errors = run_chunk(data, failing_once)
    assert (done_again, summary_again, errors) == (done, summary, [])
    np.testing.assert_array_equal(params_again, params)
    # Worker 1 gathered step 3 twice: ahead of it (which failed) and at the step itself.
    assert [step for index, step in calls if index == 1] == [0, 1, 2, 3, 3, 4, 5]


def test_a_worker_that_fails_ends_the_chunk_with_the_steps_done_and_no_statistics(data):
    def failing_at_step_4(worker):
        backprop = worker._backprop

        def failing(batch, out):
            if worker.index == 0 and worker._channel._steps == 5:  # the fifth command: step 4
                raise FloatingPointError("injected")
            return backprop(batch, out)

        worker._backprop = failing

    (done, summary), _, errors = run_chunk(data, failing_at_step_4)
    assert (done, summary) == (4, None)
    assert [str(e) for e in errors] == ["injected"]


def test_a_worker_that_does_not_answer_in_time_ends_the_chunk_as_a_lost_one_would(data):
    """Worker 1 hangs in its step 3 (stopped, say): the server gives up on it after its step time
    limit, every step before applied, instead of waiting as long as the worker hangs; the worker,
    once it goes on, finds the server's end closed and ends its part without error."""
    hanging, served = threading.Event(), []

    def hangs_at_step_3(worker):
        backprop, serve = worker._backprop, worker.serve_steps

        def hanging_backprop(batch, out):
            if worker.index == 1 and worker._channel._steps == 4:  # the fourth command: step 3
                hanging.wait(30)
            return backprop(batch, out)

        worker._backprop = hanging_backprop
        worker.serve_steps = lambda *args: served.append((worker.index, serve(*args)))

    workers, server, spec = connected(data, hangs_at_step_3)
    threads = [threading.Thread(target=w.serve_steps, args=(0, 0, STEPS), daemon=True) for w in workers]
    try:
        for thread in threads:
            thread.start()
        started = time.monotonic()
        assert server.serve_steps(0, 0, STEPS, step_timeout=0.5) == (3, None)
        assert 0.5 <= time.monotonic() - started < 10
        assert not np.array_equal(server.get_params(), network().params)  # steps 0-2 applied
    finally:
        server.disconnect()  # as the driver closes the protocol: worker 0 waits for a step until then
        hanging.set()
        close(workers, server, spec, threads)
    assert sorted(served) == [(0, 4), (1, 4)]  # each was called for steps 0-3


def test_a_worker_gives_up_on_a_server_that_calls_for_no_step_in_time(data):
    workers, server, spec = connected(data)
    try:
        started = time.monotonic()
        assert workers[0].serve_steps(0, 0, STEPS, server_timeout=0.5) == 0  # (no server serves the chunk)
        assert 0.5 <= time.monotonic() - started < 10
    finally:
        close(workers, server, spec, [])


def descriptors_into(folder: str) -> int:
    """This process's open files in ``folder`` (others, such as Ray's in a session-wide instance,
    may come and go meanwhile)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(folder)
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts this process's open files in /proc")
def test_an_attach_that_fails_keeps_nothing_open():
    spec = ch.create_channel(WORKERS, 10, np.float64)
    try:
        with pytest.raises(ch.PeerLost, match="no process opened go-0 within 0 s"):
            ch.ServerEnd(spec, timeout=0.05)  # no worker attaches
        with pytest.raises(ch.PeerLost, match="no process opened done-1 within 0 s"):
            ch.WorkerEnd(spec, 1, timeout=0.05)  # no server attaches
        assert descriptors_into(spec.folder) == 0
    finally:
        ch.remove_channel(spec)


class Handle:
    """What ChannelSteps.open uses of an actor handle: ``handle.method.remote(...)``, run at once
    (with ray.get passing values through)."""

    def __init__(self, **methods):
        self._methods = methods

    def __getattr__(self, name):
        return SimpleNamespace(remote=self._methods[name])


def lost(*args):
    raise ray.exceptions.RayActorError()


@pytest.mark.parametrize("remove", ["by the server", "here, the server being lost"])
def test_a_channel_that_fails_to_open_leaves_no_files(monkeypatch, remove):
    monkeypatch.setattr(ray, "get", lambda value, **options: value)
    created = []

    def create(workers):
        created.append(ch.create_channel(workers, 10, np.float64))
        return created[-1]

    def refuse(spec):
        raise RuntimeError("this worker cannot attach")

    server = Handle(create_channel=create, connect=lambda spec: None,
                    remove_channel=ch.remove_channel if remove == "by the server" else lost)
    workers = [Handle(can_reach=ch.reachable, connect=refuse)]
    with pytest.raises(RuntimeError, match="this worker cannot attach"):
        ChannelSteps.open(server, workers, required=True)
    assert not os.path.exists(created[0].folder)


def test_a_worker_asked_for_another_step_tells_the_server_instead_of_leaving_it_waiting(data):
    """As a Ray actor, a worker whose task raised keeps its channel open: the server must hear of
    the failure from the worker itself (it waited for ever when the step's check failed)."""
    workers, server, spec = connected(data)
    errors, answer = [], []

    def serve(worker, epoch):
        try:
            worker.serve_steps(epoch, 0, STEPS)
        except BaseException as e:  # and no disconnect: the actor's task just ends
            errors.append(e)

    threads = [threading.Thread(target=serve, args=(w, w.index), daemon=True) for w in workers]  # worker 1: epoch 1
    threads.append(threading.Thread(target=lambda: answer.append(server.serve_steps(0, 0, STEPS)), daemon=True))
    try:
        for thread in threads:
            thread.start()
        threads[-1].join(timeout=30)
        assert answer == [(0, None)]  # the chunk ended at its first step, without a summary
        threads[1].join(timeout=30)  # worker 1 raises once it has told the server: maybe only now
        assert [str(e) for e in errors] == ["worker 1 is at epoch 1 step 0, but the parameter server asked for "
                                            "another step"]
    finally:
        close(workers, server, spec, threads)  # worker 0 waits for a next step until then


def test_a_channel_is_reachable_on_its_host_only_where_its_shared_memory_is_in_view(tmp_path):
    spec = ch.create_channel(WORKERS, 1000, np.float64)
    try:
        assert ch.reachable(spec)
        assert not ch.reachable(dataclasses.replace(spec, host="another-machine/" + spec.host.split("/")[1]))
        # The same machine, but a /dev/shm of its own (a container's): the name leads nowhere.
        assert not ch.reachable(dataclasses.replace(spec, folder=str(tmp_path / "private-shm" / "channel")))
    finally:
        ch.remove_channel(spec)


def test_a_channel_s_memory_is_allocated_when_it_is_created():
    # A sparse file's pages are allocated when first written: on a full tmpfs that kills the writer.
    spec = ch.create_channel(WORKERS, 1000, np.float64)
    try:
        assert os.stat(spec.memory_path).st_blocks * 512 >= sum(spec.layout())
    finally:
        ch.remove_channel(spec)


def test_no_room_for_a_channel_is_said_and_leaves_no_files(monkeypatch):
    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    # This process's channels only: other processes on the machine (another test session's actors)
    # make and remove their own meanwhile.
    ours = f"{ch._creator_prefix()}{os.getpid()}-"
    before = {name for name in os.listdir(base) if name.startswith(ours)}
    with pytest.raises(ch.ChannelUnavailable, match=rf"^{base} has no room for the step channel's 0.2 MiB of shared "
                                                    r"memory \(No space left on device\)$"):
        ch.create_channel(WORKERS, 10_000, np.float64)
    # (It may remove a channel that a process killed elsewhere left, abandoned: none may be added.)
    assert {name for name in os.listdir(base) if name.startswith(ours)} <= before

    monkeypatch.setattr(ray, "get", lambda value, **options: value)

    def create(workers):
        return ch.create_channel(workers, 10_000, np.float64)

    server, workers = Handle(create_channel=create), [Handle(), Handle()]
    with pytest.warns(UserWarning, match=r"no room for the step channel's .*: the steps go by plain actor calls"):
        assert ChannelSteps.open(server, workers, required=False) is None  # "auto": plain calls instead
    with pytest.raises(ConfigError, match=r"protocol 'channel': .* has no room .*--shm-size\), or use protocol 'plain'"):
        ChannelSteps.open(server, workers, required=True)


def test_the_channel_of_a_creator_that_died_while_it_opened_is_removed_when_the_next_is_created(tmp_path):
    """Its names go once everyone has attached: a crash (or Ctrl-C) before that left them, and the
    shared memory, in /dev/shm for good. Only channels of a process that is gone are removed."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)
    spec = ch.create_channel(WORKERS, 10, np.float64)
    ch.remove_channel(spec)
    base, prefix = Path(spec.folder).parent, ch._creator_prefix()
    tag = uuid.uuid4().hex[:12]  # as create_channel names them
    folders = {"abandoned": base / f"{prefix}{int(ended.stdout)}-{tag}",
               "of a live creator": base / f"{prefix}{os.getpid()}-{tag}",
               "of another PID namespace": base / f"distnet-1-{int(ended.stdout)}-{tag}",
               "no PID": base / f"{prefix}99999999999-{tag}", "not ASCII digits": base / f"{prefix}\u00b2-{tag}",
               "named otherwise": base / f"{prefix}{int(ended.stdout)}-{tag}-mine"}
    try:
        for folder in folders.values():
            folder.mkdir()
            (folder / "memory").write_bytes(b"x")
        spec = ch.create_channel(WORKERS, 10, np.float64)
        ch.remove_channel(spec)
        assert [name for name, folder in folders.items() if not folder.exists()] == ["abandoned"]
    finally:
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)


def test_a_fifo_that_is_gone_is_said_at_once_not_as_a_peer_that_never_came():
    spec = ch.create_channel(WORKERS, 10, np.float64)
    ch.remove_channel(spec)  # as once everyone has attached
    with pytest.raises(ch.PeerLost, match=r"^cannot open go-0 of the channel: No such file or directory$"):
        ch._open_write(spec.fifo("go", 0), timeout=30)


def test_workers_evaluate_on_the_parameters_in_the_channel(data):
    # Over a channel the driver hands the workers no copy of the parameters to evaluate: they read
    # the server's where they are, and must count what a copy would give.
    images, labels = data
    workers, server, spec = connected(data)
    threads = [threading.Thread(target=w.serve_steps, args=(0, 0, STEPS), daemon=True) for w in workers]
    try:
        for thread in threads:
            thread.start()
        assert server.serve_steps(0, 0, STEPS)[0] == STEPS
        for thread in threads:
            thread.join(timeout=30)
        params = server.get_params()
        assert not np.array_equal(params, network().params)  # the steps moved them
        reference = network()
        reference.set_params(params)
        for part, worker in enumerate(workers):
            lo, hi = part * 50, (part + 1) * 50
            expected = reference.error_count(images[lo:hi], labels[lo:hi])
            assert worker.count_errors(None, images, labels, part, WORKERS) == expected
            assert worker.count_errors(params, images, labels, part, WORKERS) == expected
    finally:
        close(workers, server, spec, threads)
    with pytest.raises(RuntimeError, match="worker 0 was asked to evaluate the channel's parameters, but it is "
                                           "connected to no channel"):
        workers[0].count_errors(None, images, labels, 0, WORKERS)


# -- the actors' plain classes piece by piece (each test pins what a mutation of it got past the rest)

def make_worker(images, labels, index=0, shards=1):
    plan = {"n_samples": len(images), "batch_size": 10, "shards": shards, "seed": 1}
    return GradientWorker(index, network().spec(), images, labels, plan)


# -- G4: count_errors' part bounds ------------------------------------------------------------------
def test_count_errors_parts_of_unequal_size_cover_every_sample_once():
    """Validation of 7 samples over 3 workers: parts of 3, 2, 2. Every sample is labelled wrong, so
    the parts' counts must be exactly their sizes and sum to 7 (a part that starts one late, as
    with ``lo = part * sizes[0]``, skips a sample and counts 6)."""
    rng = np.random.default_rng(0)
    images = rng.random((7, 5))
    net = network()
    wrong = (net.predict(images).argmax(axis=1) + 1) % 3
    worker = make_worker(rng.random((20, 5)), rng.integers(0, 3, 20))
    counts = [worker.count_errors(net.params, images, wrong, part, 3) for part in range(3)]
    assert counts == [3, 2, 2]


def test_a_worker_evaluates_in_the_arrays_of_its_training_steps():
    # Evaluation between chunks adds nothing to a worker's peak memory (a wide network's 1,000-row
    # batches of layer outputs did).
    import tracemalloc

    rng = np.random.default_rng(0)
    worker = make_worker(rng.random((20, 5)), rng.integers(0, 3, 20))
    params = network().params
    worker.gradient(params, 0, 0)  # a training step: its 10 rows' arrays are kept
    images, labels = rng.random((1000, 5)), rng.integers(0, 3, 1000)
    expected = network().error_count(images, labels)
    tracemalloc.start()
    try:
        assert worker.count_errors(params, images, labels, 0, 1) == expected
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1000 * 8 * 8  # a 1,000-row batch of the 8-wide layer's outputs alone would be 64 kB


# -- G5: _computing_on lets go of the caller's parameters also when the step fails -----------------
def test_a_step_that_fails_leaves_the_worker_s_network_on_its_own_parameters():
    rng = np.random.default_rng(0)
    worker = make_worker(rng.random((20, 5)), rng.integers(0, 3, 20))
    own = worker.network.params
    handed_over = network().params.copy()
    with pytest.raises(IndexError):
        worker.gradient(handed_over, 0, 10**6)  # no such step: the step fails inside the block
    assert worker.network.params is own and not np.shares_memory(worker.network.params, handed_over)


# -- C9: the counters beside the FIFO messages ------------------------------------------------------
def test_after_a_chunk_the_step_counters_say_every_step_started_and_finished(data):
    """Each side writes its counter after its FIFO message, so that the other side's short watch
    sees it without blocking on the pipe (about 300 us a step otherwise): after a chunk of 6 steps
    the server has started 6 and each worker finished 6."""
    workers, server, spec = connected(data)
    serving = [threading.Thread(target=w.serve_steps, args=(0, 0, STEPS), daemon=True) for w in workers]
    try:
        for thread in serving:
            thread.start()
        done, summary = server.serve_steps(0, 0, STEPS)
        for thread in serving:
            thread.join(timeout=30)
        assert done == STEPS and summary is not None
        assert int(server._channel.started[0]) == STEPS
        assert [int(n) for n in server._channel.finished[:, 0]] == [STEPS] * WORKERS
    finally:
        close(workers, server, spec, serving)


# -- C5: a shared memory that a memory limit refuses is "no room" too -------------------------------
def test_a_memory_limit_refusing_the_channel_s_shared_memory_is_no_room_either(monkeypatch):
    """tmpfs pages are charged to the memory cgroup: in a container at its limit fallocate fails
    with ENOMEM, which must read as ChannelUnavailable (protocol 'auto' then goes by plain calls),
    not as an OSError that ends the run."""
    def limited(fd, offset, size):
        raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))

    monkeypatch.setattr(os, "posix_fallocate", limited, raising=False)
    with pytest.raises(ch.ChannelUnavailable, match=r"has no room for the step channel's .*\(Cannot allocate memory\)$"):
        ch.create_channel(WORKERS, 10_000, np.float64)


# -- C7: a creator number that no PID can be is left alone ------------------------------------------
def test_a_channel_named_with_a_number_no_pid_can_be_is_left_alone():
    """remove_abandoned_channels' docstring: "a number no PID can be ... count[s] as running: left
    alone". Ten digits pass the name's pattern, and 9999999999 is beyond any pid_t (os.kill raises
    OverflowError)."""
    spec = ch.create_channel(WORKERS, 10, np.float64)
    ch.remove_channel(spec)
    base, prefix = Path(spec.folder).parent, ch._creator_prefix()
    folder = base / f"{prefix}9999999999-{uuid.uuid4().hex[:12]}"
    try:
        folder.mkdir()
        (folder / "memory").write_bytes(b"x")
        ch.remove_abandoned_channels(str(base))
        assert folder.exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- S5 / S6: the server lets go of every channel it attached to -------------------------------------
def _descriptors_into(folder):
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(folder)
        except OSError:
            pass
    return count


def _mapped(folder):
    with open("/proc/self/maps") as f:
        return folder in f.read()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads this process's memory maps")
def test_a_parameter_server_that_disconnects_keeps_no_channel_mapped_and_its_parameters(data):
    """After a recovery the server is connected to a new channel; the old one (its files already
    removed) must not stay mapped: (workers + 1) x the parameters' size of shared memory per
    recovery otherwise. Its parameters, copied out, keep their values."""
    workers, server, first = connected(data)
    second = server.create_channel(WORKERS)
    try:
        connect_all(server, workers, second)  # as a recovery re-opens the protocol
        server.disconnect()
        for worker in workers:
            worker.disconnect()
        assert not _mapped(first.folder) and not _mapped(second.folder)
        assert _descriptors_into(first.folder) == 0 and _descriptors_into(second.folder) == 0  # its FIFOs too
        np.testing.assert_array_equal(server.get_params(), network().params)
    finally:
        for spec in (first, second):
            server.remove_channel(spec)


# -- P11: protocol 'channel' with a worker on another host is refused, 'auto' falls back -------------
def test_protocol_channel_with_a_worker_on_another_host_is_refused_and_auto_goes_plain(monkeypatch):
    from types import SimpleNamespace

    import ray

    from distnet import ConfigError
    from distnet.distributed.protocols import ChannelSteps

    class Handle:
        def __init__(self, **methods):
            self._methods = methods

        def __getattr__(self, name):
            return SimpleNamespace(remote=self._methods[name])

    monkeypatch.setattr(ray, "get", lambda value, **options: value)
    created = []

    def create(workers):
        created.append(ch.create_channel(workers, 10, np.float64))
        return created[-1]

    server = Handle(create_channel=create, remove_channel=ch.remove_channel)
    workers = [Handle(can_reach=ch.reachable), Handle(can_reach=lambda spec: False)]  # worker 1: another host
    assert ChannelSteps.open(server, workers, required=False) is None  # 'auto': plain calls
    with pytest.raises(ConfigError, match=r"^protocol 'channel' needs the parameter server and every worker on one "
                                          r"host"):
        ChannelSteps.open(server, workers, required=True)
    assert created and not any(os.path.exists(spec.folder) for spec in created)
