"""The scaling model: what a step costs with N workers, from constants measured on this machine.

    step(N) = g · B/N + fixed + per_worker · N

* g: the gradient's cost per sample, the slope of one worker's backprop time over its rows,
  measured alone (1 thread) on B/N rows for N = 1, 2, 4, 8 and every N the machine has; for the
  protocols but ``channel`` (whose workers gather the next step's rows while the server updates)
  with the gathering of the rows too, timed apart the same way;
* fixed + per_worker · N: everything else in a step (the parameter server's update, which sums N
  gradients; waking and waiting for N workers; the per-call cost of a backprop), fitted to the
  measured step times of each protocol after the g · B/N part is taken out. Of per_worker, the
  update's share (one more gradient to sum) is measured alone too and shown beside it.

With two worker counts measured (a 2-core machine) the two constants are fitted exactly, so the
model reproduces N = 1, 2 and extrapolates a straight line: a rough guide, not a measurement.
No cost of a step shrinks as workers are added and none is below zero, so the fit keeps every
slope and every fixed cost at zero or above, and per_worker at least at the update's own share;
a fit that breaks a bound is run-to-run noise (the line is then the best one on that bound).
It assumes one core per worker plus one for the server, all as fast as these, on one host;
across hosts the parameters and gradients also cross the network each step (2·N·P·4 bytes
through the server's link), which it leaves out (see README.md).
"""
from __future__ import annotations

import numpy as np

PREDICT = (4, 16, 64)


def _line(points: dict[float, float], min_slope: float = 0.0) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through {x: y} with the intercept at least 0
    and the slope at least ``min_slope``: the free fit where it keeps both bounds, else the best
    line with one or both on their bound."""
    xs, ys = np.array(list(points), dtype=float), np.array(list(points.values()))
    candidates = [(float(np.mean(ys - min_slope * xs)), min_slope),  # slope on its bound
                  (0.0, max(min_slope, float(xs @ ys / (xs @ xs))))]  # intercept on its bound (corner included)
    if len(xs) >= 2:
        slope, intercept = np.polyfit(xs, ys, 1)
        candidates.append((float(intercept), float(slope)))
    feasible = [(a, b) for a, b in candidates if a >= 0 and b >= min_slope]
    return min(feasible, key=lambda line: float(np.sum((line[0] + line[1] * xs - ys) ** 2)))


def model(workload: dict, cores: int) -> dict | None:
    compute = workload.get("compute")
    if not compute or "backprop_us" not in compute:
        return None
    batch = workload["batch_size"]
    _, per_sample = _line({batch / int(n): t for n, t in compute["backprop_us"].items()})
    gathers = compute.get("gather_us")  # (not timed apart before 2026-12-02)
    gather_per_sample = _line({batch / int(n): t for n, t in gathers.items()})[1] if gathers else 0.0
    _, update_per_worker = _line({int(n): t for n, t in compute["server_update_us"].items()})
    measured: dict[str, dict[int, float]] = {}
    for key, run in workload["runs"].items():
        if key.startswith("distnet ") and "single" not in key and "step_us" in run:
            protocol, n = key[len("distnet "):].rsplit("/", 1)
            measured.setdefault(protocol, {})[int(n)] = run["step_us"]
    result = {"gradient_us_per_sample": per_sample, "gather_us_per_sample": gather_per_sample,
              "update_us_per_worker": update_per_worker, "protocols": {},
              "measured_workers": sorted({n for m in measured.values() for n in m})}
    for protocol, steps in measured.items():
        g = per_sample + (0.0 if protocol == "channel" else gather_per_sample)
        # Each worker more is one gradient more for the server to sum, at the least.
        fixed, per_worker = _line({n: t - g * batch / n for n, t in steps.items()}, min_slope=update_per_worker)
        predicted = {}
        for n in PREDICT:
            if batch < n:
                predicted[str(n)] = None  # fewer samples than workers
                continue
            step = g * batch / n + fixed + per_worker * n
            predicted[str(n)] = {"step_us": step, "samples_per_s": batch / step * 1e6}
        result["protocols"][protocol] = {"fixed_us": fixed, "per_worker_us": per_worker, "predicted": predicted,
                                         "fitted_to": sorted(steps)}
    return result


def markdown(scaling: dict | None) -> str:
    if not scaling:
        return ""
    lines = [f"Scaling model: step(N) = {scaling['gradient_us_per_sample']:.2f} µs · B/N + fixed + per_worker · N "
             f"(the update's own share of per_worker: {scaling['update_us_per_worker']:.0f} µs; protocols but channel "
             f"add the gathering of the rows, {scaling.get('gather_us_per_sample', 0.0):.2f} µs · B/N); from one "
             f"measured N, per_worker is that share alone.", "",
             "| protocol | fitted to N | fixed µs | per_worker µs | "
             + " | ".join(f"N={n}: µs/step, samples/s" for n in PREDICT) + " |",
             "|---|---|---|---|" + "---|" * len(PREDICT)]
    for protocol, p in scaling["protocols"].items():
        cells = []
        for n in PREDICT:
            step = p["predicted"][str(n)]
            cells.append("batch < N" if step is None else f"{step['step_us']:,.0f}, {step['samples_per_s']:,.0f}")
        lines.append(f"| {protocol} | {', '.join(map(str, p['fitted_to']))} | {p['fixed_us']:,.0f} | "
                     f"{p['per_worker_us']:,.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
