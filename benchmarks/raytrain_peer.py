"""Ray Train peer: ``TorchTrainer`` with N workers (DDP over gloo inside Ray), the same steps as
:mod:`benchmarks.torch_peer`."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from distnet.nn.parallel_update import usable_cores

from .workloads import WORKLOADS, peak_rss_mb, training_data


def _loop(config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch
    import torch

    from .torch_peer import _model, _Steps

    torch.set_num_threads(1)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    w = WORKLOADS[config["workload"]]
    images, labels = ray.get(config["data"])
    shard = slice(rank * len(images) // world, (rank + 1) * len(images) // world)
    torch.manual_seed(1)
    model = ray.train.torch.prepare_model(_model(torch, w))
    # The object store's arrays are read-only; torch wants its own.
    run = _Steps(torch, model, np.array(images[shard]), np.array(labels[shard]), w.batch_size // world, seed=rank)
    steps = len(images) // w.batch_size
    times = []
    for _ in range(config["epochs"]):
        torch.distributed.barrier()
        times.append(run.epoch(steps))
    Path(config["out"], f"rank-{rank}.json").write_text(json.dumps({"times": times, "rss": peak_rss_mb()}))
    ray.train.report({"done": True})


def raytrain(workload: str, samples: int, epochs: int, workers: int) -> dict:
    try:
        import ray
        import torch  # noqa: F401
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError as e:  # Ray's own for a missing ray[train] names no module
        missing = e.name or "ray[train]"
        return {"skipped": f"{missing} is not installed (pip install 'ray[train]' torch for the Ray Train peer)"}

    w = WORKLOADS[workload]
    images, labels, source = training_data(samples)
    out = tempfile.mkdtemp(prefix="distnet-raytrain-")
    # A Ray of its own, as distnet's cases start: not a cluster that RAY_ADDRESS or `ray start` left.
    ray.init(address="local", num_cpus=usable_cores(), include_dashboard=False, logging_level="ERROR")
    try:
        trainer = TorchTrainer(
            _loop, train_loop_config={"workload": workload, "epochs": epochs, "out": out,
                                      "data": ray.put((images, labels))},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
            run_config=RunConfig(name="distnet-benchmark", storage_path=out))
        trainer.fit()
        ranks = [json.loads((Path(out) / f"rank-{r}.json").read_text()) for r in range(workers)]
    finally:
        ray.shutdown()
        shutil.rmtree(out, ignore_errors=True)
    steps = samples // w.batch_size
    per_step = float(np.median(np.max([r["times"][1:] for r in ranks], axis=0))) / steps
    return {"epoch_s": per_step * w.steps_per_epoch, "step_us": per_step * 1e6, "data": source,
            "peak_rss_mb": [round(r["rss"], 1) for r in ranks]}
