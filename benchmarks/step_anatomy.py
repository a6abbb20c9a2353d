"""A distributed step taken apart: what its arithmetic costs on this machine, part by part.

    python -m benchmarks.step_anatomy                     # wide network, 2 workers; JSON, then a table
    python -m benchmarks.step_anatomy --workload article --repeats 400

A `channel` step is: every worker computes the summed gradient of its B/N rows, all at once; then
the parameter server sums the N gradients and applies L2 and Nesterov (on its threads, through
:class:`distnet.nn.ParallelUpdate`, as the server does) while the workers wait; plus the wake-ups
between them. This times those parts as a run meets them, without Ray, one BLAS thread per process:

* **gradient alone**: one worker's gradient on B/N rows, in one process with nothing else running
  (the rows gathered beforehand: a worker gathers the next step's rows while the server updates);
* **gradient, N at once**: N processes computing at the same time, as the workers do (they share
  the memory bus and the last-level cache); per step the slowest of them, which the server waits for;
* **update, warm**: the server's update repeated on the same gradients, the way a micro-benchmark
  sees it;
* **update after the gradients**: the same update on gradients that the N processes have just
  written into shared memory, each step, as in a run (the data arrive from other cores' caches);
* **whole step over the channel**: from waking the N processes to the end of that update. The
  processes are forked here and talk over distnet's step channel (shared memory and FIFOs, the
  default on one host) exactly as a run's actors do, only without Ray around them: what is left
  between this and `benchmarks.speed`'s step is Ray's share;
* **PyTorch**, 1 and 2 threads, for comparison (skipped without PyTorch): its L2 + Nesterov step
  (`torch.optim.SGD(nesterov=True)` after the original's weight decay) on the same parameters, and
  its whole training step on the full batch, as `benchmarks.speed` runs it.

`python -m benchmarks.speed` measures whole steps in real runs; this says where their time goes.
"""
from __future__ import annotations

import os

# Before NumPy loads: each process computes on one BLAS thread, as a Ray worker does.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.workloads import (L2, WORKLOADS, distnet_network, distnet_optimizer,  # noqa: E402
                                  median_seconds, parse_step_tool, print_result, step_tool_parser,
                                  thread_settings, training_data)
from distnet.batches import BatchGather  # noqa: E402
from distnet.checks import count  # noqa: E402
from distnet.distributed import channel as ch  # noqa: E402
from distnet.nn import ParallelUpdate, fused  # noqa: E402

WARM_UP = 3
SKIPPED = "PyTorch is not installed (pip install torch)"


class _Gradients:
    """One worker's gradients, each on ``rows`` random rows of the training data: :meth:`gather`
    copies the next rows out, calling the object computes the gradient on them into ``out``."""

    def __init__(self, workload: str, rows: int, seed: int):
        self.network = distnet_network(WORKLOADS[workload])
        self.images, self.labels, self.data = training_data()
        self.rows, self._gather, self.rng = rows, BatchGather(10, np.float32), np.random.default_rng(seed)
        self.gather()

    def gather(self) -> None:
        rows = self.rng.integers(0, len(self.images), self.rows)
        self._batch = self._gather(rows, self.images, self.labels)

    def __call__(self, out: np.ndarray) -> None:
        self.network.backprop(*self._batch, out=out, reuse_buffers=True)


def _ms(seconds) -> float:
    """Milliseconds: of one time, or the median of several."""
    return round(float(np.median(seconds)) * 1e3, 3)


def _worker(index: int, spec: ch.ChannelSpec, workload: str, rows: int, steps: int, connected, times) -> None:
    """A forked worker on the step channel, computing on the parameters in its shared memory and
    writing its gradient there, then gathering the next step's rows, as a GradientWorker does; each
    gradient timed."""
    gradients = _Gradients(workload, rows, seed=index)
    channel = ch.WorkerEnd(spec, index)
    connected.wait(timeout=120)  # a FIFO read before the server has opened its write end would read end-of-file
    gradients.network.use_params_memory(channel.params)
    for step in range(steps):
        channel.next_step()
        started = time.perf_counter()
        gradients(channel.grad)
        times[step * spec.workers + index] = time.perf_counter() - started
        channel.finish_step()
        gradients.gather()
    channel.close()


def gradient_alone(workload: str, rows: int, repeats: int) -> dict:
    gradients = _Gradients(workload, rows, seed=0)
    out = np.empty_like(gradients.network.params)
    for _ in range(WARM_UP):
        gradients(out)
    return {"gradient_alone_ms": _ms(median_seconds(lambda: gradients(out), repeats)), "data": gradients.data}


