"""From the raw case results to the numbers the targets ask for: throughput, coordination per
step, ratios, the targets themselves, the scaling model, and the Markdown tables.

    python -m benchmarks.report results.json    # the tables of a run saved with --out, derived anew
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/report.py` works as well as `-m`

from benchmarks import scaling  # noqa: E402

MEMORY_ALLOWANCE_MB = 150


def _ok(run: dict | None) -> bool:
    return bool(run) and "epoch_s" in run


def _processes(key: str) -> int:
    """Processes (workers, ranks) a run's key names: "distnet channel/2" → 2; single runs → 1."""
    return 1 if "single" in key else int(key.rsplit("/", 1)[1])


def add_analysis(results: dict) -> None:
    """Add derived numbers in place: per run samples/s, coordination µs per step and ratios; per
    workload the hardware floors; then the targets and the scaling model."""
    cores = results["machine"]["cores"]
    hardware = results["hardware"]
    for name, workload in results["workloads"].items():
        # N cores can do at least what fewer of them did: a 2-thread rate measured below the
        # 1-thread one (a loaded machine) must not raise the 2-core floor above the 1-core one.
        rates = {int(t): h["best_gflops"] for t, h in hardware.items() if "best_gflops" in h}
        floors = {str(t): workload["flops_per_epoch"] / (max(r for u, r in rates.items() if u <= t) * 1e9)
                  for t in sorted(rates)}
        workload["hardware_floor_s"] = floors
        compute = workload.get("compute", {})
        torch_one = workload["runs"].get("torch single/1")
        for key, run in workload["runs"].items():
            if not _ok(run):
                continue
            n = _processes(key)
            run["samples_per_s"] = workload["steps_per_epoch"] * workload["batch_size"] / run["epoch_s"]
            if key.startswith("distnet ") and "single" not in key and "backprop_us" in compute:
                math = compute["backprop_us"][str(n)] + compute["server_update_us"][str(n)]
                if not key.startswith("distnet channel"):  # a channel worker gathers while the server updates
                    math += compute.get("gather_us", {}).get(str(n), 0.0)  # (not timed apart before 2026-12-02)
                run["step_math_us"] = math
                run["coordination_us"] = run["step_us"] - math
            elif key.startswith(("torch ddp", "ray train")) and n == 2 and _ok(torch_one):
                run["step_math_us"] = torch_one["half_batch_step_us"]
                run["coordination_us"] = run["step_us"] - torch_one["half_batch_step_us"]
            if _ok(torch_one):
                run["vs_torch_1_thread"] = run["epoch_s"] / torch_one["epoch_s"]
            threads = str(min(cores, n * run.get("threads", 1)))
            if threads in floors:
                run["vs_hardware_floor"] = run["epoch_s"] / floors[threads]
        workload["scaling"] = scaling.model(workload, cores)
    results["targets"] = targets(results)


def _best(runs: dict, prefix: str, workers: int) -> tuple[str, dict] | tuple[None, None]:
    found = [(k, r) for k, r in runs.items() if k.startswith(prefix) and k.endswith(f"/{workers}") and _ok(r)
             and "single" not in k]
    return min(found, key=lambda kr: kr[1]["epoch_s"]) if found else (None, None)


