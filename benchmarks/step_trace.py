"""A `channel` step of a real distributed run, traced: when each process wakes, computes, reports and
updates, step by step, with Ray around them.

    python -m benchmarks.step_trace                       # article network, 2 workers
    python -m benchmarks.step_trace --workload wide --epochs 2

`benchmarks.step_anatomy` times a step's parts without Ray, `benchmarks.speed` whole steps of real
runs. This runs the DistributedTrainer on a Ray of its own, as `benchmarks.speed` does, while every
actor records a timestamp (`time.perf_counter`: one clock for all the processes of a host) where the
step channel wakes it or it reports:

* the parameter server: as it wakes the workers, once every worker has reported, around its update;
* each worker: as it starts to wait for the next step, as it wakes, as it reports its gradient.

It prints the medians and quartiles, over the steps after the first epoch (a warm-up), of: the
step; how long after the server's wake-up the first and the last worker start computing; the
fastest and the slowest gradient; how long the server takes to notice the last report; its update;
and a worker's time from its report to its next wait (gathering its next rows, and whatever keeps
it off a core meanwhile), the quicker and the slower worker's. Each timestamp costs about a microsecond, so
a traced step runs a few microseconds slower than an untraced one.

The probe is a `worker_process_setup_hook` that wraps the channel's methods in the actors'
processes, for this run only; distnet itself is not changed.
"""
from __future__ import annotations

import os

# Before NumPy loads: one BLAS thread per process, as in benchmarks.speed (Ray's actors inherit it).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
os.environ.setdefault("RAY_worker_niceness", "0")  # as benchmarks.speed runs its cases

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.workloads import (L2, WORKLOADS, distnet_dataset, distnet_network,  # noqa: E402
                                  distnet_optimizer, parse_step_tool, print_result, step_tool_parser,
                                  training_data)
from distnet.nn.parallel_update import usable_cores  # noqa: E402

TRACE_DIR = "DISTNET_STEP_TRACE_DIR"  # where each actor writes its timestamps
# The marks, by process: the server's per step, then a worker's.
SERVER_MARKS = ("wakes", "all_reported", "update_starts", "update_ends")
WORKER_MARKS = ("waits", "wakes", "reports")
PARTS = {  # key: what the table calls it
    "step_us": "whole step (server's wake-up to its next)",
    "first_worker_starts_us": "first worker starts computing, after the server's wake-up",
    "last_worker_starts_us": "last worker starts computing, after the server's wake-up",
    "fastest_gradient_us": "fastest worker's gradient",
    "slowest_gradient_us": "slowest worker's gradient",
    "server_notices_us": "server notices the last report",
    "update_us": "server's update",
    "quick_report_to_next_wait_us": "a worker's report to its next wait (gathering its next rows): the quicker worker",
    "slow_report_to_next_wait_us": "the same, the slower worker",
}


def install() -> None:
    """The actors' setup hook: distnet's own, then the timestamps around the channel's methods.
    Each process writes its marks into ``$DISTNET_STEP_TRACE_DIR`` as its end of the channel closes."""
    from distnet.distributed import channel as ch
    from distnet.distributed import local_ray
    from distnet.distributed.parameter_server import ParameterServer

    local_ray.skip_pyarrow()
    marks: list[tuple[int, float]] = []
    clock = time.perf_counter

    def timed(method, before: str | None, after: str | None, names: tuple[str, ...]):
        codes = {name: names.index(name) for name in (before, after) if name}

        def wrapper(*args, **kwargs):
            if before:
                marks.append((codes[before], clock()))
            result = method(*args, **kwargs)
            if after:
                marks.append((codes[after], clock()))
            return result
        return wrapper

    def saving(close, role: str):
        def wrapper(self):
            if marks:
                kinds, times = zip(*marks)
                np.savez(Path(os.environ[TRACE_DIR]) / f"{role}-{os.getpid()}.npz",
                         kinds=np.array(kinds, np.int8), times=np.array(times))
                marks.clear()
            close(self)
        return wrapper

    ch.ServerEnd.start_step = timed(ch.ServerEnd.start_step, "wakes", None, SERVER_MARKS)
    ch.ServerEnd.wait_step = timed(ch.ServerEnd.wait_step, None, "all_reported", SERVER_MARKS)
    ParameterServer._apply = timed(ParameterServer._apply, "update_starts", "update_ends", SERVER_MARKS)
    ch.ServerEnd.close = saving(ch.ServerEnd.close, "server")
    ch.WorkerEnd.next_step = timed(ch.WorkerEnd.next_step, "waits", "wakes", WORKER_MARKS)
    ch.WorkerEnd.finish_step = timed(ch.WorkerEnd.finish_step, "reports", None, WORKER_MARKS)
    ch.WorkerEnd.close = saving(ch.WorkerEnd.close, "worker")