def channel_steps(workload: str, workers: int, repeats: int) -> dict:
    """``workers`` forked processes and this one, as the parameter server, run steps over
    distnet's step channel (shared memory and FIFOs, what a same-host run uses, without Ray);
    the workers' gradients and the server's update on them timed every step."""
    w = WORKLOADS[workload]
    network = distnet_network(w)
    size = network.params.size
    spec = ch.create_channel(workers, size, network.dtype)
    update = ParallelUpdate(distnet_optimizer().spec(), L2, network.weight_slices, size)
    steps = WARM_UP + repeats
    context = mp.get_context("fork")  # the children need no imports again
    times = context.RawArray("d", steps * workers)
    connected = context.Barrier(1 + workers)  # as the trainer's connect calls return before any step
    children = [context.Process(target=_worker, args=(i, spec, workload, w.batch_size // workers, steps,
                                                      connected, times)) for i in range(workers)]
    for child in children:
        child.start()
    scale = 1 / w.batch_size
    step_s, update_s = [], []
    try:
        server = ch.ServerEnd(spec)
        server.params[:] = network.params
        connected.wait(timeout=120)
        for step in range(steps):
            started = time.perf_counter()
            server.start_step(0, step)
            if server.wait_step():
                raise RuntimeError("a worker failed")
            update_started = time.perf_counter()
            update.apply_sum(server.params, server.grads, scale)
            finished = time.perf_counter()
            step_s.append(finished - started)
            update_s.append(finished - update_started)
        warm = median_seconds(lambda: update.apply_sum(server.params, server.grads, scale), repeats)
        server.close()
    finally:
        for child in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
        update.close()
        ch.remove_channel(spec)
    slowest = np.array(times).reshape(steps, workers)[WARM_UP:].max(axis=1)
    return {"gradient_at_once_ms": _ms(slowest), "update_warm_ms": _ms(warm),
            "update_after_gradients_ms": _ms(update_s[WARM_UP:]), "channel_step_ms": _ms(step_s[WARM_UP:]),
            "update_threads": update.parts,
            "update_kind": "one compiled pass (numba)" if fused.available() else "NumPy"}


def torch_parts(workload: str, threads: int, repeats: int) -> dict | None:
    """PyTorch in this process with ``threads`` threads, in ms: the L2 + Nesterov step on the
    network's parameters, and a whole training step on the full batch (``benchmarks.torch_peer``'s);
    None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    from benchmarks.torch_peer import _model, _Steps

    torch.set_num_threads(threads)
    w = WORKLOADS[workload]
    torch.manual_seed(1)
    images, labels, _ = training_data()
    steps = _Steps(torch, _model(torch, w), images, labels, w.batch_size, seed=1)
    steps.epoch(WARM_UP)  # the gradients are now there, and the optimizer's state
    return {"update_ms": _ms(median_seconds(steps.update, repeats)),
            "step_ms": _ms([steps.epoch(1) for _ in range(repeats)])}


def anatomy(workload: str, workers: int, repeats: int, command: str = "") -> dict:
    w = WORKLOADS[workload]
    result = {"command": command, "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "workload": workload, "sizes": w.sizes, "batch_size": w.batch_size, "workers": workers,
              "rows_per_worker": w.batch_size // workers, "cores": len(os.sched_getaffinity(0)),
              "threads": thread_settings()}
    result.update(gradient_alone(workload, w.batch_size // workers, repeats))
    result.update(channel_steps(workload, workers, repeats))
    result["torch"] = {str(t): torch_parts(workload, t, repeats) for t in (1, 2)}
    return result


def markdown(r: dict) -> str:
    def ms(value) -> str:
        return f"{value * 1e3:,.0f} µs" if value < 1 else f"{value:,.2f} ms"

    rows = r["rows_per_worker"]
    lines = [f"`{r['command']}`, {r['measured']}: {'-'.join(map(str, r['sizes']))}, batch "
             f"{r['batch_size']}, {count(r['workers'], 'worker')} of {rows} rows, {r['data']} data, "
             f"{r['cores']} cores, "
             f"1 BLAS thread per process, the update on {r['update_threads']} thread(s), "
             f"{r['update_kind']}.", "",
             "| part of a step | median |", "|---|---|",
             f"| gradient on {rows} rows, one process alone | {ms(r['gradient_alone_ms'])} |",
             f"| gradient on {rows} rows, {r['workers']} process{'es' * (r['workers'] > 1)} at once "
             f"(the slowest per step) | "
             f"{ms(r['gradient_at_once_ms'])} |",
             f"| server update, warm (repeated on the same gradients) | {ms(r['update_warm_ms'])} |",
             f"| server update, right after the workers wrote their gradients | "
             f"{ms(r['update_after_gradients_ms'])} |",
             f"| whole step over the step channel, without Ray (wake the workers, gradients, update) | "
             f"{ms(r['channel_step_ms'])} |"]
    for threads, torch in r["torch"].items():
        if torch is None:
            lines.append(f"| PyTorch, {threads} thread(s) | skipped: {SKIPPED} |")
            continue
        lines += [f"| PyTorch L2 + Nesterov step on the same parameters, {threads} thread(s) | "
                  f"{ms(torch['update_ms'])} |",
                  f"| PyTorch whole training step on {r['batch_size']} rows, {threads} thread(s) | "
                  f"{ms(torch['step_ms'])} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = step_tool_parser("step_anatomy", __doc__, default_workload="wide")
    parser.add_argument("--repeats", type=int, default=40, help="timed steps per part (default: 40)")
    args, command = parse_step_tool(parser, argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    result = anatomy(args.workload, args.workers, args.repeats, command)
    print_result(result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
