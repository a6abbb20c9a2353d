"""distnet's own cases: the single-process trainer, the distributed trainer with every step
protocol, and the math of one step alone (to tell a step's coordination from its compute)."""
from __future__ import annotations

import itertools
import os
import time

import numpy as np

from distnet.nn.parallel_update import usable_cores
from distnet.progress import Reporter

from .workloads import (L2, WORKLOADS, distnet_dataset, distnet_network, distnet_optimizer,
                        median_seconds, peak_rss_mb, training_data)


class EpochClock(Reporter):
    """Records each epoch's training time (evaluations excluded) and, at the end, the peak memory
    of the trainer's worker processes (still alive then)."""

    def __init__(self, trainer=None):
        self.trainer = trainer
        self.epoch_seconds: list[float] = []
        self.worker_rss_mb: list[float] = []
        self.validation_errors: list[float] = []

    def on_steps(self, epoch, step, steps, stats, seconds):
        if step == steps:
            self.epoch_seconds.append(seconds)

    def on_end(self, result):
        placement = getattr(self.trainer, "placement", [])
        self.worker_rss_mb = [round(peak_rss_mb(p["pid"]), 1) for p in placement if p["host"] == os.uname().nodename]


def _timed_fit(trainer, train, epochs: int, validation=None) -> EpochClock:
    clock = EpochClock(trainer)
    if validation is None:
        trainer.fit(train, None, epochs=epochs, reporter=clock)
    else:  # evaluated after every epoch
        result = trainer.fit(train, validation, epochs=epochs, eval_every=1, reporter=clock)
        clock.validation_errors = [h["validation_error"] for h in result.history]
    return clock


def _epoch_result(clock: EpochClock, workload, train) -> dict:
    # The first epoch warms up (page faults, first calls, a compiled graph's first executions).
    steps = len(train) // workload.batch_size
    per_step = float(np.median(clock.epoch_seconds[1:])) / steps
    return {"epoch_s": per_step * workload.steps_per_epoch, "step_us": per_step * 1e6,
            "epochs_timed": len(clock.epoch_seconds) - 1, "steps_timed": steps}


def single(workload: str, samples: int, epochs: int) -> dict:
    """distnet's single-process Trainer; BLAS threads as set in the environment."""
    from distnet import Trainer

    w = WORKLOADS[workload]
    images, labels, source = training_data(samples)
    train = distnet_dataset(images, labels)
    trainer = Trainer(distnet_network(w), distnet_optimizer(), l2=L2, batch_size=w.batch_size, seed=1)
    clock = _timed_fit(trainer, train, epochs)
    return {**_epoch_result(clock, w, train), "data": source, "peak_rss_mb": [round(peak_rss_mb(), 1)]}


def distributed(workload: str, samples: int, epochs: int, runs: list[list], validation: int = 0) -> dict:
    """The DistributedTrainer for each (protocol, workers) in ``runs``, on one local Ray. With
    ``validation`` rows of distnet's validation split, the workers evaluate them after
    every epoch, as in a real run; the speed suite times training alone."""
    import ray

    from distnet.distributed import DistributedTrainer, local_ray

    w = WORKLOADS[workload]
    images, labels, source = training_data(samples)
    train = distnet_dataset(images, labels)
    held_out = distnet_dataset(*training_data(validation, "validation")[:2]) if validation else None
    # The Ray that `distnet train` starts for itself, on every core (one Ray for all the protocols).
    local_ray.start(num_cpus=usable_cores())
    results = {}
    try:
        for protocol, workers in runs:
            trainer = DistributedTrainer(distnet_network(w), distnet_optimizer(), l2=L2, batch_size=w.batch_size,
                                         seed=1, workers=workers, protocol=protocol)
            started = time.monotonic()  # (the parent's clock too: it measures other work over this window)
            try:
                clock = _timed_fit(trainer, train, epochs, held_out)
            except Exception as e:  # one failing protocol must not hide the others' numbers
                results[f"{protocol}/{workers}"] = {"error": f"{e.__class__.__name__}: {e}"}
                continue
            results[f"{protocol}/{workers}"] = {**_epoch_result(clock, w, train), "data": source,
                                                "window": [started, time.monotonic()],
                                                "active_protocol": trainer.active_protocol,
                                                "peak_rss_mb": clock.worker_rss_mb,
                                                "shard_mb": mb_per_worker(images, workers)}
            if held_out is not None:
                results[f"{protocol}/{workers}"].update(
                    validation_errors=clock.validation_errors, validation_mb=mb_per_worker(held_out.images, workers))
    finally:
        ray.shutdown()
    return results


def mb_per_worker(images: np.ndarray, workers: int) -> float:
    """The MiB of ``images`` each of ``workers`` workers holds: its shard of them."""
    return round(images.nbytes / workers / 2**20, 1)


def compute(workload: str, workers: list[int], repeats: int) -> dict:
    """The math of one step, alone, one BLAS thread: a worker's gradient on its part of the batch,
    the gathering of those rows from the data (which a ``channel`` worker does for the next step
    while the server updates, and the other protocols within the step), and the parameter server's
    update from N distinct gradients (as it sums N workers'); and the single-process step."""
    from distnet import Trainer
    from distnet.batches import BatchGather
    from distnet.distributed.parameter_server import ParameterServer

    w = WORKLOADS[workload]
    images, labels, _ = training_data()
    network = distnet_network(w)
    rng = np.random.default_rng(0)
    inner = max(1, int(2e8 // (w.flops_per_sample * w.batch_size)))  # about 0.2 GFLOP per timing

    gather = BatchGather(10, network.dtype)
    result = {"backprop_us": {}, "gather_us": {}, "server_update_us": {}}
    # Beyond the cores here too: the math alone needs no core per worker, and more points steady
    # the scaling model's slopes.
    for n in sorted({n for n in (1, 2, 4, 8, *workers) if n <= w.batch_size}):
        rows = w.batch_size // n
        # Eight steps' rows in turn, each gathered ahead as a channel worker's are: not one cache-hot batch.
        picks = itertools.cycle([rng.integers(0, len(images), rows) for _ in range(8)])
        batches = itertools.cycle([tuple(a.copy() for a in gather(next(picks), images, labels)) for _ in range(8)])
        grad = np.empty_like(network.params)
        result["backprop_us"][n] = median_seconds(
            lambda: network.backprop(*next(batches), out=grad, reuse_buffers=True), repeats, inner) * 1e6
        result["gather_us"][n] = median_seconds(lambda: gather(next(picks), images, labels), repeats, inner) * 1e6
        server = ParameterServer(network.spec(), network.params, distnet_optimizer().spec(), L2)
        # N workers' gradients are N arrays, each read once per update; one array N times stays in cache.
        results = [(np.full_like(network.params, 1e-6), 0.5, rows // 2, rows) for _ in range(n)]
        result["server_update_us"][n] = median_seconds(lambda: server.apply(0, 0, *results), repeats, inner) * 1e6
    trainer = Trainer(distnet_network(w), distnet_optimizer(), l2=L2, batch_size=w.batch_size)

    def step():
        # The step fit takes (Trainer.step, for a caller's own batches, checks them for NaN first).
        trainer._step(*gather(rng.integers(0, len(images), w.batch_size), images, labels))

    result["single_step_us"] = median_seconds(step, repeats, inner) * 1e6
    return result
