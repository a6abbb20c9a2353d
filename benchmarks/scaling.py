"""The scaling model: what a step costs with N workers, from constants measured on this machine.

    step(N) = gradient(B / N) + update(N) + coordination(N)

* gradient(b) = g0 + g1·b: one worker's backprop on its b = B/N rows (a fixed cost per call,
  mostly NumPy call overhead, plus a cost per sample), measured alone at each N this machine has;
* update(N) = u0 + u1·N: the parameter server sums N gradients and applies L2 and Nesterov;
* coordination(N) = c0 + c1·N: everything else in a step (wake-ups, copies of the parameters and
  gradients, Ray), from the measured step time of each protocol minus the two terms above.

Each term is a straight line fitted to the worker counts measured (two points on a 2-core machine,
so c1 and u1 are rough). It assumes one core per worker plus one for the server, all as fast as
these, on one host; across hosts the parameters and gradients also cross the network each step
(2·N·P·4 bytes through the server's link), which this model leaves out (see README.md).
"""
from __future__ import annotations

import numpy as np

PREDICT = (4, 16, 64)


def _line(points: dict[int, float]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through {x: y}; flat through one point."""
    xs, ys = np.array(list(points), dtype=float), np.array(list(points.values()))
    if len(xs) < 2:
        return float(ys[0]), 0.0
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(intercept), float(slope)


def model(workload: dict, cores: int) -> dict | None:
    compute = workload.get("compute")
    if not compute or "backprop_us" not in compute:
        return None
    batch = workload["batch_size"]
    g0, g1 = _line({batch // int(n): t for n, t in compute["backprop_us"].items()})
    u0, u1 = _line({int(n): t for n, t in compute["server_update_us"].items()})
    protocols = {}
    for key, run in workload["runs"].items():
        if key.startswith("distnet ") and "single" not in key and "coordination_us" in run:
            protocol, n = key[len("distnet "):].rsplit("/", 1)
            protocols.setdefault(protocol, {})[int(n)] = run["coordination_us"]
    result = {"gradient_us": {"per_call": g0, "per_sample": g1}, "update_us": {"fixed": u0, "per_worker": u1},
              "coordination_us": {}, "predicted": {}, "measured_workers": sorted({n for p in protocols.values() for n in p})}
    for protocol, points in protocols.items():
        c0, c1 = _line(points)
        result["coordination_us"][protocol] = {"fixed": c0, "per_worker": c1}
        predictions = {}
        for n in PREDICT:
            if batch // n < 1:
                predictions[str(n)] = None  # fewer samples than workers
                continue
            step = g0 + g1 * (batch / n) + u0 + u1 * n + c0 + c1 * n
            predictions[str(n)] = {"step_us": step, "samples_per_s": batch / step * 1e6}
        result["predicted"][protocol] = predictions
    return result


def markdown(scaling: dict | None) -> str:
    if not scaling:
        return ""
    g, u = scaling["gradient_us"], scaling["update_us"]
    lines = [f"Scaling model (µs): gradient = {g['per_call']:.0f} + {g['per_sample']:.2f}·(B/N); "
             f"update = {u['fixed']:.0f} + {u['per_worker']:.0f}·N; coordination per protocol below "
             f"(fitted to N = {', '.join(map(str, scaling['measured_workers']))}).", "",
             "| protocol | coordination µs | " + " | ".join(f"N={n}: µs/step, samples/s" for n in PREDICT) + " |",
             "|---|---|" + "---|" * len(PREDICT)]
    for protocol, c in scaling["coordination_us"].items():
        cells = []
        for n in PREDICT:
            p = scaling["predicted"][protocol][str(n)]
            cells.append("batch < N" if p is None else f"{p['step_us']:,.0f}, {p['samples_per_s']:,.0f}")
        lines.append(f"| {protocol} | {c['fixed']:.0f} + {c['per_worker']:.0f}·N | " + " | ".join(cells) + " |")
    return "\n".join(lines)
