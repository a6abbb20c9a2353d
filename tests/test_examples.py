"""The examples run as a user runs them, on real MNIST, and say what they promise."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def reported_test_error(out: str) -> float:
    return float(re.search(r"^test error (\d+\.\d+)%$", out, re.MULTILINE).group(1))


def test_the_single_process_example_trains_and_shows_a_digit_it_gets_wrong():
    out = run_example("train_single_process.py")
    assert reported_test_error(out) < 6
    digit = re.search(r"label (\d).*predicted: (\d)", out, re.DOTALL)
    assert digit and digit.group(1) != digit.group(2)
    assert "@" in out  # the digit's darkest pixels


@pytest.mark.slow
def test_the_distributed_example_trains_with_two_ray_workers():
    out = run_example("train_distributed.py")
    assert re.search(r"^best validation error \d+\.\d+% at epoch (5|10)$", out, re.MULTILINE)
    assert reported_test_error(out) < 6
