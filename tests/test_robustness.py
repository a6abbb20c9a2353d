"""Every way a user can get it wrong ends in one clear line on stderr and exit status 2, and no
failure changes a file that was already written (data, models, checkpoints, run folders).

Most cases call :func:`distnet.cli.main` in this process (fast); a representative few run
``python -m distnet`` in a subprocess, to show the real command's output and exit status.
"""
from __future__ import annotations

import ast
import errno
import io
import gzip
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from distnet import ConfigError, Dataset, Dense, ModelFormatError, Nesterov, Network, Trainer
from distnet.checkpoint import Checkpoint
from distnet.cli import main
from distnet.data import read_idx, write_idx
from distnet.progress import Reporter
from distnet.rundir import RunDir
from hostile import PicklePayload

REPO = Path(__file__).resolve().parents[1]
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
# `distnet train` holds 10,000 training samples out for validation; 400 are left to train on.
TRAIN_SAMPLES, TEST_SAMPLES = 10_400, 300


# -- fixtures and helpers -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_data(tmp_path_factory) -> Path:
    """A small, valid MNIST-shaped data set (uncompressed, so no published checksum applies)."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for images, labels, n in ((TRAIN_IMAGES, TRAIN_LABELS, TRAIN_SAMPLES), (TEST_IMAGES, TEST_LABELS, TEST_SAMPLES)):
        write_idx(folder / images, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / labels, rng.integers(0, 10, n, dtype=np.uint8))
    return folder


@pytest.fixture
def data(good_data: Path, tmp_path: Path) -> Path:
    """A copy of the good data set that a test may damage."""
    return Path(shutil.copytree(good_data, tmp_path / "data"))


def closed_port() -> int:
    """A local TCP port that nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """No shared data folder, an empty user cache and a mirror that refuses connections: a data
    file distnet cannot find in --data-dir is missing for good."""
    monkeypatch.delenv("DISTNET_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DISTNET_MIRRORS", f"http://127.0.0.1:{closed_port()}/")
    monkeypatch.chdir(tmp_path)
    return {key: os.environ[key] for key in ("XDG_CACHE_HOME", "DISTNET_MIRRORS")}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A valid model for MNIST-shaped data (which records no data set: the commands given it name
    theirs, --dataset mnist, or would first warn that MNIST is assumed)."""
    return Network([Dense(10, "softmax")], input_size=784, seed=1).save(tmp_path / "model.npz")


def cli(capsys, *args) -> tuple[int, str, str]:
    """``distnet ARGS`` in this process: (exit status, stdout, stderr)."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as e:  # argparse's usage errors
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def run_distnet(offline: dict, *args, timeout: float = 120) -> tuple[int, str, str, float]:
    """``python -m distnet ARGS`` in a subprocess: (exit status, stdout, stderr, seconds)."""
    env = {k: v for k, v in os.environ.items() if k != "DISTNET_DATA_DIR"}
    env.update(offline, PYTHONPATH=str(REPO))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "distnet", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - started


