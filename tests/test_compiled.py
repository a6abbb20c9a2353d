"""The compiled-graph step protocol on a real local Ray: the same math as the single-process trainer."""
import os
import time

import numpy as np
import pytest

from distnet import Dense, Nesterov, Network, Reporter
from distnet.distributed import DistributedTrainer, compiled
from distnet.distributed.compiled import steps_ahead

from test_distributed import fit, relative_difference, single_process, small_network

pytestmark = pytest.mark.slow


# The small network's parameters fit the buffer budget twice over (two steps submitted ahead);
# a budget of one byte makes the driver wait for every step before it submits the next.
@pytest.mark.parametrize("workers,budget", [(1, None), (2, None), (2, 1)])
def test_compiled_steps_do_not_change_the_math(mnist, ray_local, monkeypatch, workers, budget):
    if budget is not None:
        monkeypatch.setattr(compiled, "_BUFFER_BUDGET_BYTES", budget)
    expected, expected_result = single_process(mnist, workers)
    trainer = DistributedTrainer(small_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=3,
                                 workers=workers, protocol="compiled")
    result = fit(trainer, mnist)
    assert trainer.active_protocol == "compiled"
    assert relative_difference(trainer.network.params, expected) < 1e-9
    assert [h["validation_error"] for h in result.history] == [h["validation_error"] for h in expected_result.history]
    assert result.history[-1]["train_error"] == pytest.approx(expected_result.history[-1]["train_error"])
    assert result.history[-1]["train_cost"] == pytest.approx(expected_result.history[-1]["train_cost"])


def test_steps_ahead_shrink_as_the_parameters_grow():
    article, wide = 28_928 * 4, 1_863_690 * 4
    assert steps_ahead(article) == 2
    assert steps_ahead(3 * 2**20) == 1  # two 3 MiB buffers per channel fit 8 MiB, three do not
    assert steps_ahead(wide) == 0  # one buffer per channel: each worker maps 7.5 MB, not 22
    assert steps_ahead(0) == 2


def test_no_channel_is_resized_for_parameters_larger_than_ray_s_first_buffer(mnist, ray_local, monkeypatch,
                                                                           tmp_path):
    """Ray starts a channel at 1 MB and, for a larger message, maps a new buffer beside the old one
    (which stays mapped): the actors size their channels for the parameters from the start."""
    resizes = tmp_path / "resizes"
    prepare = compiled._prepare_channels

    def prepare_and_count_resizes(actor, buffer_bytes):  # runs in each actor before the graph compiles
        from ray.experimental.channel.shared_memory_channel import Channel

        prepare(actor, buffer_bytes)
        resize = Channel._resize_channel_if_needed

        def counted(channel, value, timeout_ms):
            before = channel._typ.buffer_size_bytes
            resize(channel, value, timeout_ms)
            if channel._typ.buffer_size_bytes != before:
                with open(resizes, "a") as log:
                    log.write(f"{type(actor).__name__}: {before} -> {channel._typ.buffer_size_bytes}\n")

        Channel._resize_channel_if_needed = counted

    monkeypatch.setattr(compiled, "_prepare_channels", prepare_and_count_resizes)
    network = Network([Dense(200, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=5, dtype=np.float64)
    assert network.params.nbytes > 10**6
    trainer = DistributedTrainer(network, Nesterov(0.02, 0.87), batch_size=32, seed=3, workers=2,
                                 protocol="compiled")
    trainer.fit(mnist.train.subset(slice(0, 640)), epochs=1)
    assert trainer.active_protocol == "compiled"
    assert not resizes.exists(), resizes.read_text()


def test_a_fit_leaves_none_of_the_graph_s_semaphores_in_shared_memory(mnist, ray_local):
    """Ray names two semaphores per channel in /dev/shm and removes them only for an actor that
    exits by itself: killed, it left 18 files there for good after every fit. Only this Ray's are
    looked at: it names them after its raylet's process id (sem.obj<pid>-..., sem.hdr<pid>-...),
    and another Ray on the machine (another test session's) makes its own meanwhile, which it may
    keep longer than the wait here."""
    raylets = ray_local._private.worker._global_node.all_processes.get("raylet", [])
    assert len(raylets) == 1, "the test's Ray was not started by this process"
    ours = tuple(f"sem.{kind}{raylets[0].process.pid}-" for kind in ("obj", "hdr"))

    def semaphores():
        return {name for name in os.listdir("/dev/shm") if name.startswith(ours)}

    before, made = semaphores(), set()

    class Watch(Reporter):
        def on_steps(self, epoch, step, steps, stats, seconds):
            made.update(semaphores() - before)

    trainer = DistributedTrainer(small_network(), Nesterov(0.02, 0.87), batch_size=10, seed=1, workers=2,
                                 protocol="compiled")
    trainer.fit(mnist.train.subset(slice(0, 300)), epochs=1, reporter=Watch())
    assert made  # the graph's, while it ran
    deadline = time.monotonic() + 10  # Ray removes them within a few seconds of the actors' exit
    while made & semaphores() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not made & semaphores()
