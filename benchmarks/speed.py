"""The speed benchmark: distnet against PyTorch, DDP, Ray Train and the hardware limit, in one run.

    python -m benchmarks.speed            # the full suite (the numbers in benchmarks/README.md)
    python -m benchmarks.speed --quick    # a 2-3 minute sanity check: part of each epoch, fewer cases

Every case runs in its own process with its BLAS / OpenMP / PyTorch threads pinned (stated in the
output), on the same data, network and batch size. It prints the results as JSON, then as
Markdown tables with the ratios the targets ask for (see benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/speed.py` works as well as `-m`

from benchmarks import report  # noqa: E402
from benchmarks.case import PREFIX  # noqa: E402
from benchmarks.workloads import WORKLOADS, training_data  # noqa: E402
from distnet.io import atomic_writer  # noqa: E402
from distnet.nn.parallel_update import usable_cores  # noqa: E402

PROTOCOLS = ("channel", "compiled", "plain")


def _cases(quick: bool, cores: int) -> list[dict]:
    """Every case: a name, where it belongs, the function to run, its arguments and threads."""
    epochs = 2 if quick else 4  # the first epoch of each run is a warm-up
    samples = {"article": 25_600, "wide": 5_120} if quick else {"article": 50_000, "wide": 50_000}
    workers = [n for n in (1, 2, 4, 8, 16) if n <= cores]
    # The targets compare 2 workers with 2 threads and 2 DDP processes: on any machine, those too.
    threads, processes = sorted({1, min(2, cores), cores}), sorted({min(2, cores), cores})
    # Quick mode: every protocol at the most workers, the channel at each count, no Ray Train.
    distributed = [[p, n] for p in PROTOCOLS for n in workers if not quick or p == "channel" or n == workers[-1]]
    cases = [{"name": f"gemm, {t} thread(s)", "group": "hardware", "key": str(t), "module": "hardware",
              "function": "gemm", "threads": t, "args": {"threads": t, "size": 2048, "repeats": 3 if quick else 7}}
             for t in threads]
    for name in WORKLOADS:
        run = {"workload": name, "samples": samples[name], "epochs": epochs}
        cases.append({"name": f"{name}: distnet step math", "group": name, "key": "compute", "module": "distnet_cases",
                      "function": "compute", "threads": 1,
                      "args": {"workload": name, "workers": workers, "repeats": 5 if quick else 9}})
        for t in threads:
            cases.append({"name": f"{name}: distnet, 1 process, {t} thread(s)", "group": name,
                          "key": f"distnet single/{t}", "module": "distnet_cases", "function": "single",
                          "threads": t, "args": run})
        cases.append({"name": f"{name}: distnet distributed", "group": name, "key": "distnet distributed",
                      "module": "distnet_cases", "function": "distributed", "threads": 1,
                      "args": {**run, "runs": distributed}})
        for t in threads:
            cases.append({"name": f"{name}: PyTorch, 1 process, {t} thread(s)", "group": name,
                          "key": f"torch single/{t}", "module": "torch_peer", "function": "single", "threads": t,
                          "args": {**run, "threads": t}})
        for n in processes:
            cases.append({"name": f"{name}: PyTorch DDP, {n} processes", "group": name, "key": f"torch ddp/{n}",
                          "module": "torch_peer", "function": "ddp", "threads": 1, "args": {**run, "processes": n}})
            cases.append({"name": f"{name}: Ray Train, {n} workers", "group": name, "key": f"ray train/{n}",
                          "module": "raytrain_peer", "function": "raytrain", "threads": 1,
                          "args": {**run, "workers": n},
                          "skip": "not in --quick mode (its start-up alone takes about 30 s)" if quick else None})
    return cases


class _OtherWork:
    """How much CPU processes outside a case's session (someone else's work) used while it ran, in
    cores on average: sampled from /proc twice a second; 0 on a quiet machine. :meth:`during`
    tells it for one stretch of the case (one of the distributed runs that share a case process),
    from the samples on either side of it."""

    def __init__(self, session: int):
        self.session, self.samples = session, []  # (time.monotonic(), {pid: CPU ticks}), oldest first
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self._sample()
        self.thread.start()

    def _sample(self) -> None:
        ticks = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it ended
            if int(fields[3]) != self.session:  # fields from the state on: session is the 4th
                ticks[entry.name] = int(fields[11]) + int(fields[12])  # utime + stime, in ticks
        self.samples.append((time.monotonic(), ticks))  # CLOCK_MONOTONIC: the case's clock too

    def _run(self) -> None:
        while not self.stopped.wait(0.5):
            self._sample()

    def stop(self) -> float:
        """Stop sampling; the cores other work used over the whole case."""
        self.stopped.set()
        self.thread.join()
        self._sample()
        return self.during(self.samples[0][0], self.samples[-1][0])

    def during(self, start: float, end: float) -> float:
        """The cores other work used from ``start`` to ``end`` (``time.monotonic()`` values),
        measured from the last sample before ``start`` to the first after ``end``."""
        t0, first = max((s for s in self.samples if s[0] <= start), default=self.samples[0], key=lambda s: s[0])
        t1, last = min((s for s in self.samples if s[0] >= end), default=self.samples[-1], key=lambda s: s[0])
        ticks = sum(max(0, t - first.get(pid, 0)) for pid, t in last.items())
        return round(ticks / os.sysconf("SC_CLK_TCK") / (t1 - t0), 2) if t1 > t0 else 0.0


def _run_case(case: dict, timeout: float) -> dict:
    threads = str(case["threads"])
    # Ray starts its workers at niceness 15; at 0 they compete with the other cases' processes
    # (PyTorch, DDP) on equal terms when something else runs on the machine.
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "RAY_worker_niceness": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "benchmarks.case", case["module"], case["function"], json.dumps(case["args"])]
    started = time.perf_counter()
    # Its own session: the case and every process it starts (Ray's included) are told apart from
    # the rest of the machine.
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    others = _OtherWork(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return {"error": f"timed out after {timeout:.0f} s"}
    except KeyboardInterrupt:  # its own session does not get the terminal's Ctrl-C: end it here
        os.killpg(process.pid, signal.SIGKILL)
        raise
    finally:
        other_cores = others.stop()
    lines = [line for line in stdout.splitlines() if line.startswith(PREFIX)]
    if process.returncode or not lines:
        return {"error": f"exit {process.returncode}: " + (stderr.strip().splitlines() or ["no output"])[-1]}
    result = json.loads(lines[-1][len(PREFIX):])
    meta = {"threads": case["threads"], "other_work_cores": other_cores,
            "seconds": round(time.perf_counter() - started, 1)}
    if case["function"] == "distributed":  # its runs one after another: each its own stretch of the case
        return {key: _run_row(value, meta, others) for key, value in result.items()}
    # A peer that reports the threads it ran with (torch.get_num_threads()) keeps that check beside the setting.
    seen = {"threads_seen": result["threads"]} if "threads" in result else {}
    return {**result, **meta, **seen}


def _run_row(run: dict, meta: dict, others: _OtherWork) -> dict:
    """A distributed run's row: the case's ``meta``, but its own seconds and other work, from the
    ``window`` of its fit (a run that failed has none, and keeps the whole case's)."""
    row = {**run, **meta}
    if "window" in row:
        start, end = row.pop("window")
        row.update(other_work_cores=others.during(start, end), seconds=round(end - start, 1))
    return row


def _machine() -> dict:
    model = platform.processor()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for package in ("numpy", "numba", "ray", "torch"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            versions[package] = None
    return {"cpu": model, "cores": usable_cores(), "python": platform.python_version(), **versions,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def _commit() -> str | None:
    """The distnet commit measured (with a note where the working tree differs from it)."""
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout (an installed copy)
    return f"{head} with uncommitted changes" if changed else head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--quick", action="store_true", help="a part of each epoch, fewer repetitions and "
                                                              "worker counts, no Ray Train (2-3 min)")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text (see the "
                                                   "'... NAME' lines a run prints, e.g. 'wide: ' or 'PyTorch DDP')")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)

    cores = usable_cores()
    names = [case["name"] for case in _cases(args.quick, cores)]
    if not any(args.only in name for name in names):
        parser.error(f"--only {args.only!r} matches no case; the cases are: {'; '.join(names)}")
    if args.out:  # a path it cannot write fails now, not after the whole run (and nothing is left there)
        folder = args.out.parent
        if args.out.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK):
            parser.error(f"cannot write --out {args.out}: give a file in an existing folder this user may write to")
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "commit": _commit(),
                     "mode": "quick" if args.quick else "full", "machine": _machine(), "data": training_data(10)[2],
                     "threads": "each process pins OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS "
                                "(and torch.set_num_threads) to its case's thread count; Ray actors 1 BLAS thread "
                                "(the parameter server updates a large network's parameters in parts on up to one "
                                "thread per core: distnet.nn.ParallelUpdate), niceness 0 (RAY_worker_niceness=0) "
                                "like every other process",
                     "hardware": {}, "workloads": {}}
    for name, w in WORKLOADS.items():
        results["workloads"][name] = {"sizes": w.sizes, "batch_size": w.batch_size, "steps_per_epoch": w.steps_per_epoch,
                                      "flops_per_epoch": w.flops_per_epoch, "runs": {}}
    for case in _cases(args.quick, cores):
        if args.only not in case["name"]:
            continue
        print(f"... {case['name']}", file=sys.stderr, flush=True)
        result = {"skipped": case["skip"]} if case.get("skip") else _run_case(case, timeout=300 if args.quick else 1200)
        if case["group"] == "hardware":
            results["hardware"][case["key"]] = result
        elif case["key"] == "compute":
            results["workloads"][case["group"]]["compute"] = result
        elif case["function"] == "distributed" and "error" not in result:
            results["workloads"][case["group"]]["runs"].update({f"distnet {k}": v for k, v in result.items()})
        else:
            results["workloads"][case["group"]]["runs"][case["key"]] = result
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report.add_analysis(results)
    text = json.dumps(results, indent=1)
    print(text)  # first: a write that fails loses nothing
    print()
    print(report.markdown(results))
    if args.out:
        with atomic_writer(args.out, "w") as out:  # an interrupted run leaves no half-written file
            out.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
