"""The benchmark tools' own plumbing: what a process reports as its peak memory, and the command
lines refusing what they cannot do before any case runs."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import report, speed

ROOT = Path(__file__).resolve().parents[1]


def test_a_process_reports_its_own_peak_memory_not_its_parent_s():
    """Linux carries getrusage's ru_maxrss over through fork and exec; VmHWM starts anew."""
    held = np.ones(300_000_000 // 8)  # 300 MB in this parent
    child = subprocess.run([sys.executable, "-c", "from benchmarks.workloads import peak_rss_mb; print(peak_rss_mb())"],
                           cwd=ROOT, capture_output=True, text=True, check=True)
    assert held.sum() > 0 and float(child.stdout) < 150


def test_speed_refuses_a_filter_that_matches_nothing_and_an_output_it_cannot_write(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        speed.main(["--only", "no such case"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--only 'no such case' matches no case; the cases are: gemm, 1 thread(s);" in err
    with pytest.raises(SystemExit) as exited:
        speed.main(["--only", "gemm", "--out", str(tmp_path / "missing" / "results.json")])
    assert exited.value.code == 2
    assert f"cannot write --out {tmp_path / 'missing' / 'results.json'}: No such file" in capsys.readouterr().err


def test_report_says_what_it_needs(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        report.main(["--help"])
    assert exited.value.code == 0 and "a run saved with python -m benchmarks.speed --out" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        report.main([str(tmp_path / "none.json")])
    assert exited.value.code == 2 and "cannot read" in capsys.readouterr().err


def test_more_cores_never_raise_the_hardware_floor():
    """A 2-thread GEMM measured slower than the 1-thread one (a loaded machine) leaves the 2-core
    floor at the 1-core one."""
    results = {"machine": {"cores": 2}, "hardware": {"1": {"best_gflops": 154.0}, "2": {"best_gflops": 148.0}},
               "workloads": {"w": {"flops_per_epoch": 1.54e11, "steps_per_epoch": 1, "batch_size": 1, "runs": {},
                                   "sizes": [1, 1]}}}
    report.add_analysis(results)
    assert results["workloads"]["w"]["hardware_floor_s"] == {"1": pytest.approx(1.0), "2": pytest.approx(1.0)}
    results["hardware"]["2"]["best_gflops"] = 308.0
    report.add_analysis(results)
    assert results["workloads"]["w"]["hardware_floor_s"] == {"1": pytest.approx(1.0), "2": pytest.approx(0.5)}


@pytest.mark.parametrize("tool", ["speed", "report", "worker_memory", "step_anatomy", "accuracy", "stop_window"])
def test_each_tool_runs_as_a_file_from_any_folder_as_well_as_with_dash_m(tool, tmp_path):
    for command, folder in (([f"{ROOT}/benchmarks/{tool}.py"], tmp_path), (["-m", f"benchmarks.{tool}"], ROOT)):
        shown = subprocess.run([sys.executable, *command, "--help"], cwd=folder, capture_output=True, text=True)
        assert shown.returncode == 0 and shown.stdout.startswith("usage:"), shown.stderr


@pytest.mark.parametrize("left_behind", [[], ["config.json", "history.jsonl"], ["config.json", "checkpoint.npz"]])
def test_the_accuracy_benchmark_resumes_a_run_only_once_it_has_a_checkpoint(tmp_path, monkeypatch, left_behind):
    from benchmarks import accuracy

    args = argparse.Namespace(runs_dir=tmp_path, dataset="mnist", workers=0, epochs=None, protocol="validation")
    run_dir = accuracy.run_dir_of("seed", 1, args)
    run_dir.mkdir()
    for name in left_behind:
        (run_dir / name).write_text("")
    commands = []
    summary = {"event": "summary", "test_error": 0.02, "validation_error": 0.03, "epochs": 5, "best_epoch": 5,
               "stop_reason": "max_epochs", "seconds": 1.0}
    monkeypatch.setattr(accuracy, "run_child", lambda command, what: (commands.append(command) or
                                                                       (json.dumps(summary), 1.0)))
    assert accuracy.train("seed", 1, args)["test_error"] == 0.02
    resumed = "checkpoint.npz" in left_behind
    assert ("--resume" in commands[0]) == resumed and ("--preset" in commands[0]) != resumed
