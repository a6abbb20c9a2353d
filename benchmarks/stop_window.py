"""Choose a preset's stop window on validation curves: train each seed for a fixed number of
epochs, keep the network of every evaluation, and replay the original's stop rule with several
windows over the same validation errors.

    python benchmarks/stop_window.py                                   # seed preset, seeds 1-6
    python benchmarks/stop_window.py --preset tuned --epochs 100 --windows 3 5 10 --seeds 1 2

One run per seed answers every window: training does not depend on when it would have stopped, so
"window W" is the stop rule fed the first evaluations of that run until it says stop, and its
best network is the one it kept. The windows are compared on validation error alone; the test
error is computed only for the networks some window keeps, and printed beside them so that the
choice can be checked afterwards, never made on it. Each seed trains in its own process (one BLAS
thread, ``--jobs`` at once). Prints JSON, then a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.accuracy import pct, run_child  # noqa: E402
from distnet.commands.common import non_negative_int, positive_int  # noqa: E402
from distnet.presets import PRESETS  # noqa: E402
from distnet.stop import StopEvaluator  # noqa: E402


def replay(validation_errors: list[float], window: int) -> tuple[int, int, bool]:
    """The stop rule with ``window`` fed these errors in turn: (the index of the evaluation at
    which it stops, or the last one if it never does; the index of the best it kept; whether it
    stopped)."""
    evaluator, best = StopEvaluator(window), 0
    for i, error in enumerate(validation_errors):
        stop = evaluator.stop(error)
        if evaluator.improved:
            best = i
        if stop:
            return i, best, True
    return len(validation_errors) - 1, best, False


def curve(preset_name: str, seed: int, epochs: int, windows: list[int], dataset: str) -> dict:
    """Train one seed for ``epochs`` epochs (never stopping) and replay every window over its
    validation errors; the test error of each window's kept network."""
    from distnet import Trainer, get_preset, load_dataset
    from distnet.stop import EarlyStopping

    preset = get_preset(preset_name)
    splits = load_dataset(dataset, download=False)
    snapshots = []

    class Recording(EarlyStopping):
        def evaluate(self, epoch, error_rate, params):
            snapshots.append(params.copy())
            return super().evaluate(epoch, error_rate, params)

    class RecordingTrainer(Trainer):
        def _early_stopping(self, network_spec, window, acceptable_error, best_path, notes=None):
            return Recording(network_spec, window, acceptable_error, best_path, notes)

    network = preset.build_network(seed=seed)
    trainer = RecordingTrainer(network, preset.build_optimizer(), l2=preset.l2, batch_size=preset.batch_size,
                               seed=seed, schedule=preset.build_schedule(),
                               augmentation=preset.build_augmentation())
    result = trainer.fit(splits.train, splits.validation, epochs=epochs, eval_every=preset.eval_every,
                         window=epochs + 1)  # a window that never fills: the run goes to the end
    errors = [record["validation_error"] for record in result.history]
    by_window = {}
    for window in windows:
        stop, best, stopped = replay(errors, window)
        network.set_params(snapshots[best])
        by_window[str(window)] = {"epochs": result.history[stop]["epoch"], "best_epoch": result.history[best]["epoch"],
                                  "validation_error": errors[best], "stopped": stopped,
                                  "test_error": network.error_rate(splits.test.images, splits.test.labels)}
    return {"seed": seed, "validation_errors": errors, "epochs": [r["epoch"] for r in result.history],
            "windows": by_window}


def markdown(report: dict) -> str:
    lines = [f"`{report['command']}`: the {report['preset']} preset, {report['epochs']} epochs per seed, evaluation "
             f"every {report['eval_every']} epochs; the stop rule replayed with each window.", "",
             "| window | median best validation error | median test error of the kept network | epochs run "
             "(best) per seed |", "|---|---|---|---|"]
    for window in map(str, report["windows"]):
        rows = [run["windows"][window] for run in report["runs"]]
        per_seed = ", ".join(f"{r['epochs']}{'' if r['stopped'] else '+'} ({r['best_epoch']})" for r in rows)
        lines.append(f"| {window} | {pct(statistics.median(r['validation_error'] for r in rows))} | "
                     f"{pct(statistics.median(r['test_error'] for r in rows))} | {per_seed} |")
    lines += ["", "A `+` marks a run the window had not stopped by the last epoch."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="seed", choices=sorted(PRESETS),
                        help="the preset to train (default: %(default)s)")
    parser.add_argument("--seeds", nargs="+", type=non_negative_int, default=[1, 2, 3, 4, 5, 6],
                        help="seeds to train, one run each (default: 1 2 3 4 5 6)")
    parser.add_argument("--epochs", type=positive_int, default=500, help="epochs each seed trains (default: 500)")
    parser.add_argument("--windows", nargs="+", type=positive_int, default=[10, 20, 30, 40],
                        help="stop windows to replay, in evaluations (default: 10 20 30 40)")
    parser.add_argument("--jobs", type=positive_int, default=1, help="seeds trained at the same time (default: 1)")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process of one seed
    args = parser.parse_args(argv)
    args.windows = list(dict.fromkeys(args.windows))  # a window given twice is one row
    if args.one is not None:
        print(json.dumps(curve(args.preset, args.one, args.epochs, args.windows, args.dataset)))
        return 0

    preset = PRESETS[args.preset]

    def one(seed: int) -> dict:
        command = [sys.executable, str(Path(__file__).resolve()), "--one", str(seed), "--preset", args.preset,
                   "--epochs", str(args.epochs), "--dataset", args.dataset, "--windows", *map(str, args.windows)]
        out, _ = run_child(command, f"seed {seed}")
        run = json.loads(out.splitlines()[-1])
        print(f"seed {seed}: " + ", ".join(f"window {w} {'stops at' if r['stopped'] else 'has not stopped by'} epoch "
                                          f"{r['epochs']}, best validation error {pct(r['validation_error'])}"
                                          for w, r in run["windows"].items()),
              file=sys.stderr, flush=True)
        return run

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = list(pool.map(one, dict.fromkeys(args.seeds)))  # a seed given twice is one run
    report = {"command": " ".join(["stop_window.py", *(argv if argv is not None else sys.argv[1:])]),
              "preset": args.preset, "epochs": args.epochs, "eval_every": preset.eval_every,
              "windows": args.windows, "runs": runs}
    print(json.dumps(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