def targets(results: dict) -> list[dict]:
    """Each target of issue 5: the measured value, the limit, met or not, and what was compared."""
    out = []

    def target(what: str, value, limit, met_if_below: bool, detail: str):
        if value is None or limit is None:
            out.append({"target": what, "value": None, "limit": limit, "met": None, "detail": "not measured"})
        else:
            out.append({"target": what, "value": round(value, 3), "limit": limit,
                        "met": value <= limit if met_if_below else value >= limit, "detail": detail})

    article, wide = results["workloads"].get("article", {}), results["workloads"].get("wide", {})
    runs = article.get("runs", {})
    single, torch_one = runs.get("distnet single/1"), runs.get("torch single/1")
    target("article, 1 process: distnet epoch / PyTorch 1-thread epoch",
           single["epoch_s"] / torch_one["epoch_s"] if _ok(single) and _ok(torch_one) else None, 0.5, True,
           "distnet single process, 1 thread, vs PyTorch 1 thread")
    target("article, 1 process: distnet epoch / hardware floor of its core",
           single.get("vs_hardware_floor") if _ok(single) else None, 3.0, True,
           "floor = FLOPs per epoch / large float32 GEMM rate on 1 core")
    key, best = _best(runs, "distnet ", 2)
    target("article, 2 workers: coordination µs per step", best.get("coordination_us") if best else None, 250, True,
           f"best protocol: {key}; step time minus a worker's gradient on 16 samples and the server update")
    target("article, 2 workers: distnet epoch / PyTorch 1-thread epoch",
           best["epoch_s"] / torch_one["epoch_s"] if best and _ok(torch_one) else None, 0.5, True, f"{key}")
    wruns = wide.get("runs", {})
    wkey, wbest = _best(wruns, "distnet ", 2)
    # On the same 2 cores: a 16-thread process on a 16-core machine is not what 2 workers replace.
    singles = [(k, r) for k, r in wruns.items() if "single" in k and _ok(r) and int(k.rsplit("/", 1)[1]) <= 2]
    best_single = max(singles, key=lambda kr: kr[1]["samples_per_s"]) if singles else (None, None)
    target("wide, 2 workers: throughput / best single process on the same cores",
           wbest["samples_per_s"] / best_single[1]["samples_per_s"] if wbest and best_single[1] else None, 0.9, False,
           f"{wkey} vs {best_single[0]}")
    ddp = wruns.get("torch ddp/2")
    target("wide, 2 workers: throughput / PyTorch DDP 2 processes",
           wbest["samples_per_s"] / ddp["samples_per_s"] if wbest and _ok(ddp) else None, 1.2, False, f"{wkey}")
    for name, workload in results["workloads"].items():
        for key, run in workload.get("runs", {}).items():
            if key.startswith("distnet ") and "single" not in key and _ok(run) and run.get("peak_rss_mb"):
                limit = run["shard_mb"] + MEMORY_ALLOWANCE_MB
                target(f"{name}, {key}: worker peak RSS MB", max(run["peak_rss_mb"]), round(limit, 1), True,
                       f"shard {run['shard_mb']} MB + {MEMORY_ALLOWANCE_MB} MB")
    return out


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _busy(results: dict) -> list[float]:
    busy = [run.get("other_work_cores") for w in results["workloads"].values() for run in w["runs"].values()]
    # The step math too: slowed by other work, it reads high, and the coordination (step - math) low.
    busy += [w.get("compute", {}).get("other_work_cores") for w in results["workloads"].values()]
    busy += [h.get("other_work_cores") for h in results["hardware"].values()]
    return [b for b in busy if b is not None]


def _busy_max(results: dict) -> float:
    return max(_busy(results), default=0.0)


def _busy_range(results: dict) -> str:
    busy = _busy(results)
    return f"{min(busy):.2f}–{max(busy):.2f}" if busy else "not measured"