def assert_clean_error(status: int, err: str, *fragments: str) -> None:
    """Exit status 2, one "distnet: error:" message, no traceback, and every fragment in it. Only
    notes of what was under way come first: download attempts (a missing data file is looked for on
    the mirrors, each failure said as the next is tried), Ray starting or being joined."""
    assert status == 2, err
    notes = re.match(r"(distnet: (downloading \S+|\S+://\S+: .+|warning: .+; downloading them into \S+|"
                     r"starting Ray on this machine|joining the Ray cluster at \S+)\n)*", err).group()
    error = err.removeprefix(notes)
    assert error.count("distnet: error: ") == 1 and error.startswith("distnet: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


@pytest.mark.parametrize("args", [["evaluate", "MODEL", "--data-dir", "~no-such-user-here/data"],
                                  ["train", "--run-dir", "~no-such-user-here/run", "--epochs", "1"],
                                  ["evaluate", "~no-such-user-here/model.npz"]], ids=["data", "run", "model"])
def test_a_home_of_a_user_this_machine_lacks_is_said_not_a_traceback(args, model, capsys):
    status, _, err = cli(capsys, *[model if a == "MODEL" else a for a in args])
    assert_clean_error(status, err.split("\n", 1)[1] if err.startswith("distnet: warning") else err,
                       "this machine has no user 'no-such-user-here' whose home ~no-such-user-here could mean; "
                       "give the path in full")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def idx_header(shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 8, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)


# -- data files ------------------------------------------------------------------------------------

def _missing(d):
    (d / TEST_LABELS).unlink()


def _empty(d):
    (d / TEST_LABELS).write_bytes(b"")


def _truncated(d):
    (d / TEST_IMAGES).write_bytes((d / TEST_IMAGES).read_bytes()[:5000])


def _wrong_magic(d):
    (d / TEST_IMAGES).write_bytes(b"\x89PNG" + (d / TEST_IMAGES).read_bytes()[4:])


def _wrong_dimensions(d):
    (d / TEST_IMAGES).write_bytes(idx_header((TEST_SAMPLES, 28, 27)) + bytes(TEST_SAMPLES * 28 * 27))


def _labels_for_images(d):
    (d / TEST_IMAGES).write_bytes((d / TEST_LABELS).read_bytes())


def _label_out_of_range(d):
    labels = bytearray((d / TEST_LABELS).read_bytes())
    labels[-1] = 12
    (d / TEST_LABELS).write_bytes(bytes(labels))


def _counts_disagree(d):
    (d / TEST_LABELS).write_bytes(idx_header((TEST_SAMPLES - 1,)) + bytes(TEST_SAMPLES - 1))


def _corrupt_gzip(d):
    # Compression is recognised by content: this file is gzip cut short, under the plain name
    # (a .gz name would first be checked against the published SHA-256).
    (d / TEST_LABELS).write_bytes(gzip.compress((d / TEST_LABELS).read_bytes())[:40])


def _checksum_mismatch(d):
    # A .gz under the published name whose bytes are not the published ones.
    (d / f"{TEST_LABELS}.gz").write_bytes(gzip.compress((d / TEST_LABELS).read_bytes()))
    (d / TEST_LABELS).unlink()


# A plain file is not checked against a checksum (a .gz is): its format error says the fix too.
NOT_THE_ORIGINAL = ("; the file is damaged or not the original: replace it with the original (its .gz is checked "
                    "against the published checksum)")
DATA_DEFECTS = {
    "missing": (_missing, ["MNIST not found", f"data lacks {TEST_LABELS}[.gz]\n", "Connection refused",
                           "--data-dir"]),
    "empty": (_empty, [f"{TEST_LABELS}: empty file{NOT_THE_ORIGINAL}"]),
    "truncated": (_truncated, [f"{TEST_IMAGES}: truncated: header says {TEST_SAMPLES}x28x28", NOT_THE_ORIGINAL]),
    "wrong magic": (_wrong_magic, [f"{TEST_IMAGES}: not an IDX file: magic number 0x89504e47", NOT_THE_ORIGINAL]),
    "wrong dimensions": (_wrong_dimensions, [f"{TEST_IMAGES}: expected 28x28 images, the header (magic number "
                                             f"0x00000803: 3 dimensions, such as images) says {TEST_SAMPLES}x28x27"
                                             f"{NOT_THE_ORIGINAL}"]),
    "labels for images": (_labels_for_images, [f"{TEST_IMAGES}: expected 28x28 images, the header (magic number "
                                               f"0x00000801: 1 dimension, such as labels) says {TEST_SAMPLES}"]),
    "label out of range": (_label_out_of_range, [f"{TEST_LABELS}: label 12 is outside 0..9{NOT_THE_ORIGINAL}"]),
    "counts disagree": (_counts_disagree, [f"holds {TEST_SAMPLES} images but", f"holds {TEST_SAMPLES - 1} labels; "
                                           f"one of them is damaged or not the original: replace them with the "
                                           f"originals"]),
    "corrupt gzip": (_corrupt_gzip, [f"{TEST_LABELS}: corrupt gzip data", NOT_THE_ORIGINAL]),
    "checksum mismatch": (_checksum_mismatch, [f"{TEST_LABELS}.gz: SHA-256 is ", "the published value is f7ae60f9",
                                               "Delete it to have it downloaded again"]),
}


@pytest.mark.parametrize("defect", DATA_DEFECTS)
def test_bad_data_files_give_a_clear_error_and_stay_as_they_are(capsys, data, model, defect):
    damage, fragments = DATA_DEFECTS[defect]
    damage(data)
    before = snapshot(data.parent)
    status, out, err = cli(capsys, "evaluate", model, "--data-dir", data, "--dataset", "mnist")
    assert_clean_error(status, err, *fragments)
    assert out == ""
    assert snapshot(data.parent) == before  # the data, the model, and no download left behind


def test_no_network_and_no_local_copy(capsys, tmp_path, offline):
    empty = tmp_path / "nothing"
    empty.mkdir()
    status, _, err = cli(capsys, "train", "--workers", "0", "--data-dir", empty, "--run-dir", tmp_path / "run")
    assert_clean_error(status, err, "MNIST not found", f"{offline['DISTNET_MIRRORS']}{TRAIN_IMAGES}.gz",
                       "Connection refused", f"To fix: put the four files in {empty}, or ")  # the folder given
    assert not (tmp_path / "run").exists() and not any((tmp_path / "cache").rglob("*.gz"))


@pytest.mark.slow
def test_data_errors_from_the_real_command(data, model, offline):
    """The installed command, not just main(): one line on stderr, status 2, no traceback."""
    _checksum_mismatch(data)
    before = snapshot(data.parent)
    status, out, err, _ = run_distnet(offline, "evaluate", model, "--data-dir", data, "--dataset", "mnist")
    assert_clean_error(status, err, f"{TEST_LABELS}.gz: SHA-256 is ")
    assert out == "" and snapshot(data.parent) == before


# -- model and checkpoint files ----------------------------------------------------------------------

def _bad_models(tmp_path: Path, model: Path) -> dict[str, tuple[Path, list[str]]]:
    good = model.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good[: len(good) // 2])
    not_npz = tmp_path / "config.json"
    not_npz.write_text('{"format": "distnet.network"}')
    checkpoint = tmp_path / "checkpoint.npz"
    Checkpoint(epoch=1, step=0, params=np.zeros(7850, np.float32), optimizer_state={}, stopping_state=None,
               history=[], config={}).save(checkpoint)
    pickled = tmp_path / "pickled.npz"
    with np.load(model) as npz:
        arrays = dict(npz)
    np.savez(pickled, **arrays, extra=np.array([PicklePayload(tmp_path / "pwned")], dtype=object))
    narrow = Network([Dense(10, "softmax")], input_size=100, seed=1).save(tmp_path / "in100.npz")
    few_classes = Network([Dense(5, "softmax")], input_size=784, seed=1).save(tmp_path / "out5.npz")
    return {
        "truncated": (truncated, ["truncated.npz: not a readable .npz file; truncated or corrupt?"]),
        "not an npz": (not_npz, ["config.json: not an .npz file"]),
        "a checkpoint, not a model": (checkpoint, ["expected a distnet.network file, found 'distnet.checkpoint'; a "
                                                   "run's network is its best.npz (or give the run directory)"]),
        "needs pickle": (pickled, ["pickled.npz: holds pickled objects, which distnet never loads"]),
        "missing": (tmp_path / "nope.npz", ["nope.npz: no such model file; give a file a network was saved in (a "
                                            "run directory's best.npz, or the run directory)"]),
        "wrong input size": (narrow, ["in100.npz takes 100 inputs per sample, not the 784 pixels of an image here: "
                                      "distnet's commands classify images; for a network trained on data of your "
                                      "own, use it from Python: Network.load(path).predict(rows)"]),
        # (not "use it on the data it was trained on", which no command could)
        "wrong output size": (few_classes, ["out5.npz does not fit mnist/test", "gives 5 outputs", "10 classes",
                                            "for a network trained on data of your own, use it from Python: "
                                            "Network.load(path).predict(rows)"]),
    }


MODEL_DEFECTS = ["truncated", "not an npz", "a checkpoint, not a model", "needs pickle", "missing",
                 "wrong input size", "wrong output size"]


@pytest.mark.parametrize("defect", MODEL_DEFECTS)
def test_bad_model_files_give_a_clear_error_and_stay_as_they_are(capsys, tmp_path, data, model, defect):
    models = tmp_path / "models"
    models.mkdir()
    path, fragments = _bad_models(models, model)[defect]
    before = snapshot(tmp_path)
    status, out, err = cli(capsys, "evaluate", path, "--data-dir", data, "--dataset", "mnist")
    assert_clean_error(status, err, *fragments)
    assert out == "" and snapshot(tmp_path) == before
    assert not (tmp_path / "models" / "pwned").exists()


def test_the_good_model_evaluates(capsys, data, model):
    """The control for the cases above: the same data and model, undamaged, work."""
    status, out, err = cli(capsys, "evaluate", model, "--data-dir", data, "--dataset", "mnist", "--json")
    assert status == 0, err
    assert json.loads(out)["confusion"] and err == ""


# -- configuration ----------------------------------------------------------------------------------

BAD_OPTIONS = {
    "--epochs 0": (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    "--epochs abc": (["--epochs", "abc"], "argument --epochs: expected a whole number, got 'abc'"),
    "--batch-size -1": (["--batch-size", "-1"], "argument --batch-size: must be at least 1, got -1"),
    "--learning-rate 0": (["--learning-rate", "0"], "argument --learning-rate: must be a finite number above 0, got 0"),
    "--learning-rate nan": (["--learning-rate", "nan"], "argument --learning-rate: must be a finite number above 0"),
    "--learning-rate inf": (["--learning-rate", "inf"], "argument --learning-rate: must be a finite number above 0"),
    "--workers -2": (["--workers", "-2"], "argument --workers: must be at least 0, got -2"),
    "--window 0": (["--window", "0"], "argument --window: must be at least 1, got 0"),
    "--eval-every 0": (["--eval-every", "0"], "argument --eval-every: must be at least 1, got 0"),
    "--checkpoint-every -1": (["--checkpoint-every", "-1"], "argument --checkpoint-every: must be at least 0"),
    "--seed -1": (["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    "batch < workers": (["--batch-size", "2", "--workers", "3"],
                        "batch size 2 is smaller than the number of workers 3"),
    "unknown preset": (["--preset", "nope"], "argument --preset: invalid choice: 'nope'"),
    "unknown dataset": (["--dataset", "nope"], "argument --dataset: invalid choice: 'nope'"),
    "unknown protocol": (["--protocol", "carrier-pigeon"], "argument --protocol: invalid choice"),
    "--activation without hidden layers": (["--hidden", "none", "--activation", "tanh"],
                                           "--activation tanh is the hidden layers' activation, and this network "
                                           "has none (--hidden none): give hidden layers, or leave --activation out"),
}


@pytest.mark.parametrize("case", BAD_OPTIONS)
def test_bad_options_are_refused_before_data_loads_or_ray_starts(capsys, tmp_path, case):
    options, message = BAD_OPTIONS[case]
    # The data folder does not exist: had the data been loaded, the error would say so instead.
    status, out, err = cli(capsys, "train", *options, "--data-dir", tmp_path / "absent",
                           "--run-dir", tmp_path / "run")
    assert_clean_error(status, err, message)
    assert err.count("\n") == 1 and out == ""
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["show"], ["predict"], ["plot"], ["submit"]])
def test_every_command_explains_itself(capsys, command):
    status, out, err = cli(capsys, *command, "--help")
    assert status == 0 and out.startswith(f"usage: distnet {' '.join(command)}".rstrip()) and err == ""


def test_the_command_line_offers_the_library_s_protocols_and_failure_limit_without_importing_ray():
    """From distnet.distributed.settings, which the trainer takes them from too (the CLI spelt
    them out before, so as not to import Ray to be told)."""
    import inspect

    done = subprocess.run([sys.executable, "-c", "import sys; from distnet.cli import build_parser; build_parser(); "
                           "import distnet.distributed; print('ray' in sys.modules)"], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
    from distnet.cli import build_parser
    from distnet.distributed import DEFAULT_MAX_FAILURES, PROTOCOLS, DistributedTrainer

    options = {action.dest: action for action in build_parser().commands["train"]._actions}
    assert tuple(options["protocol"].choices) == PROTOCOLS and options["protocol"].default == "auto"
    assert options["max_failures"].default is None  # the run's own on a resume (see test_fault_tolerance.py)
    assert f"(default: {DEFAULT_MAX_FAILURES};" in options["max_failures"].help
    assert inspect.signature(DistributedTrainer).parameters["max_failures"].default == DEFAULT_MAX_FAILURES


def test_running_out_of_memory_is_one_line_too(capsys, data, tmp_path, monkeypatch):
    """Wherever it happens (here: the training's second epoch), with what is kept and how to go on."""
    from distnet.trainer import Trainer

    run_steps = Trainer._run_steps

    def out_of_memory_in_epoch_2(self, epoch, start, stop):
        if epoch == 1:
            raise MemoryError
        return run_steps(self, epoch, start, stop)

    monkeypatch.setattr(Trainer, "_run_steps", out_of_memory_in_epoch_2)
    run = tmp_path / "run"
    status, _, err = cli(capsys, "train", "--workers", "0", "--epochs", "2", "--quiet", "--run-dir", run,
                         "--data-dir", data)
    assert_clean_error(status, err, "out of memory: this needs more than the machine has free (a network, batch or "
                                    "data set too large for it?); the run's files are as its last checkpoint left "
                                    f"them: with more memory free, resume with: distnet train --resume {run}")


def test_usage_errors_are_one_line_too(capsys):
    status, _, err = cli(capsys, "frobnicate")
    assert_clean_error(status, err, "'frobnicate' is not a command; the commands: train, submit, evaluate, show, "
                                    "predict, plot", "(see: distnet --help)")
    assert err.count("\n") == 1
    # argparse listed the commands, or said only that one is required, never naming the word at fault
    for words, said in ((["trian"], "'trian' is not a command (did you mean: distnet train?)"),
                        (["resume", "runs/a"], "'resume' is not a command (did you mean: distnet train --resume "
                                               "RUN_DIR?)"),
                        (["--verison"], "no command given, and --verison is not an option of distnet's own (did you "
                                        "mean --version?)"),
                        (["--epochs", "3"], "no command given, and --epochs is not an option of distnet's own; the "
                                            "commands: train, submit")):
        status, _, err = cli(capsys, *words)
        assert status == 2 and err.startswith(f"distnet: error: {said}"), err
    for words in (["--help", "trian"], ["--version", "trian"]):  # --help and --version still come first
        status, out, _ = cli(capsys, *words)
        assert status == 0 and out.startswith(("usage: distnet", "distnet "))
    status, _, err = cli(capsys, "train", "--bogus", "1")  # the command's help, not the top level's
    assert err == "distnet: error: unrecognized arguments: --bogus 1 (see: distnet train --help)\n" and status == 2
    for command in ("train", "submit"):  # an abbreviation would change meaning once an option shares its start
        status, _, err = cli(capsys, command, "--ep", "1")  # (only guessed, as it was not before)
        assert err == f"distnet: error: unrecognized arguments: --ep 1 (did you mean --epochs?) (see: distnet {command} " \
                      f"--help)\n"
    for words, guess in ((["--data", "x"], "did you mean --dataset or --data-dir?"),  # (--dataset only, before)
                         (["--eval", "2"], "did you mean --eval-every?"), (["--out", "x"], "did you mean --run-dir?"),
                         (["--d", "x"], "did you mean --dataset or --data-dir or --dtype?")):
        status, _, err = cli(capsys, "train", *words)
        assert err == f"distnet: error: unrecognized arguments: {' '.join(words)} ({guess}) (see: distnet train --help)\n"
    status, _, err = cli(capsys, "train", "--epoch=3", "--worker", "2", "--learnig-rate", "0.1")
    assert err == ("distnet: error: unrecognized arguments: --epoch=3 --worker 2 --learnig-rate 0.1 (did you mean "
                   "--epochs or --workers or --learning-rate?) (see: distnet train --help)\n")
    for words, said in ((["plot", "run", "--out", ""], "argument --out: expected a folder, got an empty name"),
                        (["evaluate", ""], "argument model: expected a file or a run directory, got an empty name"),
                        (["evaluate", "m.npz", "--data-dir", " "], "argument --data-dir: expected a folder"),
                        (["predict", "m.npz", ""], "argument FILE: expected a file, got an empty name"),
                        (["submit", "--address", "", "--no-wait"], "--address is empty: give the Jobs API's")):
        status, _, err = cli(capsys, *words)  # the current folder before (plot wrote its PNGs there)
        assert status == 2 and err.startswith(f"distnet: error: {said}"), err
    status, _, err = cli(capsys, "train", "--lr", "0.1", "--weight-decay=0.1")  # "did you mean --l2?" for --lr
    assert err == ("distnet: error: unrecognized arguments: --lr 0.1 --weight-decay=0.1 (did you mean --learning-rate "
                   "or --l2?) (see: distnet train --help)\n")
    status, _, err = cli(capsys, "evaluate", "model.npz", "--epochs", "3")  # not one of evaluate's: whose it is
    assert err == ("distnet: error: unrecognized arguments: --epochs 3 (--epochs is an option of distnet train and "
                   "distnet submit) (see: distnet evaluate --help)\n")
    status, _, err = cli(capsys, "evaluate", "model.npz", "--confused", "3")
    assert err == ("distnet: error: unrecognized arguments: --confused 3 (--confused is an option of distnet show) "
                   "(see: distnet evaluate --help)\n")
    # before the command: "--json (did you mean --json?)", and "invalid choice: '0'" for the command
    status, _, err = cli(capsys, "--json", "train")
    assert err == ("distnet: error: --json: options go after the command, as in: distnet train --json ... (see: "
                   "distnet --help)\n") and status == 2
    status, _, err = cli(capsys, "--workers", "0", "train", "--epochs", "1")
    assert err.startswith("distnet: error: --workers 0: options go after the command, as in: distnet train --workers 0")
    status, _, err = cli(capsys, "help", "train")  # a word, not an option: not one to move after the command
    assert err.startswith("distnet: error: argument COMMAND: invalid choice: 'help' (choose from 'train',")


@pytest.mark.slow
def test_an_address_that_does_not_answer_fails_within_seconds(data, tmp_path, offline):
    port = closed_port()
    status, out, err, seconds = run_distnet(offline, "train", "--address", f"127.0.0.1:{port}", "--workers", "1",
                                            "--data-dir", data, "--run-dir", tmp_path / "run", timeout=60)
    assert_clean_error(status, err, f"cannot reach a Ray cluster at 127.0.0.1:{port} (connection refused); "
                                    f"check the address",  # not "refused within 10 s": a refusal is at once
                       "that the cluster is running")
    assert seconds < 60  # Ray itself would retry for ever
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@pytest.mark.parametrize("address, wrong", [
    ("localhost", "is not 'auto', 'local' or HOST:PORT"), ("10.0.0.5:", "is not 'auto', 'local' or HOST:PORT"),
    ("10.0.0.5:http", "is not 'auto', 'local' or HOST:PORT"),
    # (which is HOST:PORT: that it was not said what was wrong)
    ("10.0.0.5:70000", "has port 70000, where ports go from 1 to 65535 (Ray's default is 6379)"),
    ("10.0.0.5:0", "has port 0, where ports go from 1 to 65535")])
def test_a_malformed_address_is_refused_while_parsing(capsys, tmp_path, address, wrong):
    status, _, err = cli(capsys, "train", "--address", address, "--run-dir", tmp_path / "run")
    assert_clean_error(status, err, f"argument --address: cluster address {address!r} {wrong}")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_more_workers_than_the_cluster_can_place_is_a_clear_error_not_a_hang(data, tmp_path, offline):
    """An embedded Ray cannot grow, so distnet fails at once instead of waiting for CPUs."""
    from ray._private.utils import get_num_cpus

    cpus = get_num_cpus()  # as the embedded Ray counts them (a container's quota, not the host's cores)
    workers = cpus + 1
    status, out, err, seconds = run_distnet(offline, "train", "--workers", workers, "--batch-size", workers,
                                            "--data-dir", data, "--run-dir", tmp_path / "run", timeout=120)
    assert_clean_error(status, err, f"cannot place {workers} workers (one CPU each): this machine has {cpus} CPUs "
                                    f"for the Ray this run started; use at most {cpus} worker{'s' if cpus > 1 else ''} "
                                    f"(--workers {cpus}; workers={cpus} in Python), or join a cluster with more "
                                    f"(--address; address= in Python)\n")
    assert err.startswith("distnet: starting Ray on this machine\n")  # the seconds before the error
    assert seconds < 60  # the placement wait (60 s by default) was not spent
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@pytest.mark.slow
def test_a_relative_run_dir_means_the_same_folder_to_the_ray_actors(ray_local, tmp_path):
    """The stop evaluator actor writes best.npz; its working directory is the Ray node's."""
    from distnet import Nesterov
    from distnet.data import Dataset
    from distnet.distributed import DistributedTrainer

    assert ray_local.get(ray_local.remote(lambda: os.getcwd()).remote()) != str(tmp_path)  # this test's cwd
    rng = np.random.default_rng(0)
    train = Dataset(rng.random((256, 784), np.float32), rng.integers(0, 10, 256))
    trainer = DistributedTrainer(Network([Dense(10, "softmax")], input_size=784, seed=1), Nesterov(0.02),
                                 batch_size=32, workers=2, seed=1)
    trainer.fit(train, train.subset(slice(0, 64)), epochs=1, eval_every=1, run_dir="run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [  # prev: epoch 1's, before its evaluation
        "best.json", "best.npz", "checkpoint.npz", "checkpoint.prev.npz", "config.json", "history.jsonl"]


# -- run directories ---------------------------------------------------------------------------------

def train_args(data: Path, *more) -> list:
    return ["train", "--workers", "0", "--data-dir", data, "--eval-every", "1", "--quiet", *more]


def command_line(words: list) -> str:
    """`distnet` with ``words``, as a shell takes it."""
    return shlex.join(["distnet", *map(str, words)])


@pytest.fixture(scope="module")
def finished_run(good_data, tmp_path_factory) -> Path:
    """A 2-epoch single-process run: best.npz, checkpoint.npz and checkpoint.prev.npz exist."""
    run = tmp_path_factory.mktemp("runs") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DISTNET_DATA_DIR", raising=False)
        assert main([str(a) for a in train_args(good_data, "--epochs", "2", "--run-dir", run)]) == 0
    return run


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    """A copy of the finished run that a test may damage."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def test_a_command_line_run_resumed_from_python_with_another_trainer_says_how_it_resumes(good_data, run):
    """A `seed` run resumed with a `tuned` trainer: 1,300 characters of differences, and no word of the
    command that resumes it as it was."""
    from distnet import Trainer, get_preset, load_mnist

    tuned = get_preset("tuned")
    trainer = Trainer(tuned.build_network(seed=1), tuned.build_optimizer(), batch_size=tuned.batch_size, seed=1)
    splits = load_mnist(good_data, download=False)
    before = snapshot(run)
    with pytest.raises(ConfigError) as caught:
        trainer.fit(splits.train, splits.validation, run_dir=run, resume=True)
    message = str(caught.value)
    assert message.startswith("cannot resume: the run was started with another network layers (36 leaky_relu, "
                              "14 leaky_relu, 10 softmax in its checkpoint, 50 relu, 10 softmax now); with another ")
    assert message.count("; with another ") == 3 and "; with 7 other settings of its own; resume with the run's " \
                                                     "own settings" in message
    assert message.endswith(f"; this run was started by the command line, which resumes it with its own settings: "
                            f"distnet train --resume {run}")
    assert len(message.replace(str(run), "RUN")) < 700  # (it was 1,300)
    assert snapshot(run) == before


def test_a_command_line_run_resumed_from_python_to_train_on_loses_its_summary_of_the_end_it_trains_past(
        capsys, good_data, run):
    """Python's fit writes no summary: the run's summary.json told of its first end (epochs 2, that
    best network's test error) beside a history and best network of 3 epochs."""
    from distnet import Trainer, get_preset, load_mnist

    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
    seed = get_preset("seed")
    trainer = Trainer(seed.build_network(seed=942457), seed.build_optimizer(), l2=seed.l2, batch_size=seed.batch_size,
                      seed=942457)
    splits = load_mnist(good_data, download=False)
    assert trainer.fit(splits.train, splits.validation, run_dir=run, resume=True, epochs=3).epochs == 3
    assert not (run / "summary.json").exists()
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", good_data, "--quiet")  # trains nothing
    assert status == 0, err
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3


def test_a_resume_given_a_file_of_a_run_names_the_run_s_folder(capsys, data, run):
    """It said "not a run directory (a file, not a folder)", as for a file in no run."""
    before = snapshot(run)
    status, _, err = cli(capsys, "train", "--resume", run / "best.npz", "--data-dir", data)
    assert_clean_error(status, err, f"{run / 'best.npz'} is a file of the run in {run}, not a run directory; give the "
                                    f"run's folder, {run}")
    assert snapshot(run) == before


def test_a_run_dir_that_holds_a_run_is_refused_untouched(capsys, data, run):
    before = snapshot(run)
    status, _, err = cli(capsys, *train_args(data, "--run-dir", run))
    assert_clean_error(status, err, f"{run} already holds a run; continue it (distnet train --resume {run}; "
                       "in Python fit(..., resume=True)), or choose another run directory")
    assert snapshot(run) == before


@pytest.mark.parametrize("own, message", [
    ({"config.json": '{"my": "own settings"}'}, "holds a config.json that is not a distnet run's"),
    ({"config.json": "not json"}, "holds a config.json that is not a distnet run's"),
    ({"history.jsonl": "notes\n"}, "holds a history.jsonl but no config.json, so not a distnet run"),
    ({"failures.jsonl": "notes\n"}, "holds a failures.jsonl but no config.json, so not a distnet run"),  # was deleted
    ({"summary.json": "my notes\n", "best.json": "mine\n"},  # were overwritten
     "holds best.json, summary.json but no config.json, so it cannot be resumed, and a new run would overwrite"),
])
def test_a_folder_with_files_distnet_did_not_write_is_refused_untouched(capsys, data, tmp_path, own, message):
    folder = tmp_path / "project"
    folder.mkdir()
    for name, text in own.items():
        (folder / name).write_text(text)
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "1"))
    assert_clean_error(status, err, f"{folder} {message}", "choose another run directory")
    assert {p.name: p.read_text() for p in folder.iterdir()} == own


def test_a_run_directory_a_file_stands_in_the_way_of_is_refused_naming_the_file(capsys, data, tmp_path):
    (tmp_path / "notes").write_text("mine")
    for run_dir in (tmp_path / "notes", tmp_path / "notes" / "run"):  # the second said "File exists"
        status, _, err = cli(capsys, *train_args(data, "--run-dir", run_dir, "--epochs", "1"))
        assert_clean_error(status, err, f"cannot create the run directory {run_dir} ({tmp_path / 'notes'} is a file, "
                                        f"not a folder); choose another run directory")
    assert (tmp_path / "notes").read_text() == "mine"
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    for run_dir in (tmp_path / "link", tmp_path / "link" / "run"):  # said "File exists" / "No such file or directory"
        status, _, err = cli(capsys, *train_args(data, "--run-dir", run_dir, "--epochs", "1"))
        assert_clean_error(status, err, f"cannot create the run directory {run_dir} ({tmp_path / 'link'} is a symbolic "
                                        f"link to {tmp_path / 'gone'}, which does not exist); choose another run "
                                        f"directory")


def test_a_run_directory_name_too_long_for_the_file_system_is_refused_in_a_line(capsys, data, tmp_path):
    """A traceback, exit status 1: every look at such a path fails, the advice's look for checkpoints too."""
    for run_dir, what in ((tmp_path / ("x" * 300), "a name in it of 300 bytes, where a file system takes 255 at most"),
                          (tmp_path / "/".join(["y"] * 2100), "bytes in all, where a path takes 4,096 at most")):
        status, _, err = cli(capsys, *train_args(data, "--run-dir", run_dir, "--epochs", "1"))
        assert_clean_error(status, err, f"cannot create the run directory {run_dir} (File name too long: ", what,
                           "); choose a shorter run directory")
        with pytest.raises(ConfigError, match=re.escape(what)):  # from Python the same
            Trainer(Network([Dense(10, "softmax")], input_size=4), Nesterov(0.1), batch_size=8).fit(
                Dataset(np.zeros((8, 4)), np.zeros(8, int), classes=10), epochs=1, run_dir=run_dir)


def test_an_empty_run_directory_name_is_refused_rather_than_taken_for_this_folder(capsys, data):
    status, _, err = cli(capsys, *train_args(data, "--run-dir", ""))
    assert_clean_error(status, err, "argument --run-dir: expected a folder, got an empty name")


@pytest.mark.parametrize("removed", [["config.json"], ["checkpoint.npz", "checkpoint.prev.npz"]])
def test_a_run_dir_with_results_but_no_way_to_resume_is_refused_untouched_and_says_why(capsys, data, run,
                                                                                       removed):
    """Results without config.json (copied there), or a best network without a checkpoint (a run
    stopped between its first best network and its first checkpoint, at eval_every=1): a new run
    would overwrite them, and a resume cannot continue them."""
    for name in removed:
        (run / name).unlink()
    before = snapshot(run)
    status, _, err = cli(capsys, *train_args(data, "--run-dir", run))
    lacking = "config.json" if removed == ["config.json"] else "checkpoint"
    assert_clean_error(status, err, f"{run} holds best.npz", f"but no {lacking}, so it cannot be resumed, and a new "
                       "run would overwrite what it holds; choose another run directory, or move those files away")
    if lacking == "checkpoint":
        status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data)
        assert_clean_error(status, err, f"{run} has no checkpoint to resume from, only the best network best.npz; "
                           "start a new run in another run directory (or move best.npz and best.json away and "
                           "start again here)")  # best.json alone in the folder would refuse a new run too
    assert snapshot(run) == before


@pytest.mark.parametrize("options", [["--window", "5"], ["--seed", "942457", "--batch-size", "16"],
                                     ["--no-augment", "--dataset", "mnist"],
                                     ["--hidden", "8", "--activation", "tanh", "--cost", "mse", "--l2", "0"]])
def test_resume_refuses_settings_it_would_ignore_and_touches_nothing(capsys, data, run, options):
    before = snapshot(run)
    status, out, err = cli(capsys, "train", "--resume", run, "--data-dir", data, *options)
    given = [o.replace("--no-augment", "--augment/--no-augment") for o in options if o.startswith("--")]
    assert_clean_error(status, err, f"--resume continues {run} with the settings it was started with, so ",
                       *given, "cannot be given with it; to train with other settings, start a new run")
    assert err.count(", --") == len(given) - 1  # it names those, and no others
    assert snapshot(run) == before


def test_resume_refuses_a_run_dir_as_no_setting_but_the_folder_it_names_itself(capsys, data, run):
    """--run-dir was refused as a training setting, with the advice to start a new run."""
    before = snapshot(run)
    elsewhere = (f"--run-dir cannot be given with --resume, which names the run directory itself: the run goes on in "
                 f"{run}; to have it go on in another folder, copy {run} there and resume the copy\n")
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data, "--run-dir", "elsewhere")
    assert (status, err) == (2, f"distnet: error: {elsewhere}")
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data, "--run-dir", "elsewhere", "--seed", "1")
    assert (status, err) == (2, f"distnet: error: --resume continues {run} with the settings it was started with, so "
                                f"--seed cannot be given with it; to train with other settings, start a new run; "
                                f"{elsewhere}")
    assert snapshot(run) == before


