"""Peak memory of distnet's workers in a run like `distnet train`'s: training, and the validation
split evaluated on the workers after every epoch (the speed suite times training alone).

    python -m benchmarks.worker_memory                      # wide network; channel, compiled, plain
    python -m benchmarks.worker_memory --workload article --runs channel/2

Prints the JSON, then a Markdown table with each run's limit (its shard + 150 MB). The workers run
one BLAS thread each, as in every distributed run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/worker_memory.py` works as well as `-m`

from benchmarks.distnet_cases import distributed  # noqa: E402
from benchmarks.report import MEMORY_ALLOWANCE_MB  # noqa: E402
from benchmarks.speed import PROTOCOLS  # noqa: E402
from benchmarks.workloads import TRAIN_SAMPLES, WORKLOADS  # noqa: E402

VALIDATION_ROWS = 10_000


def _runs(text: str) -> list[list]:
    runs = []
    for item in text.split(","):
        protocol, _, workers = item.strip().partition("/")
        if protocol not in PROTOCOLS or not workers.isdigit() or int(workers) < 1:
            raise argparse.ArgumentTypeError(f"{item!r}: expected PROTOCOL/WORKERS, e.g. channel/2")
        runs.append([protocol, int(workers)])
    return runs


def _at_least_two(text: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 2 (the first epoch is a warm-up, not timed)")
    return int(text)


def table(results: dict) -> str:
    """The Markdown table: each run's worst worker against its training shard + 150 MB, and against
    that limit with the worker's part of the validation split (which it holds as it holds its
    shard) counted as data too."""
    lines = ["| run | worker peak RSS MB | shard MB | limit MB (shard + 150) | within | validation rows read, MB per worker "
             "| within, its validation part counted with its shard | validation error by epoch |",
             "|---|---|---|---|---|---|---|---|"]
    for key, run in results.items():
        if "error" in run:
            lines.append(f"| {key} | failed: {run['error']} | | | | | | |")
            continue
        limit = run["shard_mb"] + MEMORY_ALLOWANCE_MB
        peak = max(run["peak_rss_mb"])
        peaks = ", ".join(map(str, run["peak_rss_mb"]))
        errors = ", ".join(f"{100 * e:.2f} %" for e in run["validation_errors"])
        within = "yes" if peak <= limit else "**no**"
        with_validation = "yes" if peak <= limit + run["validation_mb"] else "**no**"
        lines.append(f"| {key} | {peaks} | {run['shard_mb']} | {limit:.1f} | {within} | {run['validation_mb']} "
                     f"| {with_validation} | {errors} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker_memory", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="wide",
                        help="network and batch size (default: %(default)s)")
    parser.add_argument("--runs", type=_runs, default=_runs("channel/1,channel/2,compiled/2,plain/2"),
                        help="PROTOCOL/WORKERS (WORKERS >= 1), comma-separated (default: channel/1,channel/2,"
                             "compiled/2,plain/2)")
    parser.add_argument("--epochs", type=_at_least_two, default=2,
                        help="epochs per run, at least 2: the first is a warm-up, the others are timed (default: 2)")
    args = parser.parse_args(argv)
    # Ray's workers, which take this process's environment, import this checkout's distnet too (not
    # one installed elsewhere, which the actors would refuse as other code).
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    results = distributed(args.workload, TRAIN_SAMPLES, args.epochs, args.runs, validation=VALIDATION_ROWS)
    print(json.dumps(results, indent=1))
    print()
    print(table(results))
    return 1 if all("error" in run for run in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