def markdown(results: dict) -> str:
    m = results["machine"]
    commit = f" at commit {results['commit']}" if results.get("commit") else ""
    lines = [f"Measured {results['date']}{commit} ({results['mode']} mode, {results['data']} data) on {m['cpu']}, "
             f"{m['cores']} cores; Python {m['python']}, NumPy {m['numpy']}, "
             f"numba {m.get('numba') or 'not installed (the NumPy update)'}, Ray {m['ray']}, "
             f"PyTorch {m['torch'] or 'not installed'}; "
             f"load average {m['load_average_at_start'][0]} at start, {m['load_average_at_end'][0]} at end; "
             f"other work on the machine during the cases: {_busy_range(results)} cores on average.",
             f"Threads: {results['threads']}.", ""]
    if _busy_max(results) > 0.1:
        lines[-1:-1] = [f"**Other work used up to {_busy_max(results):.1f} cores during some cases (see "
                        f"other_work_cores in the JSON): those numbers are not reliable; run again on a quiet "
                        f"machine.**"]
    for t, h in results["hardware"].items():
        if "best_gflops" in h:
            lines.append(f"- float32 GEMM, {t} thread(s): {h['best_gflops']:.0f} GFLOP/s (2048²; NumPy "
                         f"{h['numpy_gflops']:.0f}, PyTorch {_fmt(h['torch_gflops'], 0)}); at the article's "
                         f"32×784×36 shape NumPy reaches {h['article_shape_gflops']:.0f}")
    for name, w in results["workloads"].items():
        if not w["runs"] and not w.get("compute"):
            continue  # not among the cases run (--only)
        floors = ", ".join(f"{v:.3f} s on {t} core(s)" for t, v in w.get("hardware_floor_s", {}).items())
        floors = floors or "not measured: no gemm case ran"
        lines += ["", f"### {name}: {'-'.join(map(str, w['sizes']))}, batch {w['batch_size']}, "
                      f"{w['steps_per_epoch']} steps per epoch, {w['flops_per_epoch'] / 1e9:.1f} GFLOP per epoch "
                      f"(hardware floor {floors})", "",
                  "| run | epoch s | samples/s | µs/step | step math µs | coordination µs/step | × PyTorch 1 thread "
                  "| × hardware floor | peak RSS MB/process |",
                  "|---|---|---|---|---|---|---|---|---|"]
        below_noise = below_floor = False
        for key, run in w["runs"].items():
            if not _ok(run):
                reason = run.get("skipped") or run.get("error") if run else "missing"
                lines.append(f"| {key} | {reason} ||||||||")
                continue
            coordination = _fmt(run.get("coordination_us"), 0)
            if (run.get("coordination_us") or 0) < 0:
                coordination, below_noise = coordination + " *", True
            floor = _fmt(run.get("vs_hardware_floor"))
            if run.get("vs_hardware_floor", 1) < 1:
                floor, below_floor = floor + " †", True
            lines.append(f"| {key} | {_fmt(run['epoch_s'], 3)} | {_fmt(run['samples_per_s'], 0)} | "
                         f"{_fmt(run['step_us'], 0)} | {_fmt(run.get('step_math_us'), 0)} | "
                         f"{coordination} | {_fmt(run.get('vs_torch_1_thread'))} | "
                         f"{floor} | {', '.join(map(str, run.get('peak_rss_mb', [])))} |")
        if below_noise:
            lines += ["", "\\* The step took less than its math timed alone (in a separate process): the "
                          "coordination is below what this run resolves."]
        if below_floor:
            lines += ["", "† Faster than the hardware floor: the GEMM rate was measured low (other work on the "
                          "machine during the gemm case), so this run's floor is not a floor."]
        lines += ["", scaling.markdown(w.get("scaling"))]
    lines += ["", "| target | measured | limit | met | compared |", "|---|---|---|---|---|"]
    for t in results["targets"]:
        met = "–" if t["met"] is None else "yes" if t["met"] else "**no**"
        lines.append(f"| {t['target']} | {_fmt(t['value'], 3)} | {t['limit']} | {met} | {t['detail']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("results", type=Path, help="a run saved with python -m benchmarks.speed --out")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
    except (OSError, ValueError) as e:
        parser.error(f"cannot read {args.results}: {e}")
    if not isinstance(results, dict) or not {"date", "mode", "data", "machine", "workloads", "hardware"} <= results.keys():
        parser.error(f"{args.results} is not a run saved by python -m benchmarks.speed --out")
    try:
        add_analysis(results)
        tables = markdown(results)
    except (KeyError, TypeError, AttributeError) as e:  # parts of such a run missing, or of another kind
        parser.error(f"{args.results} is not a whole run saved by python -m benchmarks.speed --out "
                     f"({type(e).__name__}: {e})")
    print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