def test_resume_takes_another_number_of_workers_checked_before_anything_loads_and_submit_forwards_it(
        capsys, data, run, monkeypatch):
    """--workers is not a setting the run fixes: with --resume it continues the run on that many
    workers (0: in this process), if the run's batch size has a sample for each."""
    from distnet.cli import build_parser
    from distnet.commands.submit import job_request

    before = snapshot(run)
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data, "--workers", "33")
    assert_clean_error(status, err, "--workers 33: each worker needs at least one sample per step, and the run's "
                                    "batch size is 32; use at most 32 workers (--workers 32), or leave --workers out "
                                    "to go on as the run did")
    assert snapshot(run) == before
    made = []
    monkeypatch.setattr("distnet.commands.train.fit_and_report", lambda args, trainer, *rest, **kw: made.append(trainer))
    for workers in ("2", "0"):
        cli(capsys, "train", "--resume", run, "--data-dir", data, "--workers", workers)
    assert made[0].distributed and made[0].workers == 2 and not made[1].distributed
    request = job_request(build_parser().parse_args(["submit", "--job-id", "j", "--resume", "/runs/a", "--workers", "2"]))
    assert request["entrypoint"] == "cd / && exec python -m distnet train --address auto --workers 2 --resume /runs/a"


HOLD = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); " \
       "print('held', flush=True); time.sleep(120)"


