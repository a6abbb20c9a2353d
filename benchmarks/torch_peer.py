"""PyTorch peers: one process (1 or 2 threads), and DistributedDataParallel over gloo.

The same network, data, batch and per-step work as distnet: gather the mini-batch's rows, forward,
the summed quadratic cost divided by the batch, backward, L2 as the original (weights times
(1 − λ)), Nesterov momentum. Only the timing matters here, so PyTorch's own initialisation and
Nesterov form are used (the same amount of work as distnet's).
"""
from __future__ import annotations

import os
import socket
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .workloads import (CLASSES, L2, LEAKY_SLOPE, LEARNING_RATE, MOMENTUM, WORKLOADS, peak_rss_mb,
                        training_data)


def _model(torch, workload):
    layers, fan_in = [], workload.sizes[0]
    for size in workload.hidden:
        layers += [torch.nn.Linear(fan_in, size), torch.nn.LeakyReLU(LEAKY_SLOPE)]
        fan_in = size
    layers += [torch.nn.Linear(fan_in, CLASSES), torch.nn.Softmax(dim=1)]
    return torch.nn.Sequential(*layers)


class _Steps:
    """Training steps on one process's samples, ``batch`` rows at a time."""

    def __init__(self, torch, model, images, labels, batch: int, seed: int):
        self.torch, self.model, self.batch = torch, model, batch
        with warnings.catch_warnings():  # read-only arrays (a view of shared data): the steps only read them
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            self.images = torch.from_numpy(images)
            self.targets = torch.nn.functional.one_hot(torch.from_numpy(labels), CLASSES).float()
        self.weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        self.optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, nesterov=True)
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self, steps: int) -> float:
        torch = self.torch
        order = torch.randperm(len(self.images), generator=self.generator)
        started = time.perf_counter()
        for k in range(steps):
            rows = order[k * self.batch:(k + 1) * self.batch]
            x, y = self.images[rows], self.targets[rows]
            loss = ((self.model(x) - y) ** 2).sum() / len(rows)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.update()
        return time.perf_counter() - started

    def update(self) -> None:
        """The original's L2 (weights times (1 − λ)), then the optimizer's step."""
        with self.torch.no_grad():
            for w in self.weights:
                w.mul_(1 - L2)
        self.optimizer.step()


def _missing_torch() -> dict | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        return {"skipped": "PyTorch is not installed (pip install torch)"}
    return None


def single(workload: str, samples: int, epochs: int, threads: int) -> dict:
    """One process, ``threads`` intra-op threads; also the step time at half the batch (what each
    of two DDP ranks computes), to tell DDP's communication from its compute."""
    if skipped := _missing_torch():
        return skipped
    import torch

    torch.set_num_threads(threads)
    w = WORKLOADS[workload]
    images, labels, source = training_data(samples)
    torch.manual_seed(1)
    steps = len(images) // w.batch_size
    run = _Steps(torch, _model(torch, w), images, labels, w.batch_size, seed=1)
    times = [run.epoch(steps) for _ in range(epochs)][1:]
    half = _Steps(torch, _model(torch, w), images, labels, w.batch_size // 2, seed=1)
    half_times = [half.epoch(steps) for _ in range(epochs)][1:]
    per_step = float(np.median(times)) / steps
    return {"epoch_s": per_step * w.steps_per_epoch, "step_us": per_step * 1e6, "data": source,
            "half_batch_step_us": float(np.median(half_times)) / steps * 1e6, "threads": torch.get_num_threads(),
            "peak_rss_mb": [round(peak_rss_mb(), 1)], "torch": torch.__version__}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_rank(rank: int, world: int, port: int, workload: str, samples: int, epochs: int, shards: str,
              queue) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        w = WORKLOADS[workload]
        # Its shard alone, as a distnet worker holds it: the rank's peak memory is comparable.
        images, labels = (np.load(Path(shards) / f"{part}-{rank}.npy") for part in ("images", "labels"))
        torch.manual_seed(1)
        model = torch.nn.parallel.DistributedDataParallel(_model(torch, w))
        run = _Steps(torch, model, images, labels, w.batch_size // world, seed=rank)
        steps = samples // w.batch_size
        times = []
        for _ in range(epochs):
            dist.barrier()
            times.append(run.epoch(steps))
        queue.put((rank, times, peak_rss_mb()))
    finally:
        dist.destroy_process_group()


def ddp(workload: str, samples: int, epochs: int, processes: int) -> dict:
    """DistributedDataParallel, gloo backend, ``processes`` ranks of one thread each, each with its
    shard and 1/processes of every mini-batch."""
    if skipped := _missing_torch():
        return skipped
    import torch.multiprocessing as mp

    w = WORKLOADS[workload]
    images, labels, source = training_data(samples)
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    with tempfile.TemporaryDirectory(prefix="distnet-ddp-") as shards:
        for rank in range(processes):
            shard = slice(rank * samples // processes, (rank + 1) * samples // processes)
            np.save(Path(shards) / f"images-{rank}.npy", np.ascontiguousarray(images[shard]))
            np.save(Path(shards) / f"labels-{rank}.npy", labels[shard])
        mp.spawn(_ddp_rank, args=(processes, _free_port(), workload, samples, epochs, shards, queue),
                 nprocs=processes)
    ranks = sorted(queue.get() for _ in range(processes))
    steps = samples // w.batch_size
    # An epoch ends when the slowest rank ends.
    per_step = float(np.median(np.max([times[1:] for _, times, _ in ranks], axis=0))) / steps
    return {"epoch_s": per_step * w.steps_per_epoch, "step_us": per_step * 1e6, "data": source,
            "peak_rss_mb": [round(rss, 1) for _, _, rss in ranks]}
