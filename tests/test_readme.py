"""The README's Python API example runs as written, and prints what its comments say."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

# What ``print(result)`` prints of a fit's result (then its evaluations, run folder and time).
FIT_RESULT = re.compile(r"FitResult\(best_error=(\d\.\d+), best_epoch=(\d+), epochs=(\d+), stop_reason='(\w+)'")


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)


def commented(block: str, statement: str) -> str:
    """The comment the README gives after ``statement`` in ``block``."""
    return re.search(rf"^{re.escape(statement)}\s+# (.*)$", block, re.MULTILINE).group(1)


def test_the_readme_has_the_two_python_blocks_this_file_runs():
    first, resume = python_blocks()
    assert "trainer.fit(" in first and "print(result)" in first
    assert resume.strip().startswith("trainer.fit(") and "resume=True" in resume


def test_the_python_api_example_and_its_resume_run_as_the_readme_gives_them(tmp_path):
    first, resume = python_blocks()
    # The resume block is one call: its result is kept and printed, to be compared with the run's.
    script = f"{first}\nresumed = {resume.strip()}\nprint('resumed', resumed)\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout.splitlines()

    claimed = re.fullmatch(r"FitResult\(best_error=(\d\.\d+), best_epoch=(\d+), \.\.\.\)",
                           commented(first, "print(result)"))
    printed = FIT_RESULT.match(out[0])
    assert printed, out[:3]
    # Another processor's products may differ in the last bits, and 30 epochs later the run is
    # another draw: the README's numbers are this host's, so within half a percentage point.
    assert abs(float(printed[1]) - float(claimed[1])) <= 0.005, (out[0], claimed[0])
    assert (printed[3], printed[4]) == ("30", "max_epochs")  # 6 evaluations never fill a window of 40
    test_error = float(out[1])
    assert abs(test_error - float(commented(first, "print(result.best_network.error_rate(mnist.test.images, "
                                                  "mnist.test.labels))"))) <= 0.005

    # print(mnist.train[0]): the digit between borders of 30 dashes, under its label.
    assert re.fullmatch(r"label \d", out[2]) and out[3] == out[-2] == "-" * 30, out[2:5]
    assert len(out[4:-2]) == 28 and all(len(row) == 30 and row[0] == row[-1] == "|" for row in out[4:-2])

    # The resume of the ended run gives back its result, and trains nothing more.
    # (its seconds as the checkpoint recorded them, which may round otherwise than the run's own clock)
    assert out[-1].split(", seconds=")[0] == f"resumed {out[0]}".split(", seconds=")[0]
    assert "epoch  30  train error" in done.stderr  # the progress, on stderr
    assert (tmp_path / "runs" / "api" / "best.npz").is_file()