def test_a_run_another_process_trains_is_refused_until_that_process_ends(capsys, data, run):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = snapshot(run)
        status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data)
        assert_clean_error(status, err, f"{run} is in use: another process is training this run")
        status, _, err = cli(capsys, *train_args(data, "--run-dir", run))  # a new run there: the same
        assert_clean_error(status, err, f"{run} is in use: another process is training this run")
        assert snapshot(run) == before
    finally:
        holder.kill()  # killed, not finished: the system drops its hold all the same
        holder.wait()
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data, "--quiet")
    assert status == 0 and "had ended" in err


def test_a_run_another_process_trains_before_its_first_checkpoint_is_in_use_not_without_checkpoint(
        capsys, data, run, tmp_path):
    starting = tmp_path / "starting"
    starting.mkdir()
    shutil.copy(run / "config.json", starting)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(starting)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        status, _, err = cli(capsys, "train", "--resume", starting, "--data-dir", data)
        assert_clean_error(status, err, f"{starting} is in use: another process is training this run")
        # Not "resume it to get one", which the hold refuses (a new user's audit found it).
        status, _, err = cli(capsys, "evaluate", starting, "--data-dir", data)
        assert_clean_error(status, err, f"{starting} has no best network (best.npz) yet: another process is "
                                        f"training this run, and writes it at the run's first evaluation; try "
                                        f"again then")
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("edit, message", [
    ({"epochs": None}, "config.json: epochs must be a whole number of at least 1, got None, which distnet does not "
                       "write; correct it, or start a new run"),  # a TypeError's traceback before
    ({"epochs": "many"}, "config.json: epochs must be a whole number of at least 1, got 'many'"),
    ({"epochs": 1.5}, "config.json: epochs must be a whole number of at least 1, got 1.5"),  # trained 2 epochs more
    ({"window": 0}, "config.json: window must be a whole number of at least 1, got 0"),
    ({"seed": 5}, "cannot resume: the run was started with another seed (942457 in its checkpoint, 5 "
                  "now); resume with the run's own settings, which its config.json records (if that "
                  "file was edited, undo the edit; if checkpoint.npz was copied in from another run, put this "
                  "run's back)"),
    # the file named for the settings the trainer is built from too (the check's message alone before)
    ({"batch_size": 0}, "config.json: the batch size must be a positive integer, got 0, which distnet does not write"),
    ({"l2": None}, "config.json: l2 must be a number in [0, 1), got None, which distnet does not write"),
    ({"seed": "s"}, "config.json: seed must be a whole number >= 0 (or None for a random one), got 's', which"),
    ({"optimizer": {"name": "nesterov", "learning_rate": -1, "momentum": 0.87}},
     "config.json: the learning rate must be a positive finite number, got -1, which distnet does not write"),
    ({"data_dir": 5}, "config.json: the data folder is 5, not a path, which distnet does not write"),  # a TypeError
    ({"dataset": "foo"}, "config.json: the data set is 'foo', not one of mnist, fashion-mnist, which distnet does"),
    ({"protocol": "x", "workers": 2}, "config.json: the step protocol is 'x', not one of auto, channel, compiled,"),
    ({"protocol": "plain", "workers": 0}, "config.json: the number of workers must be a positive integer, got 0,"),
    # (a run of one process, as this one: its batches' shards; the file was not named)
    ({"workers": 0}, "config.json: the run's number of workers must be a positive integer, got 0, which distnet"),
    ({"workers": "two"}, "config.json: the run's number of workers must be a positive integer, got 'two', which"),
    ({"max_failures": -1}, "config.json: max_failures must be a whole number of at least 0, got -1, which distnet"),
])
def test_a_resume_names_an_edited_or_damaged_config_json_and_touches_nothing(capsys, data, run, edit, message):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **edit}))
    before = snapshot(run)
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data)
    assert_clean_error(status, err, message)
    assert snapshot(run) == before


def test_a_resume_of_a_checkpoint_copied_in_from_another_run_says_so_and_touches_nothing(capsys, data, run, tmp_path):
    """Only an edit of config.json was named, where it was the checkpoint that did not belong."""
    other = tmp_path / "other"
    assert main([str(a) for a in train_args(data, "--epochs", "1", "--hidden", "20", "--run-dir", other)]) == 0
    shutil.copy(other / "checkpoint.npz", run / "checkpoint.npz")
    before = snapshot(run)
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data, "--epochs", "3")
    assert_clean_error(status, err, "cannot resume: the run was started with another network layers (20 leaky_relu, 10 "
                                    "softmax in its checkpoint, 36 leaky_relu, 14 leaky_relu, 10 softmax now); ", "if checkpoint.npz was copied in from another run, put "
                                    "this run's back)")
    assert snapshot(run) == before


