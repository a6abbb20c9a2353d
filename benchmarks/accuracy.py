"""Accuracy on real MNIST: train presets to their early stop for several seeds and report the test
error of each run's best network (chosen on the validation split, never on the test set).

    python benchmarks/accuracy.py                                # seed and tuned, seeds 1-5
    python benchmarks/accuracy.py --presets tuned --seeds 1 2 3 --jobs 2 --workers 0
    python benchmarks/accuracy.py --presets seed --protocol article --jobs 2    # the article's way

The default protocol stops early on a validation split held out of the training set, which is
the honest way. ``--protocol article`` repeats what the original did, for comparison only: it
trains on all 60,000 training samples and hands the *test* error to the stop rule, so the best
network is chosen on the test set and its test error is optimistic.

Each run is ``distnet train --json`` in its own process (one BLAS thread each), so the numbers are
exactly what a user gets; ``--jobs`` runs that many at once. Finished runs are appended to
``RUNS_DIR/results.jsonl`` and reused when the benchmark is started again, so an interrupted
measurement continues where it stopped. Prints one line per run as it ends, then the results as
JSON and as Markdown tables (per seed, and median / min / max per preset).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# This checkout's distnet, for the runs and for the preset definitions alike.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# One BLAS thread per run: parallel runs must not fight over the cores, and timings stay comparable.
THREADS = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def main(argv: list[str] | None = None) -> int:
    from distnet.commands.common import non_negative_int, positive_int
    from distnet.presets import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["seed", "tuned"], choices=sorted(PRESETS),
                        help="default: seed tuned")
    parser.add_argument("--seeds", nargs="+", type=non_negative_int, default=[1, 2, 3, 4, 5],
                        help="default: 1 2 3 4 5")
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="gradient workers per run; 0 (default) trains in the process, the same math")
    parser.add_argument("--jobs", type=positive_int, default=1, help="runs at the same time (default: 1)")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--epochs", type=positive_int,
                        help="cap every preset's maximum epochs (default: the preset's)")
    parser.add_argument("--protocol", choices=["validation", "article"], default="validation",
                        help="stop early on a held-out validation split (default), or as the article did: "
                             "train on all training samples and stop on the test set (optimistic)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/accuracy"),
                        help="where the runs and results.jsonl go (default: runs/accuracy)")
    args = parser.parse_args(argv)
    if args.protocol == "article" and args.workers:
        parser.error(f"--workers {args.workers}: the article protocol trains in the process; leave --workers out")
    # A seed or preset given twice is one run (twice, two runs would write one run folder at once).
    args.seeds, args.presets = list(dict.fromkeys(args.seeds)), list(dict.fromkeys(args.presets))
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    results_path = args.runs_dir / "results.jsonl"
    # Reused only if measured with the same settings and the same preset definition.
    done = {(r["preset"], r["seed"]): r for r in read_results(results_path)
            if r["dataset"] == args.dataset and r["workers"] == args.workers and r["max_epochs"] == args.epochs
            and r.get("protocol", "validation") == args.protocol
            and r.get("definition") == definition(r["preset"])}
    todo = [(p, s) for p in args.presets for s in args.seeds if (p, s) not in done]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"{len(todo)} run(s) to do, {len(args.presets) * len(args.seeds) - len(todo)} reused from "
          f"{results_path}", file=sys.stderr)

    run_one = train if args.protocol == "validation" else train_like_the_article

    def one(job):
        result = run_one(job[0], job[1], args)
        with open(results_path, "a") as f:
            f.write(json.dumps(result) + "\n")
        print(f"preset {result['preset']}, seed {result['seed']}: test error {100 * result['test_error']:.2f}%, "
              f"{result['epochs']} epochs (best {result['best_epoch']}), {result['wall_seconds']:.0f} s",
              file=sys.stderr, flush=True)
        return result

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for result in pool.map(one, todo):
            done[(result["preset"], result["seed"])] = result
    runs = [{k: v for k, v in done[(p, s)].items() if k != "definition"} for p in args.presets for s in args.seeds]
    report = {"date": started, "protocol": args.protocol, "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
              "reused": len(runs) - len(todo), "machine": machine(), "runs": runs,
              "runs_of_other_code": sum(r.get("distnet_code") != code_digest() for r in runs),
              "presets": {p: {**summarize([r for r in runs if r["preset"] == p]), "definition": definition(p)}
                          for p in args.presets}}
    print(json.dumps(report))
    print(markdown(report))
    return 0


def train(preset: str, seed: int, args) -> dict:
    """One `distnet train` run; its summary plus what the benchmark adds."""
    from distnet.rundir import RunDir

    run_dir = run_dir_of(preset, seed, args)
    command = [sys.executable, "-m", "distnet", "train", "--preset", preset, "--seed", str(seed),
               "--workers", str(args.workers), "--dataset", args.dataset, "--json", "--run-dir", str(run_dir)]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    if RunDir(run_dir).has_checkpoint():  # an earlier, interrupted attempt: continue it
        command = command[:4] + ["--resume", str(run_dir), "--json"]
    out, wall = run_child(command, " ".join(command))
    summary = next(e for e in map(json.loads, out.splitlines()) if e.get("event") == "summary")
    return result_record(preset, seed, args, summary, wall, run_dir)


def run_dir_of(preset: str, seed: int, args) -> Path:
    """The run's folder, named by everything that shapes the run, so that an interrupted run is
    continued only as itself."""
    fingerprint = hashlib.sha256(json.dumps([definition(preset), args.epochs]).encode()).hexdigest()[:8]
    return args.runs_dir / f"{preset}-{fingerprint}-{args.dataset}-seed{seed}-w{args.workers}"


def train_like_the_article(preset: str, seed: int, args) -> dict:
    """One run the article's way, in its own process: all training samples, stopped on the test set."""
    code = f"from benchmarks.accuracy import article_run; article_run({preset!r}, {seed}, {args.dataset!r}, {args.epochs})"
    out, wall = run_child([sys.executable, "-c", code], f"the article-protocol run of {preset} seed {seed}")
    return result_record(preset, seed, args, json.loads(out.splitlines()[-1]), wall, None)


