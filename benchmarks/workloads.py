"""What every benchmark case trains: the two networks, the data, the FLOP count, and small helpers.

Every implementation (distnet, PyTorch, DDP, Ray Train) trains the same network on the same data
with the same batch size, so their times compare directly:

* ``article``: the article's 784-36-14-10 (Leaky ReLU 0.01, Leaky ReLU, Softmax; quadratic cost;
  Nesterov(0.02, 0.87) with L2 1e-4), batch 32;
* ``wide``: 784-1024-1024-10 with the same layers and training, batch 512.

An epoch is the 50,000 MNIST training samples of distnet's split (``steps = 50,000 // batch``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import dataclass

import numpy as np

TRAIN_SAMPLES = 50_000
INPUTS, CLASSES = 784, 10
LEARNING_RATE, MOMENTUM, L2, LEAKY_SLOPE = 0.02, 0.87, 1e-4, 0.01


@dataclass(frozen=True)
class Workload:
    name: str
    hidden: tuple[int, ...]
    batch_size: int

    @property
    def sizes(self) -> list[int]:
        return [INPUTS, *self.hidden, CLASSES]

    @property
    def steps_per_epoch(self) -> int:
        return TRAIN_SAMPLES // self.batch_size

    @property
    def flops_per_sample(self) -> int:
        """Matrix-product FLOPs of one training sample: forward (2·weights), the weight gradients
        (2·weights) and the input gradients of every layer but the first (no gradient is needed
        for the images). Element-wise work and biases are left out: under 1 % of the wide network's
        FLOPs, about 5 % of the article's (mostly its update, ~6 FLOPs a parameter a step)."""
        weights = [i * o for i, o in zip(self.sizes[:-1], self.sizes[1:])]
        return 4 * sum(weights) + 2 * sum(weights[1:])

    @property
    def flops_per_epoch(self) -> int:
        return self.flops_per_sample * self.steps_per_epoch * self.batch_size


WORKLOADS = {w.name: w for w in (Workload("article", (36, 14), 32), Workload("wide", (1024, 1024), 512))}


def distnet_network(workload: Workload, seed: int = 942457):
    from distnet import Dense, LeakyReLU, Network, Quadratic, Softmax, XavierNormal

    layers = [Dense(size, LeakyReLU(LEAKY_SLOPE)) for size in workload.hidden] + [Dense(CLASSES, Softmax())]
    return Network(layers, input_size=INPUTS, cost=Quadratic(), initializer=XavierNormal(), seed=seed)


def distnet_optimizer():
    from distnet import Nesterov

    return Nesterov(LEARNING_RATE, MOMENTUM)


def training_data(samples: int = TRAIN_SAMPLES, split: str = "train") -> tuple[np.ndarray, np.ndarray, str]:
    """(images float32 (n, 784), labels int64 (n,), where from) of distnet's ``split`` ("train"
    or "validation"): real MNIST when it is found (``DISTNET_DATA_DIR`` or distnet's cache; never
    downloaded here), else random data of the same shape, which times the same."""
    from distnet import load_mnist
    from distnet.errors import DataNotFoundError

    try:
        data = getattr(load_mnist(download=False), split)
        return np.ascontiguousarray(data.images[:samples], dtype=np.float32), np.asarray(data.labels[:samples]), "mnist"
    except DataNotFoundError:
        rng = np.random.default_rng(0 if split == "train" else 1)
        images = rng.random((samples, INPUTS), dtype=np.float32)
        return images, rng.integers(0, CLASSES, samples), "random"


def distnet_dataset(images: np.ndarray, labels: np.ndarray):
    from distnet.data import Dataset

    return Dataset(images, labels, name="benchmark/train")


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory (VmHWM) of a process on this host, in MB; this process by default.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent through fork
    and exec, so a case started by the 860 MB benchmark driver read at least 860 MB.
    """
    try:
        with open(f"/proc/{pid or 'self'}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        if pid is None:  # no /proc (not Linux), where ru_maxrss is this process's own
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        raise
    raise RuntimeError(f"no VmHWM for process {pid or 'self'}")


def median_seconds(call, repeats: int, inner: int = 1) -> float:
    """Median wall time of ``inner`` calls of ``call()``, over ``repeats`` repetitions, per call."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(inner):
            call()
        times.append((time.perf_counter() - started) / inner)
    return float(np.median(times))


def thread_settings() -> dict:
    return {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def step_tool_parser(module: str, doc: str, default_workload: str) -> argparse.ArgumentParser:
    """The command line of a tool that takes one workload's distributed step apart
    (``python -m benchmarks.MODULE``): ``--workload`` and ``--workers``, then the tool's own."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{module}", description=doc.split("\n\n")[0])
    parser.add_argument("--workload", default=default_workload, choices=sorted(WORKLOADS),
                        help="network and batch size (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="workers in the distributed step (default: 2)")
    return parser


def parse_step_tool(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, str]:
    """The arguments (a usage error for more workers than rows in a batch) and the command as typed."""
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= WORKLOADS[args.workload].batch_size:
        parser.error(f"--workers must be between 1 and the batch size {WORKLOADS[args.workload].batch_size}")
    return args, " ".join([parser.prog, *(argv if argv is not None else sys.argv[1:])])


def print_result(result: dict, table: str) -> None:
    """A tool's output: its JSON, a blank line, its Markdown."""
    print(json.dumps(result, indent=2))
    print()
    print(table)