def test_a_resume_whose_data_folder_is_gone_looks_where_a_new_run_would(capsys, data, run, tmp_path, monkeypatch):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data_dir": str(tmp_path / "gone")}))
    monkeypatch.setenv("DISTNET_DATA_DIR", str(tmp_path / "env"))
    other = Path(shutil.copytree(data, tmp_path / "env" / "mnist"))
    write_idx(other / TRAIN_LABELS, (read_idx(other / TRAIN_LABELS) + 1) % 10)  # other data of the same size
    before = snapshot(run)
    status, _, err = cli(capsys, "train", "--resume", run, "--epochs", "3")
    warning = (f"distnet: warning: the run's data folder {tmp_path / 'gone'} is not there any more; the data set is "
               f"looked for where a new run looks, and compared with the run's where it recorded their checksums\n")
    assert err.startswith(warning)
    assert_clean_error(status, err.removeprefix(warning), "cannot resume: the training data differ from the run's")
    assert snapshot(run) == before
    shutil.copy(data / TRAIN_LABELS, other / TRAIN_LABELS)  # the run's own data, found there
    status, _, err = cli(capsys, "train", "--resume", run, "--epochs", "3", "--quiet")
    assert status == 0 and err.startswith(warning)  # had said: the data folder ... does not exist


def test_resume_of_a_folder_that_is_not_a_run(capsys, data, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8\xff")
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data)
    assert_clean_error(status, err, f"{folder} is not a run directory (no config.json)")
    assert snapshot(folder) == {"cat.jpg": b"\xff\xd8\xff"}


def test_resume_of_a_run_that_lost_its_config_json_says_to_put_it_back(capsys, data, tmp_path):
    from distnet.rundir import RunDir

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes(b"kept")
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data)  # (a best.npz named that was not there)
    assert err == f"distnet: error: {run} has checkpoints but no config.json (removed?): put it back from a copy to " \
                  f"resume the run\n"
    (run / "best.npz").write_bytes(b"best")
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data)
    assert_clean_error(status, err, f"{run} has checkpoints but no config.json (removed?): put it back from a copy to "
                                    f"resume the run; its best network, best.npz, loads without it")
    (run / "config.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match=r"config.json: not readable as JSON \(.*\); put it back from a copy "
                                               r"to resume the run \(its best network, best.npz, loads without it\)$"):
        RunDir(run).config()
    (run / "best.npz").unlink()
    with pytest.raises(ModelFormatError, match=r"config.json: not readable as JSON \(.*\); put it back from a copy "
                                               r"to resume the run$"):
        RunDir(run).config()
    assert (run / "checkpoint.npz").read_bytes() == b"kept"
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # said "config.json: not readable as JSON", and to put it back
    status, _, err = cli(capsys, "train", "--resume", tmp_path / "loop", "--data-dir", data)
    assert_clean_error(status, err, f"{tmp_path / 'loop'} is a symbolic link that leads round in a loop (Too many "
                                    f"levels of symbolic links); give the run directory itself")


def test_resume_of_a_folder_that_does_not_exist(capsys, data, tmp_path):
    status, _, err = cli(capsys, "train", "--resume", tmp_path / "runs" / "typo", "--data-dir", data)
    assert_clean_error(status, err, f"{tmp_path / 'runs' / 'typo'} does not exist")
    assert not (tmp_path / "runs").exists()


class InterruptedInEpoch(Reporter):
    """Ctrl-C in the middle of ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_steps(self, epoch, step, steps, stats, seconds):
        if epoch == self.epoch and step >= steps // 2:
            raise KeyboardInterrupt


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("epoch", [1, 2])
def test_an_interrupted_run_says_how_to_go_on(capsys, data, tmp_path, monkeypatch, epoch):
    """Ctrl-C: exit status 130, and the advice fits what the run saved: a resume once it wrote a
    checkpoint (each epoch's end here), a new start before that (the folder the run made, holding
    nothing but its config.json and an empty history, removed again)."""
    folder = tmp_path / "run"
    monkeypatch.setattr("distnet.progress.Reporter", lambda: InterruptedInEpoch(epoch))
    train = train_args(data, "--run-dir", folder, "--epochs", "3")
    status, out, err = cli(capsys, *train)
    assert status == 130
    if epoch == 1:  # the same command, options and all (it was `... --run-dir {folder} ...`, to retype the rest)
        assert err == (f"\ndistnet: interrupted before the run's first checkpoint; to train it, start it again: "
                       f"{command_line(train)}\n")
        assert not folder.exists()
        folder.mkdir()  # the user's own: kept, and the advice says it may be reused
        status, out, err = cli(capsys, *train)
        assert status == 130 and sorted(p.name for p in folder.iterdir()) == ["config.json", "history.jsonl"]
        assert err == (f"\ndistnet: interrupted before the run's first checkpoint; to train it, start it again "
                       f"(the folder may be reused): {command_line(train)}\n")
        monkeypatch.undo()
        status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "1"))
        assert status == 0, err
    else:
        assert err == f"\ndistnet: interrupted; resume with: distnet train --resume {folder}\n"
        monkeypatch.undo()
        status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--quiet")
        assert status == 0, err
    assert Checkpoint.load(folder / "checkpoint.npz").epoch == (1 if epoch == 1 else 3)


@pytest.mark.parametrize("error", ["RayFailedError", "FailureLimitError"])
def test_a_run_that_fails_before_its_first_checkpoint_says_how_to_start_it_again(capsys, data, tmp_path, monkeypatch,
                                                                                   error):
    """An actor lost as the actors started ended with Ray's error alone, the folder removed without
    a word (a Ctrl-C there gives the command); so did the failure limit met in epoch 1."""
    import distnet

    class FailsInEpoch1(Reporter):
        def on_steps(self, epoch, step, steps, stats, seconds):
            raise getattr(distnet, error)("Ray failed (ActorDiedError: the actor died)")

    folder = tmp_path / "run"
    monkeypatch.setattr("distnet.progress.Reporter", FailsInEpoch1)
    train = train_args(data, "--run-dir", folder, "--epochs", "3")
    status, _, err = cli(capsys, *train)
    assert status == 2 and err == (f"distnet: error: Ray failed (ActorDiedError: the actor died); the run saved no "
                                   f"checkpoint yet: to train it, start it again: {command_line(train)}\n")
    assert not folder.exists()  # the folder it made, holding nothing to go on from


def test_a_resume_on_other_workers_interrupted_before_it_placed_them_says_to_ask_for_them_again(
        capsys, data, tmp_path, monkeypatch):
    """Until the workers are placed the run records its own number (and whether it trains on Ray):
    a plain resume, which the advice gave, went on as the run was, not on the workers asked for
    (those the cluster still has room for, after a lost node). So with its new total of epochs and
    checkpoint interval: the advice left --epochs out, and a run that had ended trained nothing."""
    from distnet.distributed import DistributedTrainer
    from distnet.trainer import Trainer

    folder = tmp_path / "run"
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "1"))
    assert status == 0, err
    monkeypatch.setattr(DistributedTrainer, "_connect_ray", interrupt)  # Ctrl-C as Ray starts
    config = (folder / "config.json").read_bytes()
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--epochs", "2", "--workers", "2",
                         "--quiet")
    assert status == 130 and err == (f"\ndistnet: interrupted; resume with: distnet train --resume {folder} --workers 2 "
                                     f"--epochs 2\n")
    assert (folder / "config.json").read_bytes() == config
    # Asked for the run's own (no protocol recorded: it trains in this process), the plain resume.
    monkeypatch.setattr(Trainer, "fit", interrupt)
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--workers", "0", "--quiet")
    assert status == 130 and err == f"\ndistnet: interrupted; resume with: distnet train --resume {folder}\n"
    # (no --max-failures: in this process there are no failures to recover from; --epochs 1 is the run's)
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--epochs", "1", "--checkpoint-every",
                         "7", "--max-failures", "2", "--quiet")
    assert status == 130 and err.endswith(f"\ndistnet: interrupted; resume with: distnet train --resume {folder} "
                                          f"--checkpoint-every 7\n")


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_ctrl_c_while_the_first_is_reported_does_not_cut_the_report_short(
        capsys, data, tmp_path, monkeypatch, second):
    """A quick double Ctrl-C (or a SIGTERM after it) landed in the reporting of the first: a
    traceback, and no advice or exit status of distnet's."""
    import distnet.cli

    folder = tmp_path / "run"
    monkeypatch.setattr("distnet.progress.Reporter", lambda: InterruptedInEpoch(2))
    report = distnet.cli._how_to_go_on

    def second_signal_meanwhile(args):
        os.kill(os.getpid(), second)
        return report(args)

    monkeypatch.setattr(distnet.cli, "_how_to_go_on", second_signal_meanwhile)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "3"))
    assert status == 130 and err == f"\ndistnet: interrupted; resume with: distnet train --resume {folder}\n"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # the caller's again


def test_a_run_interrupted_in_its_final_test_evaluation_says_the_resume_only_writes_the_summary(
        capsys, data, tmp_path, monkeypatch):
    folder = tmp_path / "run"
    monkeypatch.setattr("distnet.metrics.evaluate", interrupt)
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "1"))
    assert status == 130 and not (folder / "summary.json").exists()
    assert err == (f"\ndistnet: interrupted after the training ended, before its test evaluation and summary; to make "
                   f"them (training nothing): distnet train --resume {folder}\n")
    monkeypatch.undo()
    before = Checkpoint.load(folder / "checkpoint.npz").params
    status, out, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--quiet")
    assert status == 0 and err.startswith(f"distnet: warning: {folder} had ended at epoch 1 (max epochs)")
    assert json.loads((folder / "summary.json").read_text())["epochs"] == 1
    np.testing.assert_array_equal(Checkpoint.load(folder / "checkpoint.npz").params, before)
    # Trained on past that ending and stopped the same way, it holds the first ending's summary:
    # a resume replaces it (it was kept as the ended run's).
    monkeypatch.setattr("distnet.metrics.evaluate", interrupt)
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--epochs", "2", "--quiet")
    assert status == 130 and "interrupted after the training ended, before its test evaluation and summary" in err
    monkeypatch.undo()
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--quiet")
    assert status == 0 and err.startswith(f"distnet: warning: {folder} had ended at epoch 2 (max epochs)")
    assert json.loads((folder / "summary.json").read_text())["epochs"] == 2


def test_the_summary_a_resume_writes_for_an_ended_run_says_how_the_run_trained_not_what_the_resume_asked(
        capsys, data, run):
    """An ended run without its summary (stopped before it): the resume that writes it trains
    nothing, and its summary said the resume's --workers 2 and no step protocol (no actor
    started) for a run that trained in one process."""
    (run / "summary.json").unlink()
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data, "--workers", "2", "--quiet")
    assert status == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["workers"], summary["protocol"], summary["epochs"]) == (0, "single-process", 2)


