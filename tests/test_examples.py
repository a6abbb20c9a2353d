"""The examples run as a user runs them, on real MNIST, and say what they promise. One epoch keeps
them quick: it already takes the test error from 90% (guessing) to under 10%."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distnet import Network, load_fashion_mnist, load_mnist

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def reported_test_error(out: str) -> float:
    return float(re.search(r"^test error (\d+\.\d+)% with the best network \(epoch \d+\)$", out,
                           re.MULTILINE).group(1))


def check_run_dir(run_dir: Path, out: str, workers: int) -> None:
    """The run directory holds the one-epoch run, and its best network is the one whose test
    error the example printed."""
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["epochs"], config["workers"]) == (1, workers)
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in history] == [1]
    assert f"best network: {run_dir / 'best.npz'}" in out
    test = load_mnist().test
    best = Network.load(run_dir / "best.npz")
    assert round(100 * best.error_rate(test.images, test.labels), 2) == reported_test_error(out)


@pytest.mark.parametrize("name, options", [("train_single_process.py", ["--epochs", "--data-dir", "--run-dir"]),
                                           ("train_distributed.py", ["--epochs", "--workers", "--data-dir",
                                                                     "--run-dir"]),
                                           ("train_your_own_network.py", ["--epochs", "--run-dir", "--data-dir",
                                                                          "--show"])])
def test_an_example_asked_for_help_describes_its_options_and_trains_nothing(name, options):
    done = run_example(name, "--help")
    assert done.stdout.startswith(f"usage: {name}")
    assert all(option in done.stdout for option in options)
    assert "test error" not in done.stdout and "training" not in done.stderr


def test_the_single_process_example_trains_and_shows_a_digit_it_gets_wrong(tmp_path):
    # The data from --data-dir alone: no DISTNET_DATA_DIR, an empty cache, a mirror that refuses.
    env = {k: v for k, v in os.environ.items() if k != "DISTNET_DATA_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), DISTNET_MIRRORS="http://127.0.0.1:9/")
    done = run_example("train_single_process.py", "--epochs", "1", "--run-dir", str(tmp_path / "run"),
                       "--data-dir", os.environ["DISTNET_DATA_DIR"], env=env)
    assert reported_test_error(done.stdout) < 10
    digit = re.search(r"^label (\d), predicted (\d)\n-{30}\n(\|.{28}\|\n){28}-{30}$", done.stdout, re.MULTILINE)
    assert digit and digit.group(1) != digit.group(2)
    assert "@" in digit.group(0)  # the digit's darkest pixels
    assert "epoch   1  train error" in done.stderr  # the progress, one line per evaluation
    check_run_dir(tmp_path / "run", done.stdout, workers=1)


@pytest.mark.slow
def test_the_distributed_example_trains_with_ray_workers(tmp_path):
    done = run_example("train_distributed.py", "--epochs", "1", "--workers", "2", "--run-dir", str(tmp_path / "run"))
    assert reported_test_error(done.stdout) < 10
    assert "2 workers" in done.stderr
    assert done.stderr.startswith("starting the Ray actors (and Ray itself, unless a cluster is joined)")
    check_run_dir(tmp_path / "run", done.stdout, workers=2)


def test_the_own_network_example_trains_on_fashion_mnist_and_uses_the_network_it_saved(tmp_path):
    run_dir = tmp_path / "run"
    done = run_example("train_your_own_network.py", "--epochs", "1", "--run-dir", str(run_dir), "--show", "4")
    best = Network.load(run_dir / "best.npz")
    assert [layer.size for layer in best.layers] == [128, 10] and best.cost_function.name == "cross_entropy"
    test = load_fashion_mnist().test
    wrong = int(np.count_nonzero(best.predict(test.images).argmax(axis=1) != test.labels))
    assert wrong < 2_500  # one epoch: about 15% wrong; guessing, 90%
    assert f"error rate {wrong / 100:.2f}% ({wrong} of 10000 wrong)" in done.stdout
    assert "  6 Shirt " in done.stdout and "  9 Ankle boot " in done.stdout  # per class, by name
    # Each image's line is the saved network's answer about it.
    probabilities = best.predict(test.images[:4])
    lines = re.findall(r"^  test image (\d): (.+) \((\d+)% sure\), (right|wrong, it is a .+)$", done.stdout,
                       re.MULTILINE)
    assert [int(i) for i, *_ in lines] == [0, 1, 2, 3]
    for (i, name, sure, verdict), row in zip(lines, probabilities):
        guess = int(row.argmax())
        assert (name, f"{sure}%") == (test.classes[guess], f"{row[guess]:.0%}")
        assert verdict == ("right" if guess == test.labels[int(i)] else f"wrong, it is a {test.classes[test.labels[int(i)]]}")
    assert f"distnet predict {run_dir / 'best.npz'} picture.png" in done.stdout
    # A second run into the same folder is refused, saying what to do, and leaves the first's files.
    again = subprocess.run([sys.executable, str(EXAMPLES / "train_your_own_network.py"), "--epochs", "1",
                            "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.startswith(f"error: {run_dir} already holds a run; continue it")
    assert np.array_equal(Network.load(run_dir / "best.npz").params, best.params)


def test_an_example_given_a_wrong_value_says_what_is_wrong_without_a_traceback():
    done = subprocess.run([sys.executable, str(EXAMPLES / "train_single_process.py"), "--epochs", "0"],
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "error: epochs must be a whole number of at least 1, got 0\n"
