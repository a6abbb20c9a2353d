"""The benchmark tools' own plumbing: what a process reports as its peak memory, and the command
lines refusing what they cannot do before any case runs."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import accuracy, report, speed, stop_window

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
    assert (f"cannot write --out {tmp_path / 'missing' / 'results.json'}: give a file in an existing folder this user "
            f"may write to") in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_report_says_what_it_needs(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        report.main(["--help"])
    assert exited.value.code == 0 and "a run saved with python -m benchmarks.speed --out" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        report.main([str(tmp_path / "none.json")])
    assert exited.value.code == 2 and "cannot read" in capsys.readouterr().err
    # {} and a speed run without its date (the table's first line needs it: a KeyError before)
    undated = {"mode": "quick", "data": "random", "machine": {}, "workloads": {}, "hardware": {}}
    for contents in ({}, undated):
        (tmp_path / "other.json").write_text(json.dumps(contents))
        with pytest.raises(SystemExit) as exited:
            report.main([str(tmp_path / "other.json")])
        assert exited.value.code == 2
        assert "other.json is not a run saved by python -m benchmarks.speed --out" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({**undated, "date": "today"}))  # its machine's parts missing
    with pytest.raises(SystemExit) as exited:
        report.main([str(tmp_path / "other.json")])
    assert exited.value.code == 2
    assert "other.json is not a whole run saved by python -m benchmarks.speed --out (KeyError: " in \
        capsys.readouterr().err


@pytest.mark.parametrize("tool, options, message", [
    ("accuracy", ["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    ("accuracy", ["--jobs", "0"], "argument --jobs: must be at least 1, got 0"),
    ("accuracy", ["--presets", "nosuch"], "argument --presets: invalid choice: 'nosuch'"),
    # The article's runs train in the process: --workers was dropped, yet recorded as the run's.
    ("accuracy", ["--protocol", "article", "--workers", "2"],
     "--workers 2: the article protocol trains in the process; leave --workers out"),
    ("stop_window", ["--windows", "0"], "argument --windows: must be at least 1, got 0"),
    ("stop_window", ["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
])
def test_the_accuracy_benchmarks_refuse_bad_options_before_they_train(tool, options, message, capsys, tmp_path):
    main = {"accuracy": accuracy.main, "stop_window": stop_window.main}[tool]
    with pytest.raises(SystemExit) as exited:
        main([*options, *(["--runs-dir", str(tmp_path / "runs")] if tool == "accuracy" else [])])
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


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


def test_a_report_of_part_of_the_cases_says_what_was_not_measured_and_flags_noise():
    machine = {"cpu": "a CPU", "cores": 2, "python": "3.11", "numpy": "2", "numba": None, "ray": "2.60",
               "torch": None, "load_average_at_start": [0.1], "load_average_at_end": [0.1]}
    article = {"sizes": [784, 36, 14, 10], "batch_size": 32, "steps_per_epoch": 100, "flops_per_epoch": 1e9,
               "compute": {"backprop_us": {"1": 100.0, "2": 60.0}, "server_update_us": {"1": 10.0, "2": 12.0}},
               "runs": {"distnet channel/2": {"epoch_s": 0.01, "step_us": 50.0}}}  # quicker than its math: noise
    wide = {"sizes": [784, 1024, 1024, 10], "batch_size": 512, "steps_per_epoch": 97, "flops_per_epoch": 2e11,
            "runs": {}}
    results = {"date": "today", "mode": "quick", "data": "random", "machine": machine, "threads": "1",
               "hardware": {}, "workloads": {"article": article, "wide": wide}}  # as from --only article
    report.add_analysis(results)
    text = report.markdown(results)
    assert "PyTorch not installed;" in text and "### wide" not in text
    assert "(hardware floor not measured: no gemm case ran)" in text
    assert "| distnet channel/2 | 0.010 | 320,000 | 50 | 72 | -22 * |" in text
    assert "\\* The step took less than its math timed alone" in text
    assert "| wide, 2 workers: throughput / PyTorch DDP 2 processes | – | 1.2 | – | not measured |" in text
    assert "Other work used up to" not in text  # nothing measured it
    article["compute"]["other_work_cores"] = 0.4
    assert ("**Other work used up to 0.4 cores during some cases (see other_work_cores in the JSON): those numbers "
            "are not reliable; run again on a quiet machine.**") in report.markdown(results)


def test_a_step_s_math_counts_the_gathering_of_rows_only_where_it_is_within_the_step():
    """A channel worker gathers the next step's rows while the server updates; under plain and
    compiled calls a worker gathers within the step."""
    compute = {"backprop_us": {"2": 60.0}, "gather_us": {"2": 7.0}, "server_update_us": {"2": 12.0}}
    runs = {f"distnet {protocol}/2": {"epoch_s": 1.0, "step_us": 100.0} for protocol in ("channel", "plain", "compiled")}
    results = {"machine": {"cores": 2}, "hardware": {}, "workloads": {"w": {
        "sizes": [784, 10], "batch_size": 32, "steps_per_epoch": 100, "flops_per_epoch": 1e9, "compute": compute,
        "runs": runs}}}
    report.add_analysis(results)
    assert {key: (run["step_math_us"], run["coordination_us"]) for key, run in runs.items()} == {
        "distnet channel/2": (72.0, 28.0), "distnet plain/2": (79.0, 21.0), "distnet compiled/2": (79.0, 21.0)}


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


@pytest.mark.parametrize("folder", ["benchmarks", "examples", "cluster"])
def test_every_script_compiles(folder):
    """The peers and scripts the suite does not import (a syntax error in one showed as an "exit 1"
    row of the speed table)."""
    for path in sorted((ROOT / folder).glob("*.py")):
        compile(path.read_text(), str(path), "exec")


def test_the_accuracy_benchmark_says_how_many_reused_runs_another_distnet_trained(tmp_path, capsys):
    """Reuse is keyed on the preset and the settings: a run of code changed since (its arithmetic,
    say) would pass for one of this code without a word."""
    from benchmarks import accuracy

    args = argparse.Namespace(dataset="mnist", workers=0, epochs=None, protocol="validation")
    summary = {"test_error": 0.025, "validation_error": 0.03, "epochs": 10, "best_epoch": 8,
               "stop_reason": "early_stop", "seconds": 1.0}
    runs = [accuracy.result_record("seed", seed, args, summary, 2.0, None) for seed in (1, 2)]
    assert runs[0]["distnet_code"] == accuracy.code_digest()
    runs[1]["distnet_code"] = "0" * 64
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    assert accuracy.main(["--presets", "seed", "--seeds", "1", "2", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.splitlines()[0])["runs_of_other_code"] == 1
    assert "2 run(s) reused from earlier invocations, 1 of them by another distnet" in out
    assert accuracy.main(["--presets", "seed", "seed", "--seeds", "1", "2", "1", "--runs-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["presets"]["seed"]["runs"] == 2  # not 6, seed 1 twice


def test_a_run_faster_than_the_hardware_floor_is_flagged_as_a_floor_measured_low():
    machine = {"cpu": "a CPU", "cores": 2, "python": "3.11", "numpy": "2", "numba": None, "ray": "2.60",
               "torch": None, "load_average_at_start": [0.1], "load_average_at_end": [0.1]}
    runs = {"distnet single/1": {"epoch_s": 0.5, "step_us": 5000.0, "threads": 1},
            "distnet channel/1": {"epoch_s": 2.0, "step_us": 20000.0}}
    results = {"date": "today", "mode": "quick", "data": "random", "machine": machine, "threads": "1",
               "hardware": {"1": {"best_gflops": 1.0, "numpy_gflops": 1.0, "torch_gflops": None,
                                  "article_shape_gflops": 1.0}},
               "workloads": {"w": {"sizes": [784, 10], "batch_size": 1, "steps_per_epoch": 100,
                                   "flops_per_epoch": 1e9, "runs": runs}}}
    report.add_analysis(results)  # floor: 1 s on 1 core
    text = report.markdown(results)
    assert "| distnet single/1 | 0.500 | 200 | 5,000 | – | – | – | 0.50 † |" in text
    assert "| distnet channel/1 | 2.000 | 50 | 20,000 | – | – | – | 2.00 |" in text
    assert "† Faster than the hardware floor" in text


def test_the_accuracy_table_shows_a_median_between_two_errors_as_it_is():
    """A median of 20 runs of 2.505 % read "2.50 %" against a target of at most 2.5 %."""
    run = {"preset": "seed", "seed": 1, "test_error": 0.0257, "validation_error": 0.027, "epochs": 230,
           "best_epoch": 205, "stop_reason": "early_stop", "wall_seconds": 60.0}
    summary = {"runs": 20, "median_test_error": 0.02505, "min_test_error": 0.0234, "max_test_error": 0.025,
               "median_validation_error": 0.02705, "median_epochs": 252.5, "median_wall_seconds": 60.0}
    text = accuracy.markdown({"date": "2026-12-02", "command": "accuracy.py", "machine": {"cpus": 2, "load_average":
                              [1.0]}, "reused": 0, "protocol": "validation", "presets": {"seed": summary},
                              "runs": [run]})
    assert "| seed | 20 | 2.505 % | 2.34 % | 2.50 % | 2.705 % | 252.5 |" in text
    assert "| seed | 1 | 2.57 % | 2.70 % | 230 (205) |" in text
