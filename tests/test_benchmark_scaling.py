"""The scaling model of benchmarks/: its fit reproduces what it can and keeps its physical bounds."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.scaling import _line, markdown, model  # noqa: E402


def test_a_line_through_points_that_keep_the_bounds_is_the_exact_fit():
    assert _line({1: 30.0, 2: 50.0}) == pytest.approx((10.0, 20.0))


def test_a_falling_slope_is_held_at_its_least_value():
    # Noise made the second point cheaper; the least slope (the update's share) stays.
    intercept, slope = _line({1: 100.0, 2: 90.0}, min_slope=4.0)
    assert slope == 4.0 and intercept == pytest.approx(89.0)


def test_a_negative_fixed_cost_is_held_at_zero():
    # Steep points whose free fit crosses zero below x = 1: the fitted line starts at 0 instead.
    intercept, slope = _line({1: 10.0, 2: 40.0}, min_slope=1.0)
    assert intercept == 0.0
    assert slope == pytest.approx((1 * 10 + 2 * 40) / (1 + 4))


def test_model_predicts_from_the_fitted_constants():
    workload = {"batch_size": 32,
                "compute": {"backprop_us": {"1": 64.0, "2": 32.0}, "server_update_us": {"1": 10.0, "2": 12.0}},
                "runs": {"distnet channel/1": {"step_us": 100.0}, "distnet channel/2": {"step_us": 80.0},
                         "distnet single/1": {"step_us": 70.0}}}
    scaling = model(workload, cores=2)
    assert scaling["gradient_us_per_sample"] == pytest.approx(2.0)
    channel = scaling["protocols"]["channel"]
    # step - g·B/N: 36 at N = 1, 48 at N = 2, so fixed 24 and per_worker 12.
    assert channel["fixed_us"] == pytest.approx(24.0) and channel["per_worker_us"] == pytest.approx(12.0)
    assert channel["predicted"]["4"]["step_us"] == pytest.approx(2.0 * 8 + 24 + 12 * 4)
    assert channel["predicted"]["64"] is None  # a batch of 32 cannot feed 64 workers


def test_the_table_says_which_worker_counts_each_protocol_was_fitted_to():
    workload = {"batch_size": 32,
                "compute": {"backprop_us": {"1": 64.0, "2": 32.0}, "server_update_us": {"1": 10.0, "2": 12.0}},
                "runs": {"distnet channel/1": {"step_us": 100.0}, "distnet channel/2": {"step_us": 80.0},
                         "distnet compiled/2": {"step_us": 90.0}}}  # --quick measures compiled at N = 2 alone
    rows = markdown(model(workload, cores=2)).splitlines()
    assert rows[2].startswith("| protocol | fitted to N | fixed µs | per_worker µs |")
    assert rows[4].startswith("| channel | 1, 2 | 24 | 12 |")
    assert rows[5].startswith("| compiled | 2 | ")  # one point: per_worker is the update's share (2 µs)
    assert "| 2 | " in rows[5].split("| compiled | 2 | ")[1]


def test_protocols_that_gather_within_the_step_count_the_gathering_with_the_gradient():
    workload = {"batch_size": 32,
                "compute": {"backprop_us": {"1": 64.0, "2": 32.0}, "gather_us": {"1": 16.0, "2": 8.0},
                            "server_update_us": {"1": 10.0, "2": 12.0}},
                "runs": {f"distnet {p}/{n}": {"step_us": t} for p in ("channel", "plain")
                         for n, t in ((1, 100.0), (2, 80.0))}}
    scaling = model(workload, cores=2)
    assert scaling["gather_us_per_sample"] == pytest.approx(0.5)
    channel, plain = scaling["protocols"]["channel"], scaling["protocols"]["plain"]
    assert (channel["fixed_us"], channel["per_worker_us"]) == (pytest.approx(24.0), pytest.approx(12.0))
    # step - (g + gather)·B/N: 20 at N = 1, 40 at N = 2, so fixed 0 and per_worker 20.
    assert (plain["fixed_us"], plain["per_worker_us"]) == (pytest.approx(0.0), pytest.approx(20.0))
    assert plain["predicted"]["4"]["step_us"] == pytest.approx(2.5 * 8 + 0 + 20 * 4)
