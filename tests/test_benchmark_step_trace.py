"""benchmarks/step_trace.py: the parts of a step are read right from the processes' marks, and a real
2-worker run over the channel is traced in every actor."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(*args):
    # A child process: the tool pins BLAS to one thread before NumPy loads, which must not leak here.
    return subprocess.run([sys.executable, "-m", "benchmarks.step_trace", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_each_part_of_a_step_from_the_marks():
    from benchmarks.step_trace import timeline

    us = 1e-6
    wakes = np.array([0, 100, 200, 300]) * us
    quick_reports, slow_reports = wakes + 60 * us, wakes + 80 * us  # the quick worker also starts first
    quick = {"wakes": wakes + 3 * us, "reports": quick_reports,
             "waits": np.r_[-10 * us, quick_reports[:-1] + 5 * us]}
    slow = {"wakes": wakes + 18 * us, "reports": slow_reports,
            "waits": np.r_[-10 * us, slow_reports[:-1] + 40 * us]}
    all_reported = slow_reports + 6 * us
    server = {"wakes": wakes, "all_reported": all_reported, "update_starts": all_reported + 1 * us,
              "update_ends": all_reported + 21 * us}
    result = timeline(server, [slow, quick], skip=1)
    # Steps 1 and 2: step 0 is skipped, the last only bounds the one before it.
    assert result["steps"] == 2
    expected = {"step_us": 100, "first_worker_starts_us": 3, "last_worker_starts_us": 18,
                "fastest_gradient_us": 57, "slowest_gradient_us": 62, "server_notices_us": 6, "update_us": 20,
                "quick_report_to_next_wait_us": 5, "slow_report_to_next_wait_us": 40}
    assert {key: result[key]["median"] for key in expected} == pytest.approx(expected)
    assert result["step_us"]["p25"] == pytest.approx(100) and result["step_us"]["p75"] == pytest.approx(100)


def test_too_few_steps_to_trace_after_the_skipped_ones():
    from benchmarks.step_trace import timeline

    marks = np.arange(3.0)
    server = {"wakes": marks, "all_reported": marks, "update_starts": marks, "update_ends": marks}
    with pytest.raises(ValueError, match="2 traced steps, none after the 2 skipped"):
        timeline(server, [{"wakes": marks, "reports": marks, "waits": marks}], skip=2)


def test_a_real_two_worker_run_traced_in_every_actor():
    done = run("--samples", "2048", "--epochs", "2")
    assert done.returncode == 0, done.stderr
    text, table = done.stdout.split("\n\n", 1)
    result = json.loads(text)
    assert (result["workload"], result["workers"], result["active_protocol"]) == ("article", 2, "channel")
    assert result["steps"] == 63  # 64 steps an epoch; the first epoch skipped, the last step bounds the one before
    median = {key: value["median"] for key, value in result.items() if isinstance(value, dict)}
    assert all(value > 0 for value in median.values()), median
    # Marks of different processes on one clock: a step holds a gradient, and the last start follows the first.
    assert median["step_us"] > median["slowest_gradient_us"] >= median["fastest_gradient_us"]
    assert median["last_worker_starts_us"] >= median["first_worker_starts_us"]
    assert result["command"] == "python -m benchmarks.step_trace --samples 2048 --epochs 2"
    assert table.startswith("`python -m benchmarks.step_trace --samples 2048 --epochs 2`")
    assert table.count("\n| ") == 1 + 9  # the header and the nine parts


def test_impossible_settings_are_usage_errors():
    for args, message in ((["--epochs", "1"], "--epochs must be at least 2"),
                          (["--workers", "33"], "--workers must be between 1 and the batch size 32"),
                          (["--samples", "63"], "--samples must be at least twice the batch size (64)")):
        done = run(*args)
        assert done.returncode == 2, args
        assert message in done.stderr and "Traceback" not in done.stderr