def test_a_run_interrupted_as_its_trainer_closes_after_the_end_says_the_resume_only_writes_the_summary(
        capsys, data, tmp_path, monkeypatch):
    """A distributed trainer stops Ray after the training ended (its last line printed): a Ctrl-C
    meanwhile, held until Ray has stopped, comes out of fit. It was said as one within the
    training ("resume with: ..."), where the resume trains nothing."""
    folder = tmp_path / "run"
    monkeypatch.setattr("distnet.trainer.Trainer._close", interrupt)  # as a Ctrl-C held while Ray stopped
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "1"))
    assert status == 130 and not (folder / "summary.json").exists()
    assert err == (f"\ndistnet: interrupted after the training ended, before its test evaluation and summary; to make "
                   f"them (training nothing): distnet train --resume {folder}\n")
    monkeypatch.undo()
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--quiet")
    assert status == 0 and json.loads((folder / "summary.json").read_text())["epochs"] == 1
    # Not "nothing to resume": the advice was to resume, and the resume made the summary.
    assert err == (f"distnet: warning: {folder} had ended at epoch 1 (max epochs): nothing left to train; to train "
                   f"longer, resume it with more epochs (--epochs with --resume; fit(epochs=...) in Python)\n")


def test_resume_with_a_damaged_newest_checkpoint_falls_back_with_a_warning(capsys, data, run):
    (run / "checkpoint.npz").write_bytes((run / "checkpoint.npz").read_bytes()[:300])
    previous = (run / "checkpoint.prev.npz").read_bytes()
    status, out, err = cli(capsys, "train", "--resume", run, "--data-dir", data, "--quiet")
    assert status == 0, err
    assert err.startswith("distnet: warning: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "checkpoint.npz: not a readable .npz file" in err
    assert "resuming from the previous checkpoint checkpoint.prev.npz instead" in err
    # Epoch 2 ran again and replaced the damaged checkpoint; the good previous one was not
    # pushed out by the damaged one (a crash then would have left nothing to resume from).
    assert Checkpoint.load(run / "checkpoint.npz").epoch == 2
    assert (run / "checkpoint.prev.npz").read_bytes() == previous


def test_resume_with_both_checkpoints_damaged_is_a_clear_error_and_touches_nothing(capsys, data, run):
    for name in ("checkpoint.npz", "checkpoint.prev.npz"):
        (run / name).write_bytes(b"PK\x03\x04" + bytes(100))
    before = snapshot(run)
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data)
    assert_clean_error(status, err, f"cannot resume {run}: no usable checkpoint",
                       "checkpoint.npz: not a readable .npz file", "checkpoint.prev.npz: not a readable .npz file",
                       f"the best network so far is {run / 'best.npz'}; to train on, start a new run in another "
                       f"folder")
    assert snapshot(run) == before


def test_resume_of_a_checkpoint_a_newer_distnet_wrote_stops_and_touches_nothing(capsys, data, run):
    """It was taken for damage: the run resumed from checkpoint.prev.npz, with a warning to upgrade,
    and wrote over the newer checkpoint."""
    with np.load(run / "checkpoint.npz") as saved:
        arrays = dict(saved)
    meta = json.loads(arrays["meta"].tobytes())
    arrays["meta"] = np.frombuffer(json.dumps({**meta, "version": 2}).encode(), np.uint8)
    np.savez(run / "checkpoint.npz", **arrays)
    before = snapshot(run)
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data, "--epochs", "3")
    assert_clean_error(status, err, f"cannot resume {run}: {run / 'checkpoint.npz'}: written by a newer distnet "
                                    f"(format version 2); upgrade distnet; the files were left as they are")
    assert snapshot(run) == before


def test_the_advice_quotes_a_run_directory_that_the_shell_would_split(capsys, data, tmp_path, monkeypatch):
    folder = tmp_path / "my run"
    monkeypatch.setattr("distnet.progress.Reporter", lambda: InterruptedInEpoch(2))
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "3"))
    assert status == 130 and err == f"\ndistnet: interrupted; resume with: distnet train --resume '{folder}'\n"


def test_a_run_is_checkpointed_before_its_first_best_network(capsys, data, tmp_path, monkeypatch):
    """The first evaluation wrote best.npz before the first checkpoint: interrupted in between, a
    run could neither be resumed nor started again in its folder ("it cannot be resumed; to train
    on, start a new run in another run directory")."""
    folder = tmp_path / "run"
    monkeypatch.setattr("distnet.rundir.RunDir.save_checkpoint", interrupt)
    train = train_args(data, "--run-dir", folder, "--epochs", "3")
    status, _, err = cli(capsys, *train)
    assert status == 130 and not folder.exists()  # it had saved nothing there: no best.npz either
    assert err == (f"\ndistnet: interrupted before the run's first checkpoint; to train it, start it again: "
                   f"{command_line(train)}\n")
    monkeypatch.undo()
    assert cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "1"))[0] == 0


def test_with_json_how_the_command_ended_is_the_last_line_on_stdout_too(capsys, data, tmp_path, monkeypatch):
    train = ["train", "--workers", "0", "--eval-every", "1", "--epochs", "3", "--json", "--run-dir", tmp_path / "run"]
    status, out, err = cli(capsys, *train, "--data-dir", tmp_path / "nowhere")
    assert status == 2 and json.loads(out.splitlines()[-1]) == {
        "event": "error", "message": err.removeprefix("distnet: error: ").rstrip("\n")}
    monkeypatch.setattr("distnet.rundir.RunDir.save_checkpoint", interrupt)
    status, out, err = cli(capsys, *train, "--data-dir", data)
    events = [json.loads(line) for line in out.splitlines()]
    # (an epoch's evaluation is reported once the epoch is checkpointed)
    assert status == 130 and [e["event"] for e in events] == ["start", "interrupted"]
    assert events[-1]["message"] == err.removeprefix("\ndistnet: ").rstrip("\n")


def test_a_training_whose_reader_went_away_stops_resumable_and_says_so(capsys, data, tmp_path, monkeypatch):
    """`distnet train --json | head -1`: the evaluation's line finds the pipe closed. That was exit
    status 0, nothing said, and best.npz without a checkpoint: a folder neither resumable nor
    restartable."""
    import io

    from distnet import cli as command_line

    class ReaderGoneAfterOneLine(io.StringIO):
        def write(self, text):
            if self.getvalue().count("\n") >= 1:
                raise BrokenPipeError
            return super().write(text)

    captured, closed = sys.stdout, ReaderGoneAfterOneLine()
    monkeypatch.setattr(sys, "stdout", closed)
    monkeypatch.setattr(command_line, "_drop_output", lambda stream: None)  # pytest's own stdout stays
    run = tmp_path / "run"
    status, _, err = cli(capsys, "train", "--workers", "0", "--eval-every", "1", "--epochs", "2", "--json",
                         "--run-dir", run, "--data-dir", data)
    assert status == 128 + signal.SIGPIPE
    assert err == (f"distnet: error: the output was closed (its reader went away), so the training stopped; "
                   f"resume with: distnet train --resume {run}\n")
    assert json.loads(closed.getvalue())["event"] == "start"
    monkeypatch.setattr(sys, "stdout", captured)
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data)
    assert status == 0 and "resuming in epoch 2" in err
    assert [record["epoch"] for record in map(json.loads, (run / "history.jsonl").read_text().splitlines())] == [1, 2]


def test_the_last_json_event_for_a_reader_that_went_away_ends_quietly(monkeypatch):
    """`distnet train --json | jq`, Ctrl-C: jq is gone when the interrupted event is written."""
    import io

    from distnet import cli as command_line

    read_end, write_end = os.pipe()

    class GoneReader(io.TextIOBase):
        def write(self, text):
            raise BrokenPipeError

        def fileno(self):
            return write_end

    monkeypatch.setattr(sys, "stdout", GoneReader())
    args = command_line.build_parser().parse_args(["train", "--json"])
    command_line._json_event(args, "interrupted", "interrupted")  # a BrokenPipeError's traceback before
    os.write(write_end, b"left over")  # what Python would flush at exit goes nowhere now
    assert os.read(read_end, 16) == b""
    os.close(read_end)
    os.close(write_end)


def test_options_for_ray_workers_given_to_a_run_in_this_process_are_named_as_ignored(capsys, data, tmp_path):
    status, out, err = cli(capsys, *train_args(data, "--run-dir", tmp_path / "run", "--epochs", "1",
                                               "--protocol", "compiled", "--max-failures", "0"))
    assert status == 0 and err == ("distnet: warning: --protocol and --max-failures are for Ray workers, and this run "
                                   "trains in this process without them (--workers 0): ignored\n")
    status, out, err = cli(capsys, *train_args(data, "--run-dir", tmp_path / "other", "--epochs", "1",
                                               "--address", "10.0.0.5:6379", "--max-failures", "0"))
    assert status == 0 and err == ("distnet: warning: --address and --max-failures are for Ray workers, and this run "
                                   "trains in this process without them (--workers 0): ignored\n")  # --address unsaid


def test_an_interrupted_command_other_than_train_gives_no_advice_on_runs(capsys, run, monkeypatch):
    monkeypatch.setattr("distnet.commands.plot.run", interrupt)
    status, _, err = cli(capsys, "plot", run)
    assert status == 130 and err == "\ndistnet: interrupted\n"


def test_a_run_that_saved_nothing_does_not_block_its_folder(capsys, data, tmp_path):
    made = tmp_path / "made"
    status, _, err = cli(capsys, *train_args(data, "--run-dir", made, "--learning-rate", "1e30"))
    assert_clean_error(status, err, "training diverged")
    assert not made.exists()  # the run made it, and saved nothing in it
    folder = tmp_path / "run"
    folder.mkdir()  # the user's: it stays, with what the run wrote
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--learning-rate", "1e30"))
    assert_clean_error(status, err, "training diverged")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "history.jsonl"]
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data)
    assert_clean_error(status, err, f"{folder} has no checkpoint to resume from",
                       f"start the run again: distnet train --run-dir {folder}")
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "1"))
    assert status == 0, err
    assert Checkpoint.load(folder / "checkpoint.npz").epoch == 1


