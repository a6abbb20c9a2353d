"""benchmarks/step_anatomy.py: it times the parts of a real distributed step (forked workers writing
their gradients into shared memory, the server's update on them) and the parts add up as they must."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    # A child process: the tool pins BLAS to one thread before NumPy loads, which must not leak here.
    return subprocess.run([sys.executable, "-m", "benchmarks.step_anatomy", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_the_parts_of_a_two_worker_step_and_their_table():
    done = run("--workload", "article", "--workers", "2", "--repeats", "8")
    assert done.returncode == 0, done.stderr
    text, table = done.stdout.split("\n\n", 1)
    result = json.loads(text)
    assert (result["workload"], result["workers"], result["rows_per_worker"]) == ("article", 2, 16)
    assert result["update_threads"] == 1  # the article's 28,928 parameters are one part
    assert result["threads"] == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    timed = ["gradient_alone_ms", "gradient_at_once_ms", "update_warm_ms", "update_after_gradients_ms",
             "channel_step_ms"]
    assert all(result[key] > 0 for key in timed)
    # Each channel step spans both workers' gradients and then the update, step by step, so its
    # median is at least the median of either.
    assert result["channel_step_ms"] >= result["gradient_at_once_ms"]
    assert result["channel_step_ms"] > result["update_after_gradients_ms"]
    assert set(result["torch"]) == {"1", "2"}
    torch_rows = 0
    for torch in result["torch"].values():  # None where PyTorch is not installed (CI has only [dev])
        if torch is not None:
            assert torch["update_ms"] > 0 and torch["step_ms"] > torch["update_ms"]
        torch_rows += 1 if torch is None else 2
    assert result["command"] == "python -m benchmarks.step_anatomy --workload article --workers 2 --repeats 8"
    assert table.startswith("`python -m benchmarks.step_anatomy --workload article --workers 2 --repeats 8`")
    assert "| gradient on 16 rows, 2 processes at once (the slowest per step) |" in table
    assert table.count("\n| ") == 1 + 5 + torch_rows  # the header, distnet's five parts, PyTorch's


def test_impossible_worker_counts_are_usage_errors():
    done = run("--workload", "article", "--workers", "33")
    assert done.returncode == 2
    assert "--workers must be between 1 and the batch size 32" in done.stderr
    assert "Traceback" not in done.stderr