def _marks(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One process's marks: for each name, its times in order."""
    with np.load(path) as saved:
        kinds, times = saved["kinds"], saved["times"]
    return {name: times[kinds == code] for code, name in enumerate(names)}


def timeline(server: dict[str, np.ndarray], workers: list[dict[str, np.ndarray]], skip: int) -> dict:
    """Medians and quartiles (µs) of each part of the steps after the first ``skip``, from the
    server's and the workers' marks (one array of times per mark, one entry per step, in order).
    The last step traced only bounds the one before it."""
    steps = min(len(server["update_ends"]), *(len(w["reports"]) for w in workers)) - 1
    if steps <= skip:
        raise ValueError(f"{steps} traced steps, none after the {skip} skipped: train on more samples or epochs")
    s = slice(skip, steps)
    wakes = server["wakes"][s]
    starts = np.array([w["wakes"][s] for w in workers]) - wakes
    gradients = np.array([w["reports"][s] - w["wakes"][s] for w in workers])
    last_report = np.array([w["reports"][s] for w in workers]).max(axis=0)
    after_report = np.array([w["waits"][skip + 1:steps + 1] - w["reports"][s] for w in workers])
    parts = {
        "step_us": server["wakes"][skip + 1:steps + 1] - wakes,
        "first_worker_starts_us": starts.min(axis=0),
        "last_worker_starts_us": starts.max(axis=0),
        "fastest_gradient_us": gradients.min(axis=0),
        "slowest_gradient_us": gradients.max(axis=0),
        "server_notices_us": server["all_reported"][s] - last_report,
        "update_us": server["update_ends"][s] - server["update_starts"][s],
        "quick_report_to_next_wait_us": after_report.min(axis=0),
        "slow_report_to_next_wait_us": after_report.max(axis=0),
    }
    return {"steps": steps - skip, **{key: {q: round(float(np.percentile(v, p)) * 1e6, 1)
                                             for q, p in (("median", 50), ("p25", 25), ("p75", 75))}
                                        for key, v in parts.items()}}


def trace(workload: str, workers: int, epochs: int, samples: int, command: str = "") -> dict:
    """Train ``epochs`` epochs over the channel with the probe in every actor; the timeline."""
    import ray

    from distnet.distributed import DistributedTrainer, local_ray

    w = WORKLOADS[workload]
    images, labels, source = training_data(samples)
    train = distnet_dataset(images, labels)
    with tempfile.TemporaryDirectory() as folder:
        os.environ[TRACE_DIR] = folder  # Ray's processes inherit it, and the path to this module
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        # install() runs distnet's own hook (skip_pyarrow) first; the rest of distnet's runtime_env stays.
        local_ray.RUNTIME_ENV = {**local_ray.RUNTIME_ENV, "worker_process_setup_hook": "benchmarks.step_trace.install"}
        local_ray.start(num_cpus=usable_cores())
        try:
            trainer = DistributedTrainer(distnet_network(w), distnet_optimizer(), l2=L2, batch_size=w.batch_size,
                                         seed=1, workers=workers, protocol="channel")
            started = time.perf_counter()
            trainer.fit(train, None, epochs=epochs)
            seconds = time.perf_counter() - started
        finally:
            ray.shutdown()
        server = [_marks(path, SERVER_MARKS) for path in Path(folder).glob("server-*.npz")]
        worker = [_marks(path, WORKER_MARKS) for path in Path(folder).glob("worker-*.npz")]
    if len(server) != 1 or len(worker) != workers:
        raise RuntimeError(f"traced {len(server)} server(s) and {len(worker)} worker(s), expected 1 and {workers} "
                           f"(an actor was lost, or the channel was not used)")
    steps_per_epoch = len(train) // w.batch_size
    return {"command": command, "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "workload": workload, "sizes": w.sizes, "batch_size": w.batch_size, "workers": workers,
            "data": source, "samples": len(train), "epochs": epochs, "fit_seconds": round(seconds, 2),
            "cores": len(os.sched_getaffinity(0)), "active_protocol": trainer.active_protocol,
            **timeline(server[0], worker, skip=steps_per_epoch)}


def markdown(r: dict) -> str:
    lines = [f"`{r['command']}`, {r['measured']}: {'-'.join(map(str, r['sizes']))}, batch {r['batch_size']}, "
             f"{r['workers']} workers over the `channel`, {r['data']} data ({r['samples']:,} samples, {r['epochs']} "
             f"epochs), {r['cores']} cores, 1 BLAS thread per process; {r['steps']:,} steps after the first "
             f"epoch.", "",
             "| part of a step | median µs | 25th–75th percentile µs |", "|---|---|---|"]
    lines += [f"| {label} | {r[key]['median']:,.1f} | {r[key]['p25']:,.1f}–{r[key]['p75']:,.1f} |"
              for key, label in PARTS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = step_tool_parser("step_trace", __doc__, default_workload="article")
    parser.add_argument("--epochs", type=int, default=4, help="epochs, the first a warm-up (default: 4)")
    parser.add_argument("--samples", type=int, default=50_000, help="training samples (default: 50,000)")
    args, command = parse_step_tool(parser, argv)
    batch_size = WORKLOADS[args.workload].batch_size
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first is a warm-up, left out")
    if args.samples < 2 * batch_size:
        parser.error(f"--samples must be at least twice the batch size ({2 * batch_size}): two steps an epoch")
    result = trace(args.workload, args.workers, args.epochs, args.samples, command)
    print_result(result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