def test_a_damaged_best_network_of_a_run_is_said_to_be_written_again_by_a_resume(capsys, run, good_data):
    best = run / "best.npz"
    best.write_bytes(best.read_bytes()[:1000])
    status, _, err = cli(capsys, "evaluate", run, "--data-dir", good_data)
    assert status == 2 and err.endswith(f"; the run's checkpoint has it: distnet train --resume {run} writes it "
                                        f"again\n"), err  # said only what was wrong before
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", good_data, "--quiet")
    assert status == 0, err
    status, _, err = cli(capsys, "evaluate", run, "--data-dir", good_data)
    assert status == 0, err


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="tells the files apart by /proc/self/fd")
def test_a_full_disk_before_the_first_checkpoint_says_to_start_again(capsys, data, tmp_path, monkeypatch):
    folder = tmp_path / "run"

    real_fsync = os.fsync

    def disk_full_from_the_first_checkpoint(fd):
        if "checkpoint" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr("distnet.io.os.fsync", disk_full_from_the_first_checkpoint)
    train = train_args(data, "--run-dir", folder, "--epochs", "1")
    status, _, err = cli(capsys, *train)
    monkeypatch.undo()
    # The first checkpoint comes before the first best network ("start a new run in another run
    # directory" before, the folder holding best.npz).
    assert status == 2 and err.endswith(f": No space left on device; the run saved no checkpoint yet: once there is "
                                        f"room, start it again: {command_line(train)}\n"), err
    assert not folder.exists()  # the run made it, and saved nothing in it
    other = tmp_path / "other"  # its first checkpoint comes before its first evaluation
    monkeypatch.setattr("distnet.io.os.fsync", disk_full_from_the_first_checkpoint)
    train = train_args(data, "--run-dir", other, "--epochs", "2", "--eval-every", "2")
    status, _, err = cli(capsys, *train)
    monkeypatch.undo()
    assert status == 2 and err.endswith(f": No space left on device; the run saved no checkpoint yet: once there is "
                                        f"room, start it again: {command_line(train)}\n"), err
    status, _, err = cli(capsys, *train_args(data, "--run-dir", other, "--epochs", "1"))
    assert status == 0, err


def test_a_full_disk_while_the_history_grows_names_history_jsonl(tmp_path, monkeypatch):
    """A full disk fails an append at the file's close, with no file name: the message had none."""
    from distnet.rundir import RunDir

    class Full(io.StringIO):
        def close(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("distnet.rundir.open", lambda *args, **kwargs: Full(), raising=False)
    run = RunDir(tmp_path)
    with pytest.raises(OSError) as failed:
        run.append_history({"epoch": 1})
    assert failed.value.filename == str(run.history_path) and failed.value.errno == errno.ENOSPC


@pytest.mark.parametrize("error, once", [
    (errno.ENOSPC, "once there is room"),
    (errno.EROFS, "once the folder is writable again"),
    (errno.EIO, "once that is put right"),  # not a disk to clear: no advice to make room
    (errno.EFBIG, "once the limit on the size of the files a process writes allows it (ulimit -f)"),
])
def test_a_disk_error_names_the_file_it_could_not_write_and_when_the_run_can_resume(
        capsys, data, tmp_path, monkeypatch, error, once):
    folder = tmp_path / "run"
    real_fsync = os.fsync

    def disk_fails(fd):
        if (folder / "checkpoint.npz").exists():  # after epoch 1's checkpoint
            raise OSError(error, os.strerror(error))
        real_fsync(fd)

    monkeypatch.setattr("distnet.io.os.fsync", disk_fails)
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "3"))
    monkeypatch.undo()
    assert status == 2 and re.fullmatch(
        f"distnet: error: {re.escape(str(folder))}/(best.npz|best.json|checkpoint.npz): {os.strerror(error)}; "
        f"the run's files are as its last checkpoint left them: {re.escape(once)}, resume with: distnet train --resume "
        f"{re.escape(str(folder))}\n", err), err
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert Checkpoint.load(folder / "checkpoint.npz").epoch == 1
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--quiet")
    assert status == 0, err


def test_a_checkpoint_that_cannot_be_written_leaves_both_checkpoints_as_they_were(capsys, data, tmp_path,
                                                                                 monkeypatch):
    """The third checkpoint cannot be written: the second stays checkpoint.npz and the first
    checkpoint.prev.npz, byte for byte (the newest moves only once the new one is complete), and
    the resume goes on from the second without a word about the previous one."""
    folder = tmp_path / "run"
    real_fsync = os.fsync
    kept = {}

    def third_checkpoint_fails(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(f"{folder}/.checkpoint.npz.") and \
                (folder / "checkpoint.prev.npz").exists():
            kept.update({name: (folder / name).read_bytes() for name in ("checkpoint.npz", "checkpoint.prev.npz")})
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr("distnet.io.os.fsync", third_checkpoint_fails)
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "4"))
    monkeypatch.undo()
    assert status == 2 and err.startswith(f"distnet: error: {folder}/checkpoint.npz: No space left on device; "
                                          f"the run's files are as its last checkpoint left them"), err
    assert {name: (folder / name).read_bytes() for name in kept} == kept
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--quiet")
    assert status == 0 and "previous checkpoint" not in err, err
    assert Checkpoint.load(folder / "checkpoint.npz").epoch == 4


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_results_that_cannot_be_printed_are_said_to_be_all_that_is_lost(data, tmp_path):
    """Said before: the run's files were as its last checkpoint left them, resume it; the run had
    ended and written its summary."""
    folder = tmp_path / "run"
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "distnet", *map(str, train_args(data, "--run-dir", folder,
                                                                                     "--epochs", "1"))],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr == (
        f"distnet: error: No space left on device while printing the results (on stdout); the run ended and nothing "
        f"is lost: its summary is in {folder / 'summary.json'}\n")
    assert json.loads((folder / "summary.json").read_text())["epochs"] == 1
    with open("/dev/full", "w") as full:  # --json: its last event, how the run ended, could not be written either
        done = subprocess.run([sys.executable, "-m", "distnet", *map(str, train_args(data, "--run-dir", folder,
                                                                                     "--resume", "--json"))],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


# -- divergence --------------------------------------------------------------------------------------

def test_divergence_from_the_start_saves_no_broken_network(capsys, data, tmp_path):
    status, out, err = cli(capsys, *train_args(data, "--run-dir", tmp_path / "run", "--learning-rate", "1e30"))
    assert_clean_error(status, err, "training diverged (epoch 1", "the learning rate (1e+30) is probably too high")
    assert not (tmp_path / "run" / "best.npz").exists() and not (tmp_path / "run" / "checkpoint.npz").exists()


def test_divergence_later_in_a_run_keeps_the_best_network_and_the_checkpoints(capsys, data, run):
    """The finished 2-epoch run, continued to epoch 4 with a learning rate that makes the first
    steps of epoch 3 blow up: the files of epochs 1 and 2 stay byte for byte as they were."""
    config = json.loads((run / "config.json").read_text())
    config["epochs"] = 4
    config["optimizer"]["learning_rate"] = 1e30
    (run / "config.json").write_text(json.dumps(config))
    checkpoint = Checkpoint.load(run / "checkpoint.npz")
    checkpoint.config.update(epochs=4, optimizer=config["optimizer"])
    checkpoint.save(run / "checkpoint.npz")
    kept = {name: (run / name).read_bytes() for name in ("best.npz", "best.json", "checkpoint.npz",
                                                          "checkpoint.prev.npz")}
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data, "--quiet")
    assert_clean_error(status, err, "training diverged (epoch 3", "the learning rate (1e+30) is probably too high",
                       f"the best network so far and the last checkpoint in {run} are intact")
    assert {name: (run / name).read_bytes() for name in kept} == kept
    assert np.isfinite(Network.load(run / "best.npz").params).all()


# -- security ----------------------------------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}


def unsafe_uses(source: str, name: str = "<source>") -> list[str]:
    """Where ``source`` could run code from data: a pickle-like module, eval/exec, np.load or
    torch.load without ``allow_pickle=False`` / ``weights_only=True``, yaml.load."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            keywords = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
            if isinstance(func, ast.Name) and func.id in UNSAFE_CALLS:
                found.append(f"{where}: {func.id}()")
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                call = f"{func.value.id}.{func.attr}"
                if call in ("np.load", "numpy.load") and keywords.get("allow_pickle") is not False:
                    found.append(f"{where}: {call} without allow_pickle=False")
                elif call == "torch.load" and keywords.get("weights_only") is not True:
                    found.append(f"{where}: torch.load without weights_only=True")
                elif call in ("yaml.load", "yaml.unsafe_load"):
                    found.append(f"{where}: {call}")
    return found


def test_the_scanner_finds_unsafe_code():
    """The control: each kind of unsafe use is reported."""
    source = ("import pickle\nfrom marshal import loads\nimport numpy as np\nnp.load('x')\n"
              "np.load('x', allow_pickle=True)\neval('1')\nnp.load('y', allow_pickle=False)\n")
    assert [u.split(": ", 1)[1] for u in unsafe_uses(source)] == [
        "import pickle", "from marshal import ...", "np.load without allow_pickle=False",
        "np.load without allow_pickle=False", "eval()"]


def test_nothing_read_from_disk_or_network_is_unpickled_or_evaluated():
    """Every np.load in distnet passes allow_pickle=False; no module that unpickles is imported and
    nothing is eval'd or exec'd. (Models and checkpoints are .npz plus JSON metadata; downloads
    are IDX bytes checked against the published SHA-256 before use: see
    tests/test_datasets.py::test_checksum_mismatch_leaves_nothing_in_the_cache.)"""
    sources = sorted((REPO / "distnet").rglob("*.py"))
    assert len(sources) > 20
    found = [use for path in sources for use in unsafe_uses(path.read_text(), str(path.relative_to(REPO)))]
    assert found == []


@pytest.mark.parametrize("workers", ["0", "1"])
def test_sigterm_stops_a_training_like_ctrl_c_and_says_how_to_resume(data, tmp_path, workers):
    """With a worker, in a process where Ray would otherwise have the last word on SIGTERM (exit
    status 1, nothing said)."""
    folder = tmp_path / "run"
    # A run that cannot end by itself: this small data set's run stops early within a second or two,
    # which a loaded machine let pass before the SIGTERM was sent (the run then ended with status 0).
    endless = ("--epochs", "100000", "--window", "100000")
    command = [sys.executable, "-m", "distnet", *map(str, train_args(data, "--run-dir", folder, *endless)),
               "--workers", workers]
    training = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (folder / "checkpoint.npz").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        training.terminate()
        _, err = training.communicate(timeout=120)
    finally:
        training.kill()  # (a no-op once it has exited)
    assert training.returncode == 143 and err.endswith(f"distnet: terminated; resume with: distnet train --resume "
                                                       f"{folder}\n"), err
    # Read as the resume reads it: epochs here take milliseconds, so the SIGTERM can land as a
    # checkpoint is written, after checkpoint.npz was moved to checkpoint.prev.npz (seen in a full
    # run), which the resume then takes, losing nothing.
    assert RunDir(folder).load_checkpoint().epoch >= 1


def test_a_ray_driver_s_own_sigterm_exit_is_reported_as_termination_too(capsys, data, tmp_path, monkeypatch):
    class RayExitsOnSigterm(Reporter):  # what Ray's handler does in a driver: sys.exit(SIGTERM)
        def on_steps(self, epoch, step, steps, stats, seconds):
            if epoch == 2:
                sys.exit(15)

    folder = tmp_path / "run"
    monkeypatch.setattr("distnet.progress.Reporter", RayExitsOnSigterm)
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "3"))
    assert status == 143 and err == f"\ndistnet: terminated; resume with: distnet train --resume {folder}\n"


class MovesTheRunFolder(Reporter):
    """Moves (or removes) the run folder in the middle of epoch 2, as a user's mv or rm -r would."""

    def __init__(self, folder: Path, to: Path | None):
        self.folder, self.to = folder, to

    def on_steps(self, epoch, step, steps, stats, seconds):
        if epoch == 2 and self.folder.exists():
            if self.to is None:
                shutil.rmtree(self.folder)
            else:
                self.folder.rename(self.to)