def run_child(command: list[str], what: str) -> tuple[str, float]:
    """Run ``command`` with one BLAS thread and this checkout first on the path; its standard
    output and wall seconds. Ends the benchmark, with the child's error, if it fails."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True,
                              env={**os.environ, **THREADS, "PYTHONPATH": path})
    if finished.returncode != 0:
        raise SystemExit(f"{what} failed ({finished.returncode}):\n{finished.stderr[-2000:]}")
    return finished.stdout, time.perf_counter() - started


def article_run(preset_name: str, seed: int, dataset: str, max_epochs: int | None) -> None:
    """Train on every training sample, handing the test error to the stop rule; print a summary."""
    from distnet import Trainer, get_preset, load_dataset

    preset = get_preset(preset_name).with_overrides(epochs=max_epochs)
    splits = load_dataset(dataset, validation=0, download=False)
    trainer = Trainer(preset.build_network(seed=seed), preset.build_optimizer(), l2=preset.l2,
                      batch_size=preset.batch_size, seed=seed, schedule=preset.build_schedule(),
                      augmentation=preset.build_augmentation())
    result = trainer.fit(splits.train, splits.test, epochs=preset.epochs, eval_every=preset.eval_every,
                         window=preset.window)
    print(json.dumps({"test_error": result.best_error, "validation_error": None, "epochs": result.epochs,
                      "best_epoch": result.best_epoch, "stop_reason": result.stop_reason,
                      "seconds": round(result.seconds, 3)}))


def result_record(preset: str, seed: int, args, summary: dict, wall: float, run_dir: Path | None) -> dict:
    return {"preset": preset, "seed": seed, "dataset": args.dataset, "workers": args.workers,
            "protocol": args.protocol, "max_epochs": args.epochs, "definition": definition(preset),
            "distnet_code": code_digest(),
            "test_error": summary["test_error"], "validation_error": summary["validation_error"],
            "epochs": summary["epochs"], "best_epoch": summary["best_epoch"],
            "stop_reason": summary["stop_reason"], "train_seconds": summary["seconds"],
            "wall_seconds": round(wall, 1), "run_dir": str(run_dir) if run_dir else None,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def definition(preset: str) -> dict | None:
    """The preset as this checkout defines it (None for an unknown name)."""
    from distnet.presets import PRESETS

    return json.loads(json.dumps(dataclasses.asdict(PRESETS[preset]))) if preset in PRESETS else None


def code_digest() -> str:
    """A digest of this checkout's distnet source, which each run records."""
    from distnet.distributed.same_code import distnet_code

    return distnet_code()[1]


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(runs: list[dict]) -> dict:
    errors = [r["test_error"] for r in runs]
    return {"runs": len(runs), "median_test_error": statistics.median(errors), "min_test_error": min(errors),
            "max_test_error": max(errors),
            # None under the article's protocol, which has no validation split.
            "median_validation_error": statistics.median(v) if (v := [r["validation_error"] for r in runs
                                                                      if r["validation_error"] is not None]) else None,
            "median_epochs": statistics.median(r["epochs"] for r in runs),
            "median_wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
            "total_wall_seconds": round(sum(r["wall_seconds"] for r in runs), 1)}


def machine() -> dict:
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "load_average": os.getloadavg()}


def pct(x: float | None) -> str:
    """An error rate in percent: hundredths, as errors on 10,000 samples are, and a thousandth
    where a median of an even number of runs falls between two (2.505 %, which 2 decimals would
    show as 2.50 %)."""
    if x is None:
        return "–"
    text = f"{100 * x:.3f}"
    return f"{text[:-1] if text.endswith('0') else text} %"


def markdown(report: dict) -> str:
    reused = f"; {report['reused']} run(s) reused from earlier invocations" if report["reused"] else ""
    if report.get("runs_of_other_code"):
        reused += (f", {report['runs_of_other_code']} of them by another distnet (its source differed: a "
                   f"change to the arithmetic would not show)")
    lines = [f"Measured {report['date']} with `{report['command']}` "
             f"({report['machine']['cpus']} CPUs, load average at the end {report['machine']['load_average'][0]:.1f}"
             f"{reused}).",
             "", "Protocol: " + ("early stopping on the validation split." if report["protocol"] == "validation" else
                             "the article's: trained on all training samples, stopped on the test set (the test "
                             "error is the best of the evaluations, so it is optimistic)."),
             "", "| preset | runs | median test error | min | max | median best validation error | median epochs "
             "| median wall time per run |", "|---|---|---|---|---|---|---|---|"]
    for name, s in report["presets"].items():
        lines.append(f"| {name} | {s['runs']} | {pct(s['median_test_error'])} | {pct(s['min_test_error'])} | "
                     f"{pct(s['max_test_error'])} | {pct(s['median_validation_error'])} | {s['median_epochs']:g} | "
                     f"{s['median_wall_seconds']:.0f} s |")
    lines += ["", "| preset | seed | test error | best validation error | epochs (best) | stopped by | wall time |",
              "|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        lines.append(f"| {r['preset']} | {r['seed']} | {pct(r['test_error'])} | {pct(r['validation_error'])} | "
                     f"{r['epochs']} ({r['best_epoch']}) | {r['stop_reason'].replace('_', ' ')} | "
                     f"{r['wall_seconds']:.0f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