def test_a_run_started_from_python_whose_folder_is_removed_says_how_to_go_on_from_python(tmp_path):
    """Its configuration gone with the folder, the advice was the command line's."""
    from distnet import Nesterov, Trainer
    from distnet.data import Dataset

    rng = np.random.default_rng(0)
    points = rng.random((64, 2)).astype(np.float32)
    own = Dataset(points, (points.sum(axis=1) > 1).astype(int), classes=["low", "high"])
    folder = tmp_path / "run"
    trainer = Trainer(Network([Dense(2, "softmax")], input_size=2, seed=0), Nesterov(0.1), batch_size=16, seed=0)
    with pytest.raises(ConfigError, match=re.escape(
            f"the run directory {folder} was moved or removed while the run trained, so the run stops here; if it was "
            f"moved, continue it where it is now: fit(train, validation, run_dir='NEW_PATH', resume=True) in Python "
            f"on the run's data")):
        trainer.fit(own, own, epochs=4, run_dir=folder, reporter=MovesTheRunFolder(folder, None))


@pytest.mark.parametrize("moved, checkpoint_every", [(True, 0), (False, 0), (True, 5)],
                         ids=["moved", "removed", "moved, step checkpoints"])
def test_a_run_whose_folder_is_moved_or_removed_while_it_trains_stops_there(capsys, data, tmp_path, monkeypatch,
                                                                             moved, checkpoint_every):
    # Writing on would make a new folder of the old name, holding the rest of the run without its
    # configuration and first epoch: a run that cannot be resumed, where the moved one could be.
    # (With step checkpoints the next write is a checkpoint's, without the next evaluation's.)
    folder, to = tmp_path / "run", tmp_path / "moved run"
    monkeypatch.setattr("distnet.progress.Reporter", lambda: MovesTheRunFolder(folder, to if moved else None))
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "4",
                                             "--checkpoint-every", str(checkpoint_every)))
    assert not folder.exists()
    if not moved:
        assert_clean_error(status, err, f"the run directory {folder} was moved or removed while the run trained, so "
                                        f"the run stops here; if it was moved, continue it where it is now: distnet "
                                        f"train --resume NEW_PATH")
        return
    assert_clean_error(status, err, f"the run directory {folder} was moved to {to} while the run trained, so the "
                                    f"run stops here, with its files there; continue it from there: "
                                    f"distnet train --resume '{to}'")
    assert Checkpoint.load(to / "checkpoint.npz").epoch == 1
    status, _, err = cli(capsys, "train", "--resume", to, "--data-dir", data)
    assert status == 0, err
    assert Checkpoint.load(to / "checkpoint.npz").epoch == 4 and not folder.exists()


def test_runs_started_in_the_same_second_get_folders_of_their_own(capsys, data, tmp_path, monkeypatch):
    monkeypatch.setattr("distnet.commands.train.time", SimpleNamespace(strftime=lambda *args: "20261202-154315"))
    name = "runs/seed-mnist-20261202-154315"
    (tmp_path / "runs").mkdir()
    (tmp_path / name).mkdir()  # another run's, started this second
    status, out, err = cli(capsys, *train_args(data, "--epochs", "1"))
    assert status == 0, err
    assert f"run directory: {name}-2" in out and Checkpoint.load(tmp_path / f"{name}-2" / "checkpoint.npz")
    assert list((tmp_path / name).iterdir()) == []  # the other run's folder untouched
    status, _, err = cli(capsys, *train_args(tmp_path / "nowhere", "--epochs", "1"))
    assert status == 2 and not (tmp_path / f"{name}-3").exists()  # a run that wrote nothing leaves no folder
    shutil.rmtree(tmp_path / "runs")
    status, _, err = cli(capsys, *train_args(tmp_path / "nowhere", "--epochs", "1"))
    assert status == 2 and not (tmp_path / "runs").exists()  # nor the runs folder it made for it
    from distnet.commands.train import load_data
    monkeypatch.setattr("distnet.commands.train.load_data", interrupt)
    status, _, err = cli(capsys, *train_args(data, "--epochs", "1"))
    assert status == 130 and err == "\ndistnet: interrupted\n"  # no advice to reuse a folder that is gone
    monkeypatch.setattr("distnet.commands.train.load_data", load_data)
    monkeypatch.setattr("distnet.progress.Reporter", lambda: InterruptedInEpoch(1))
    status, _, err = cli(capsys, *train_args(data, "--epochs", "1"))  # its config.json written, then stopped
    assert status == 130 and err == "\ndistnet: interrupted\n" and not (tmp_path / "runs").exists()
    monkeypatch.setattr("distnet.progress.Reporter", Reporter)
    (tmp_path / "runs").symlink_to(tmp_path / "gone")
    status, _, err = cli(capsys, *train_args(data, "--epochs", "1"))
    assert_clean_error(status, err, f"cannot create the run directory {name} (runs is a symbolic link to "
                                    f"{tmp_path / 'gone'}, which does not exist)")
    (tmp_path / "runs").unlink()
    (tmp_path / "runs").write_text("mine")
    status, _, err = cli(capsys, *train_args(data, "--epochs", "1"))
    assert_clean_error(status, err, f"cannot create the run directory {name} (runs is a file, not a folder)")


def test_the_advice_names_a_run_directory_that_begins_with_a_dash_so_that_no_command_takes_it_for_an_option(
        capsys, data, tmp_path, monkeypatch):
    monkeypatch.setattr("distnet.progress.Reporter", lambda: InterruptedInEpoch(2))
    status, _, err = cli(capsys, *train_args(data, "--run-dir=-run", "--epochs", "3"))
    assert status == 130 and err == "\ndistnet: interrupted; resume with: distnet train --resume ./-run\n"
    monkeypatch.setattr("distnet.progress.Reporter", Reporter)
    status, out, err = cli(capsys, "train", "--resume", "./-run", "--data-dir", data)
    assert status == 0, err
    assert "look closer: distnet show ./-run/best.npz; distnet plot ./-run" in out


def test_a_resume_of_a_run_in_use_is_refused_before_the_data_loads(capsys, data, run, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the data was loaded")

    monkeypatch.setattr("distnet.commands.train.load_data", no_data)
    with RunDir(run).held(create=False):  # as a process training it holds it
        status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", data, "--epochs", "5")
    assert_clean_error(status, err, f"{run} is in use: another process is training this run")


def test_the_resume_of_a_run_that_ended_mends_a_history_cut_short(capsys, run, good_data):
    intact = (run / "history.jsonl").read_text()
    (run / "history.jsonl").write_text(intact[:-20])  # killed as it wrote the last line
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", good_data, "--quiet")
    assert status == 0 and "had ended at epoch 2" in err, err
    assert (run / "history.jsonl").read_text() == intact


def test_a_run_is_evaluated_on_the_test_set_of_the_data_folder_it_was_trained_from(capsys, run, good_data,
                                                                                    tmp_path):
    # Its summary scored the 300 test samples of that folder; the MNIST found elsewhere (or
    # downloaded: here the mirror refuses) would be another test set, scored without a word.
    status, out, err = cli(capsys, "evaluate", run)
    assert status == 0, err
    assert out.startswith(f"{run / 'best.npz'} on the mnist test set (300 samples)")
    moved = Path(shutil.copytree(good_data, tmp_path / "moved data"))
    shutil.rmtree(good_data)
    try:
        status, _, err = cli(capsys, "evaluate", run)
        assert status == 2 and err.startswith(f"distnet: warning: the run's data folder {good_data} is not there any "
                                              f"more; the test set is looked for where a new run looks (--data-dir "
                                              f"names another)\n"), err
        status, out, err = cli(capsys, "evaluate", run, "--data-dir", moved)
        assert status == 0 and "(300 samples)" in out, err
    finally:
        shutil.copytree(moved, good_data)  # the module's other tests use it


def test_validation_holds_out_as_many_samples_as_asked_and_a_resume_keeps_them(capsys, data, tmp_path):
    folder = tmp_path / "run"
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "1", "--validation", "400"))
    assert status == 0, err
    assert json.loads((folder / "config.json").read_text())["validation"] == 400
    assert Checkpoint.load(folder / "checkpoint.npz").config["validation"] == 400
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--epochs", "2", "--quiet")
    assert status == 0, err  # the run's 400 again: other samples held out would fail the run's data checksums
    status, _, err = cli(capsys, "train", "--resume", folder, "--data-dir", data, "--epochs", "3", "--validation", "9")
    assert_clean_error(status, err, "--resume continues", "so --validation cannot be given with it")
    status, _, err = cli(capsys, *train_args(data, "--run-dir", tmp_path / "big", "--validation", str(TRAIN_SAMPLES)))
    assert_clean_error(status, err, f"the training file has {TRAIN_SAMPLES} samples, too few to hold {TRAIN_SAMPLES} "
                                    f"out for validation", "distnet train --validation N")
    assert not (tmp_path / "big").exists()


def test_a_run_folder_moved_while_the_run_evaluates_is_not_made_again_by_its_best_network(capsys, data, tmp_path,
                                                                                         monkeypatch):
    from distnet.trainer import Trainer

    folder, to = tmp_path / "run", tmp_path / "moved"
    evaluate = Trainer._validation_error_rate

    def moving(self):
        error = evaluate(self)
        if folder.exists():
            folder.rename(to)  # before the stop rule writes the first best network
        return error

    monkeypatch.setattr(Trainer, "_validation_error_rate", moving)
    status, _, err = cli(capsys, *train_args(data, "--run-dir", folder, "--epochs", "2"))
    assert_clean_error(status, err, f"the run directory {folder} was moved to {to} while the run trained")
    assert not folder.exists()


def test_the_resume_of_a_run_that_ended_writes_a_history_removed_since_again(capsys, run, good_data):
    intact = (run / "history.jsonl").read_text()
    (run / "history.jsonl").unlink()
    status, _, err = cli(capsys, "train", "--resume", run, "--data-dir", good_data, "--quiet")
    assert status == 0 and "had ended at epoch 2" in err, err
    assert (run / "history.jsonl").read_text() == intact
