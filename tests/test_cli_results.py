"""What a user sees: `distnet train`'s output, and `evaluate`, `show`, `predict` and `plot` run on
networks really trained by `distnet train` on real MNIST and Fashion-MNIST, checked value by value
against the same numbers computed here directly."""
import contextlib
import errno
import importlib.util
import io
import json
import re
import shutil
from pathlib import Path
import struct
import sys
import warnings

import numpy as np
import pytest

from distnet import ConfigError, Dense, Network
from distnet.checkpoint import Checkpoint
from distnet.cli import main
from distnet.data import load_dataset, render_digit, write_idx
from distnet.data.datasets import FASHION_CLASSES
from distnet.metrics import confident_mistakes

pytestmark = pytest.mark.slow


def run_cli(capsys, *argv):
    """Exit status, stdout, stderr of one `distnet` command run in this process."""
    capsys.readouterr()
    try:
        status = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's usage errors
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """The tuned preset (augmentation, cosine schedule) for 2 epochs, with JSON-lines output."""
    run_dir = tmp_path_factory.mktemp("cli") / "mnist-run"
    out = io.StringIO()  # capsys is per test; a module fixture captures by hand
    with contextlib.redirect_stdout(out):
        assert main(["train", "--workers", "0", "--preset", "tuned", "--epochs", "2", "--eval-every", "1",
                     "--run-dir", str(run_dir), "--json"]) == 0
    return run_dir, [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    """The seed preset for 1 epoch on Fashion-MNIST, quietly, with augmentation and a schedule added."""
    run_dir = tmp_path_factory.mktemp("cli") / "fashion-run"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["train", "--workers", "0", "--dataset", "fashion-mnist", "--epochs", "1",
                     "--eval-every", "1", "--run-dir", str(run_dir), "--quiet", "--augment",
                     "--schedule", "cosine"]) == 0
    return run_dir, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def mnist_test():
    return load_dataset("mnist", validation=0, download=False).test


@pytest.fixture(scope="module")
def fashion_test():
    return load_dataset("fashion-mnist", validation=0, download=False).test


# -- train ---------------------------------------------------------------------------------------
def test_train_json_lines_tell_the_whole_run(mnist_run, mnist_test):
    run_dir, events = mnist_run
    kinds = [e["event"] for e in events]
    assert kinds == ["start", "evaluation", "evaluation", "end", "summary"]
    start, first, second, end, summary = events
    assert start["sizes"] == [784, 50, 10] and start["steps_per_epoch"] == 50_000 // 64
    assert start["schedule"]["name"] == "cosine" and start["augmentation"]["name"] == "random_affine"
    # --workers 0: no gradient worker, the whole batch (one shard) in this process.
    assert (start["distributed"], start["workers"], start["shards"], summary["workers"]) == (False, 0, 1, 0)
    # The cosine schedule over 2 epochs: the full rate, then half of it.
    assert [first["learning_rate"], second["learning_rate"]] == pytest.approx([3e-3, 1.5e-3])
    assert summary["best_epoch"] == min((first, second), key=lambda e: e["validation_error"])["epoch"]
    assert summary["validation_error"] == end["best_error"] == min(first["validation_error"], second["validation_error"])
    best = Network.load(summary["best_network"])
    assert summary["test_error"] == best.error_rate(mnist_test.images, mnist_test.labels) < 0.06
    confusion = np.array(summary["test"]["confusion"])
    assert confusion.sum() == 10_000 and 1 - np.trace(confusion) / 10_000 == pytest.approx(summary["test_error"])
    assert json.loads((run_dir / "summary.json").read_text())["test_error"] == summary["test_error"]


def test_a_resume_of_an_ended_run_tells_its_own_summary(capsys, mnist_run, tmp_path, monkeypatch):
    """It trains nothing (no start, no evaluation), and its summary event is summary.json, which
    stays: the event was rebuilt, with the resume's seconds and paths (an audit of the JSON)."""
    run = shutil.copytree(mnist_run[0], tmp_path / "copy")
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(capsys, "train", "--resume", "copy", "--json")
    assert status == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["end", "summary"]
    assert {k: v for k, v in events[1].items() if k != "event"} == json.loads((run / "summary.json").read_text())


def test_train_json_keeps_stdout_for_its_events_while_ray_prints_there(capsys, tmp_path, monkeypatch):
    from distnet.trainer import Trainer

    fit = Trainer.fit

    def fit_while_ray_prints(self, *args, **kwargs):
        # What Ray's log thread prints on this process's stdout when a worker dies (it looks the
        # stream up as it prints).
        print("(raylet) A worker died or was killed while executing a task by an unexpected system error.")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", fit_while_ray_prints)
    status, out, err = run_cli(capsys, "train", "--workers", "0", "--epochs", "1", "--eval-every", "1",
                               "--run-dir", tmp_path / "run", "--json")
    assert status == 0
    assert [json.loads(line)["event"] for line in out.splitlines()] == ["start", "evaluation", "end", "summary"]
    assert "(raylet) A worker died" in err  # on stdout before, where a script reading JSON broke on it


def test_train_terminal_output_has_evaluation_lines_and_the_final_summary(capsys, tmp_path):
    status, out, err = run_cli(capsys, "train", "--workers", "0", "--epochs", "2", "--eval-every", "1",
                               "--run-dir", tmp_path / "my run")
    assert status == 0
    summary = json.loads((tmp_path / "my run" / "summary.json").read_text())
    history = [json.loads(line) for line in (tmp_path / "my run" / "history.jsonl").read_text().splitlines()]
    lines = err.splitlines()
    assert lines[0].startswith("training 784-36-14-10, 28,928 parameters, in this process, batch 32")
    assert lines[1] == "learning with nesterov (learning rate 0.02, momentum 0.87), L2 0.0001"
    for record, line in zip(history, lines[2:4]):
        assert line.startswith(f"epoch {record['epoch']:>3}  train error {100 * record['train_error']:5.2f}%  "
                               f"validation error {100 * record['validation_error']:5.2f}%  best "
                               f"{100 * record['best_error']:5.2f}% (epoch {record['best_epoch']})")
        assert line.endswith("epochs/min") and " lr " not in line  # no schedule, no rate shown
    assert f"test error {100 * summary['test_error']:.2f}% with the best network" in out
    assert "per-class accuracy:" in out and "confusion matrix (rows: true class, columns: predicted):" in out
    assert f"best network: {tmp_path / 'my run' / 'best.npz'}" in out
    assert out.splitlines()[-1] == (f"look closer: distnet show '{tmp_path / 'my run' / 'best.npz'}'; "
                                    f"distnet plot '{tmp_path / 'my run'}'")  # commands to paste: quoted


def test_quiet_train_prints_only_the_summary(fashion_run):
    run_dir, out, err = fashion_run
    summary = json.loads((run_dir / "summary.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert config["dataset"] == "fashion-mnist" and config["preset"] == "seed"
    assert config["schedule"]["name"] == "cosine" and config["augmentation"]["name"] == "random_affine"
    assert err == ""
    assert out.splitlines() == [  # nothing before it: the progress lines it would stand apart from are not shown
        f"test error {100 * summary['test_error']:.2f}% with the best network (epoch 1, validation error "
            f"{100 * summary['validation_error']:.2f}%)",
        f"best network: {run_dir / 'best.npz'}", f"run directory: {run_dir}"]


def test_resume_keeps_the_schedule_and_augmentation_of_the_run(capsys, fashion_run, tmp_path):
    # A finished run resumes at its end: this shows that resuming rebuilds the run's own schedule
    # and augmentation (otherwise the configurations would differ and the resume be refused), and
    # that resuming a run that ended trains nothing and leaves every file as it was.
    run_dir = tmp_path / "copy"
    shutil.copytree(fashion_run[0], run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    summary = json.loads((run_dir / "summary.json").read_text())
    status, out, err = run_cli(capsys, "train", "--resume", run_dir, "--quiet")
    assert status == 0, err
    assert err == (f"distnet: warning: {run_dir} had ended at epoch {summary['epochs']} (max epochs): nothing left "
                   f"to train; to train longer, resume it with more epochs (--epochs with --resume; fit(epochs=...) in Python)\n")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    assert f"test error {100 * summary['test_error']:.2f}% with the best network (epoch {summary['best_epoch']}, " \
           f"validation error {100 * summary['validation_error']:.2f}%)" in out


def test_resume_with_more_epochs_trains_a_run_that_ended_at_its_maximum_on(capsys, fashion_run, tmp_path):
    run_dir = tmp_path / "longer"
    shutil.copytree(fashion_run[0], run_dir)
    status, out, err = run_cli(capsys, "train", "--resume", run_dir, "--epochs", "2", "--checkpoint-every", "1000",
                               "--quiet")
    assert (status, err) == (0, "")
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 2
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    before_end = Checkpoint.load(run_dir / "checkpoint.prev.npz")
    assert (before_end.epoch, before_end.step) == (1, 1000)  # of 1562 steps in epoch 2
    # The new total and checkpoint interval are the run's now (later resumes keep them): resumed as it is, it has ended.
    assert {k: json.loads((run_dir / "config.json").read_text())[k] for k in ("epochs", "checkpoint_every")} == \
           {"epochs": 2, "checkpoint_every": 1000}
    status, out, err = run_cli(capsys, "train", "--resume", run_dir, "--quiet")
    assert status == 0 and err.startswith(f"distnet: warning: {run_dir} had ended at epoch 2 (max epochs)")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    status, out, err = run_cli(capsys, "train", "--resume", run_dir, "--epochs", "1", "--quiet")
    assert (status, err) == (2, f"distnet: error: {run_dir} has trained 2 epochs, more than the 1 asked for; "
                                f"resume it with a larger number of epochs\n")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_a_float64_run_trains_and_is_evaluated_on_float64_pixels(capsys, tmp_path, monkeypatch):
    import distnet.data

    loaded = []
    for loader in ("load_dataset", "load_test_set"):  # train loads the data set, evaluate its test set alone
        load = getattr(distnet.data, loader)
        monkeypatch.setattr(distnet.data, loader,
                            lambda *a, load=load, **kw: loaded.append(kw["dtype"]) or load(*a, **kw))
    status, out, _ = run_cli(capsys, "train", "--workers", "0", "--dtype", "float64", "--epochs", "1",
                             "--eval-every", "1", "--run-dir", tmp_path / "run", "--json")
    assert status == 0 and Network.load(tmp_path / "run").dtype == np.float64
    status, evaluated, _ = run_cli(capsys, "evaluate", tmp_path / "run", "--json")
    assert status == 0 and json.loads(evaluated)["error_rate"] == json.loads(out.splitlines()[-1])["test_error"]
    assert loaded == [np.float64, np.float64]  # the original's byte / 255.0, not float32 quotients widened


def test_train_builds_the_network_the_options_describe_on_a_preset(capsys, tmp_path):
    status, out, err = run_cli(capsys, "train", "--workers", "0", "--preset", "seed", "--hidden", "20,10",
                               "--activation", "tanh", "--cost", "cross_entropy", "--l2", "0", "--epochs", "1",
                               "--eval-every", "1", "--run-dir", tmp_path / "run")
    assert status == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert [(layer["size"], layer["activation"]["name"]) for layer in config["network"]["layers"]] == [
        (20, "tanh"), (10, "tanh"), (10, "softmax")]  # the preset's output layer stays
    assert config["network"]["cost"] == {"name": "cross_entropy"} and config["l2"] == 0
    assert config["optimizer"] == {"name": "nesterov", "learning_rate": 0.02, "momentum": 0.87}  # the rest: seed's
    assert err.splitlines()[0].startswith("training 784-20-10-10, 16,020 parameters")
    assert Network.load(tmp_path / "run").sizes == [784, 20, 10, 10]
    status, _, err = run_cli(capsys, "train", "--workers", "0", "--hidden", "none", "--epochs", "1",
                             "--run-dir", tmp_path / "linear")
    assert status == 0 and "training 784-10, 7,850 parameters" in err  # no hidden layer: a linear classifier
    for wrong, message in (("0,5", "every layer needs at least 1 neuron, got 0,5"),
                           ("128;64", "expected sizes such as 128,64 (or none), got '128;64'")):
        status, _, err = run_cli(capsys, "train", "--hidden", wrong, "--run-dir", tmp_path / "never")
        assert status == 2 and f"argument --hidden: {message}" in err
    assert not (tmp_path / "never").exists()


# -- evaluate ------------------------------------------------------------------------------------
def test_evaluate_reports_the_test_error_of_the_model(capsys, mnist_run, mnist_test):
    run_dir, events = mnist_run
    status, out, _ = run_cli(capsys, "evaluate", run_dir / "best.npz", "--json")
    result = json.loads(out)
    assert status == 0 and result["error_rate"] == events[-1]["test_error"]
    assert result["per_class_accuracy"] == events[-1]["test"]["per_class_accuracy"]


def test_evaluate_names_fashion_classes(capsys, fashion_run, fashion_test):
    run_dir, _, _ = fashion_run
    status, out, _ = run_cli(capsys, "evaluate", run_dir / "best.npz", "--dataset", "fashion-mnist")
    best = Network.load(run_dir / "best.npz")
    assert status == 0
    assert f"error rate {100 * best.error_rate(fashion_test.images, fashion_test.labels):.2f}%" in out
    assert "Ankle boot" in out and "T-shirt/top" in out
    # Each row names its class with the number that heads the class's column.
    matrix = out[out.index("confusion matrix"):].splitlines()
    assert matrix[1].split() == [str(i) for i in range(10)]
    assert [row[:15] for row in matrix[2:]] == [f"  {i} {name:<11}" for i, name in enumerate(fashion_test.classes)]


def test_a_trained_model_records_the_data_it_was_trained_on(mnist_run, fashion_run):
    from distnet.data.datasets import FASHION_CLASSES
    from distnet.nn.network_files import saved_notes

    assert saved_notes(mnist_run[0] / "best.npz") == {"trained_on": {"name": "mnist/train",
                                                                     "classes": list("0123456789")}}
    assert saved_notes(fashion_run[0] / "best.npz") == {"trained_on": {"name": "fashion-mnist/train",
                                                                       "classes": list(FASHION_CLASSES)}}


def test_a_model_is_used_on_the_data_set_it_was_trained_on_in_its_run_directory_or_out_of_it(capsys, fashion_run,
                                                                                              tmp_path):
    run_dir, _, _ = fashion_run
    summary = json.loads((run_dir / "summary.json").read_text())
    alone = tmp_path / "alone.npz"  # a model copied out of its run directory, as models are
    alone.write_bytes((run_dir / "best.npz").read_bytes())
    for model in (run_dir / "best.npz", alone):  # no --dataset
        status, out, err = run_cli(capsys, "evaluate", model, "--json")
        assert (status, err) == (0, "")
        assert (json.loads(out)["dataset"], json.loads(out)["error_rate"]) == ("fashion-mnist", summary["test_error"])
        status, out, err = run_cli(capsys, "show", model, "--confused", 0)
        assert status == 0 and err == "" and "on the fashion-mnist test set" in out


def test_a_data_set_other_than_the_model_s_is_used_as_asked_with_a_warning(capsys, fashion_run, tmp_path):
    run_dir, _, _ = fashion_run
    alone = tmp_path / "alone.npz"
    alone.write_bytes((run_dir / "best.npz").read_bytes())
    for model in (run_dir / "best.npz", alone):
        status, out, err = run_cli(capsys, "evaluate", model, "--dataset", "mnist", "--json")
        assert status == 0 and json.loads(out)["dataset"] == "mnist"
        assert err == f"distnet: warning: {model} was trained on fashion-mnist; using it on mnist, as --dataset asks\n"
    status, _, err = run_cli(capsys, "evaluate", alone, "--dataset", "fashion-mnist", "--json")
    assert (status, err) == (0, "")  # the data set it was trained on: nothing to say


def test_a_model_that_records_no_data_set_is_used_on_mnist_and_says_so(capsys, mnist_run, mnist_test, tmp_path):
    plain = Network.load(mnist_run[0] / "best.npz").save(tmp_path / "plain.npz")  # saved without notes
    status, out, err = run_cli(capsys, "evaluate", plain, "--json")
    assert status == 0 and json.loads(out)["dataset"] == "mnist"
    assert err == (f"distnet: warning: {plain} does not record the data set it was trained on, so mnist is "
                   f"assumed; --dataset chooses another\n")
    assert json.loads(out)["error_rate"] == Network.load(plain).error_rate(mnist_test.images, mnist_test.labels)
    status, _, err = run_cli(capsys, "evaluate", plain, "--dataset", "mnist")
    assert (status, err) == (0, "")  # chosen: nothing to say
    custom = Network.load(plain).save(tmp_path / "custom.npz", notes={"trained_on": {"name": "scans/train"}})
    status, _, err = run_cli(capsys, "evaluate", custom)
    assert status == 0 and err == (f"distnet: warning: {custom} was trained on 'scans/train', not a data set "
                                   f"distnet knows, so mnist is assumed; --dataset chooses another\n")


def test_evaluate_show_and_plot_need_only_the_two_test_files(capsys, fashion_run, fashion_test, tmp_path,
                                                             monkeypatch):
    run_dir, _, _ = fashion_run
    summary = json.loads((run_dir / "summary.json").read_text())
    monkeypatch.delenv("DISTNET_DATA_DIR", raising=False)  # nowhere else to find the training files
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    data = tmp_path / "data"  # the test files alone, written back from the test set as loaded
    write_idx(data / "t10k-images-idx3-ubyte", np.rint(fashion_test.images * 255).astype(np.uint8).reshape(-1, 28, 28))
    write_idx(data / "t10k-labels-idx1-ubyte", fashion_test.labels.astype(np.uint8))
    alone = tmp_path / "alone.npz"
    alone.write_bytes((run_dir / "best.npz").read_bytes())
    status, out, err = run_cli(capsys, "evaluate", alone, "--data-dir", data, "--no-download", "--json")
    assert (status, err) == (0, "")
    assert (json.loads(out)["dataset"], json.loads(out)["error_rate"]) == ("fashion-mnist", summary["test_error"])
    status, out, err = run_cli(capsys, "show", alone, "--data-dir", data, "--no-download", "--confused", 1)
    assert status == 0 and err == "" and "test image" in out
    if importlib.util.find_spec("matplotlib"):
        status, out, err = run_cli(capsys, "plot", run_dir, "--data-dir", data, "--no-download", "--out",
                                   tmp_path / "plots")
        assert status == 0 and err == "" and len(out.split()) == 3
    # Training needs the four: the two that are there are not mistaken for all.
    status, _, err = run_cli(capsys, "train", "--workers", "0", "--dataset", "fashion-mnist", "--data-dir", data,
                             "--no-download", "--run-dir", tmp_path / "run")
    assert status == 2 and f"{data} lacks train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]" in err
    (data / "t10k-labels-idx1-ubyte").unlink()
    status, _, err = run_cli(capsys, "evaluate", alone, "--data-dir", data, "--no-download")
    assert status == 2 and "Looked for t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] in" in err
    assert f"{data} lacks t10k-labels-idx1-ubyte[.gz]" in err and "put the two test files in" in err


def test_a_run_directory_stands_for_its_best_network(capsys, fashion_run, tmp_path):
    run_dir, _, _ = fashion_run
    summary = json.loads((run_dir / "summary.json").read_text())
    status, out, _ = run_cli(capsys, "evaluate", run_dir, "--json")
    assert status == 0
    assert (json.loads(out)["model"], json.loads(out)["error_rate"]) == (str(run_dir / "best.npz"),
                                                                          summary["test_error"])
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in ("evaluate", "show"):
        status, _, err = run_cli(capsys, command, empty)
        assert status == 2 and err == (f"distnet: error: {empty} is a folder without a best.npz; give a model "
                                       f"file, such as RUN_DIR/best.npz\n")
    # (plot takes a run's best.npz for the run: test_plot_of_a_run_s_best_network_plots_the_run_...)


# -- show ----------------------------------------------------------------------------------------
def test_show_picks_the_surest_mistakes(capsys, mnist_run, mnist_test):
    run_dir, _ = mnist_run
    outputs = Network.load(run_dir / "best.npz").predict(mnist_test.images)
    status, out, _ = run_cli(capsys, "show", run_dir / "best.npz", "--confused", 4, "--json")
    shown = json.loads(out)["confused"]
    assert status == 0 and len(shown) == 4
    predicted = outputs.argmax(axis=1)
    surest_wrong = sorted(np.flatnonzero(predicted != mnist_test.labels), key=lambda i: -outputs[i, predicted[i]])
    assert [s["index"] for s in shown] == surest_wrong[:4]
    for s in shown:
        assert s["label"] == mnist_test.labels[s["index"]] != s["predicted"] == predicted[s["index"]]
        assert s["probabilities"] == pytest.approx(outputs[s["index"]], abs=1e-6)


def test_show_draws_each_digit_beside_its_probability_table(capsys, mnist_run, mnist_test):
    run_dir, _ = mnist_run
    network = Network.load(run_dir / "best.npz")
    outputs = network.predict(mnist_test.images)
    first = confident_mistakes(outputs, mnist_test.labels, 1)[0]
    status, out, _ = run_cli(capsys, "show", run_dir / "best.npz", "--confused", 1)
    lines = out.splitlines()
    assert "the misclassified test image the network is surest about:" in lines  # one: not "the 1 ... images"
    error = network.error_rate(mnist_test.images, mnist_test.labels)
    assert status == 0 and lines[0].endswith(f"on the mnist test set: error rate {100 * error:.2f}% "
                                             f"({round(error * 10_000)} of 10000 wrong)")
    label, guess = mnist_test.labels[first], outputs[first].argmax()
    picture = render_digit(mnist_test.images[first], "").split("\n")[1:]
    start = lines.index(f"#1  test image {first}: label {label}, predicted {guess}")
    drawn = lines[start + 1:start + 1 + len(picture)]
    assert [line[:30] for line in drawn] == picture  # the original's picture, unchanged
    table = [line[33:] for line in drawn[1:12]]
    assert table[0] == "class  P"
    assert table[1 + guess] == f"{guess:<5}  {outputs[first, guess]:.3f}  <- network"
    assert table[1 + label] == f"{label:<5}  {outputs[first, label]:.3f}  <- label"
    assert drawn[12][33:] == "Σ      1.000"


def test_show_threshold_reports_not_recognized_inputs(capsys, mnist_run, mnist_test):
    run_dir, _ = mnist_run
    outputs = Network.load(run_dir / "best.npz").predict(mnist_test.images)
    sure = outputs.max(axis=1) >= 0.95
    wrong = sure & (outputs.argmax(axis=1) != mnist_test.labels)
    status, out, _ = run_cli(capsys, "show", run_dir / "best.npz", "--threshold", 0.95, "--confused", 0, "--json")
    recognition = json.loads(out)["recognition"]
    assert status == 0
    assert recognition["recognized"] == sure.sum() and recognition["not_recognized"] == (~sure).sum() > 0
    assert recognition["wrong"] == wrong.sum()
    status, out, _ = run_cli(capsys, "show", run_dir / "best.npz", "--threshold", 0.95, "--confused", 0)
    assert f"threshold 0.95: {sure.sum():,} of 10,000 recognized" in out
    assert f"{(~sure).sum():,} not recognized" in out


def test_show_on_fashion_names_each_class_with_its_number(capsys, fashion_run):
    run_dir, _, _ = fashion_run
    status, out, _ = run_cli(capsys, "show", run_dir / "best.npz", "--dataset", "fashion-mnist", "--confused", 1)
    assert status == 0 and re.search(r"test image \d+: label \d [A-Z][a-z/ -]+, predicted \d [A-Z]", out)
    assert "|   9 Ankle boot   " in out and "|   0 T-shirt/top  " in out and "<- network" in out


def test_show_refuses_a_bad_threshold(capsys, mnist_run):
    status, _, err = run_cli(capsys, "show", mnist_run[0] / "best.npz", "--threshold", 1.5)
    assert status == 2 and "argument --threshold: must be a probability in (0, 1], got 1.5" in err
    status, _, err = run_cli(capsys, "show", mnist_run[0] / "best.npz", "--threshold", "90")
    assert status == 2 and "must be a probability in (0, 1], got 90 (a percentage? 90 % is 0.9)" in err
    for command in (["show"], ["predict", mnist_run[0] / "best.npz"]):
        status, _, err = run_cli(capsys, *command, mnist_run[0] / "best.npz", "--threshold", "high")
        assert status == 2 and "argument --threshold: expected a probability, got 'high'" in err


# -- predict -------------------------------------------------------------------------------------
def test_predict_npy_and_idx_give_the_network_s_answers(capsys, mnist_run, mnist_test, tmp_path):
    run_dir, _ = mnist_run
    pixels = np.rint(mnist_test.images[:5] * 255).astype(np.uint8).reshape(5, 28, 28)
    np.save(tmp_path / "five.npy", pixels)
    np.save(tmp_path / "one.npy", mnist_test.images[0])  # floats in [0, 1], 784 values
    np.save(tmp_path / "five-int64.npy", pixels.astype(np.int64))  # bytes as NumPy's default integers
    write_idx(tmp_path / "five-idx3-ubyte", pixels)
    expected = Network.load(run_dir / "best.npz").predict(pixels.reshape(5, 784) / np.float32(255))
    # options may stand between the file names too
    status, out, _ = run_cli(capsys, "predict", run_dir / "best.npz", tmp_path / "five.npy", "--json",
                             tmp_path / "five-idx3-ubyte", "--invert", "no", tmp_path / "one.npy",
                             tmp_path / "five-int64.npy")
    results = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and len(results) == 16
    assert [r["file"] for r in results[:2]] == [f"{tmp_path / 'five.npy'}[0]", f"{tmp_path / 'five.npy'}[1]"]
    assert results[10]["file"] == str(tmp_path / "one.npy")
    for r, want in zip(results, [*expected, *expected, expected[0], *expected], strict=True):
        assert r["class"] == want.argmax() and r["probabilities"] == pytest.approx(want, abs=1e-6)
    status, out, _ = run_cli(capsys, "predict", run_dir / "best.npz", tmp_path / "one.npy")
    guess = expected[0].argmax()
    assert out.splitlines()[0] == f"{tmp_path / 'one.npy'}: {guess}  (p {expected[0][guess]:.3f})"


def test_predict_threshold_says_not_recognized(capsys, mnist_run, tmp_path):
    np.save(tmp_path / "blank.npy", np.full((28, 28), 0.5, np.float32))
    output = Network.load(mnist_run[0] / "best.npz").predict(np.full((1, 784), 0.5, np.float32))[0]
    threshold = float(output.max()) + 1e-3
    status, out, _ = run_cli(capsys, "predict", mnist_run[0] / "best.npz", tmp_path / "blank.npy",
                             "--threshold", min(threshold, 1.0))
    assert status == 0 and "not recognized" in out.splitlines()[0]
    status, out, _ = run_cli(capsys, "predict", mnist_run[0] / "best.npz", tmp_path / "blank.npy",
                             "--threshold", min(threshold, 1.0), "--json")
    assert status == 0 and json.loads(out)["class"] is None  # a script must not read a class into it


def test_predict_names_fashion_classes(capsys, fashion_run, fashion_test, tmp_path):
    run_dir, _, _ = fashion_run
    np.save(tmp_path / "items.npy", fashion_test.images[:3])
    expected = Network.load(run_dir / "best.npz").predict(fashion_test.images[:3]).argmax(axis=1)
    alone = tmp_path / "alone.npz"  # out of its run directory: the model's own record names the classes
    alone.write_bytes((run_dir / "best.npz").read_bytes())
    for model, dataset in ((run_dir / "best.npz", ["--dataset", "fashion-mnist"]), (run_dir / "best.npz", []),
                           (alone, [])):
        status, out, err = run_cli(capsys, "predict", model, tmp_path / "items.npy", *dataset, "--json")
        assert status == 0 and err == ""
        assert [json.loads(line)["name"] for line in out.splitlines()] == [fashion_test.classes[i] for i in expected]
    # The names a model records, whatever its data: a data set of your own.
    net = Network.load(alone)
    labels = [f"kind {i}" for i in range(10)]
    custom = net.save(tmp_path / "custom.npz", notes={"trained_on": {"name": "scans/train", "classes": labels}})
    status, out, err = run_cli(capsys, "predict", custom, tmp_path / "items.npy", "--json")
    assert (status, err) == (0, "")
    assert [json.loads(line)["name"] for line in out.splitlines()] == [labels[i] for i in expected]
    status, out, _ = run_cli(capsys, "predict", run_dir / "best.npz", tmp_path / "items.npy")
    assert out.splitlines()[0].startswith(f"{tmp_path / 'items.npy'}[0]: {expected[0]} "
                                          f"{fashion_test.classes[expected[0]]}  (p ")


@pytest.mark.parametrize("content,message", [
    (np.zeros((3, 10)), r"expected 28x28 images .* got shape \(3, 10\)"),
    (np.full((28, 28), 200.0), r"float pixels must lie in \[0, 1\] \(got 200..200\); divide bytes by 255"),
    (np.full((2, 784), np.nan), r"1568 pixels are NaN or infinite; pixels must be floats in \[0, 1\]"),
    (np.zeros((0, 784), np.float32), r"holds no images \(shape \(0, 784\)\)"),
    (np.arange(10, dtype=np.uint8), r"got shape \(10,\) \(one number per sample: a labels file\?\)"),
    (np.full((28, 28), 256), r"integer pixels must be bytes 0..255, got 256..256"),
    (np.full((28, 28), -1, np.int16), r"integer pixels must be bytes 0..255, got -1..-1"),
    (np.full((28, 28), True), r"pixels must be bytes \(integers 0..255\) or floats in \[0, 1\], got bool"),
])
def test_predict_explains_unusable_arrays(capsys, mnist_run, tmp_path, content, message):
    np.save(tmp_path / "bad.npy", content)
    status, _, err = run_cli(capsys, "predict", mnist_run[0] / "best.npz", tmp_path / "bad.npy")
    assert status == 2 and re.search(message, err)


def npy_header(text: str) -> bytes:
    text += " " * (63 - (10 + len(text)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


@pytest.mark.parametrize("content", [
    b"",  # empty
    b"\x93NUMPY\x01\x00\x10\x00{{{{{{{{{{{{{{{\n",  # a header that is no Python literal
    npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 784), }") + b"abc",  # 300 TB
    npy_header("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }") + b"\x80\x04",  # pickled objects
])
def test_predict_refuses_damaged_npy_files_in_one_line_and_allocates_nothing_they_claim(capsys, mnist_run, tmp_path,
                                                                                       content):
    (tmp_path / "bad.npy").write_bytes(content)
    status, _, err = run_cli(capsys, "predict", mnist_run[0] / "best.npz", tmp_path / "bad.npy")
    assert status == 2 and err.startswith(f"distnet: error: {tmp_path / 'bad.npy'}: not a readable .npy array (")
    assert err.count("\n") == 1


def test_predict_png_dark_on_light_is_inverted_like_mnist(capsys, mnist_run, mnist_test, tmp_path):
    image = pytest.importorskip("PIL.Image")
    digit = np.rint(mnist_test.images[1] * 255).astype(np.uint8).reshape(28, 28)
    image.fromarray(255 - digit).save(tmp_path / "digit.png")  # black ink on white paper
    expected = Network.load(mnist_run[0] / "best.npz").predict(digit.reshape(1, 784) / np.float32(255))[0]
    status, out, _ = run_cli(capsys, "predict", mnist_run[0] / "best.npz", tmp_path / "digit.png", "--json")
    result = json.loads(out)
    assert status == 0 and result["class"] == expected.argmax()
    assert result["probabilities"] == pytest.approx(expected, abs=1e-5)


def test_predict_without_pillow_says_what_to_install(capsys, mnist_run, tmp_path, monkeypatch):
    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    status, _, err = run_cli(capsys, "predict", mnist_run[0] / "best.npz", tmp_path / "digit.png")
    assert status == 2 and "needs Pillow: pip install pillow" in err


# -- plot ----------------------------------------------------------------------------------------
def png_size(path):
    """(width, height) from a PNG's IHDR chunk."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("run", ["mnist_run", "fashion_run"])
def test_plot_writes_three_pngs_of_the_expected_size(capsys, request, tmp_path, run):
    pytest.importorskip("matplotlib")
    run_dir = request.getfixturevalue(run)[0]
    status, out, _ = run_cli(capsys, "plot", run_dir, "--out", tmp_path)
    assert status == 0
    assert out.split() == [str(tmp_path / name) for name in
                           ("learning_curves.png", "confusion_matrix.png", "misclassified.png")]
    assert png_size(tmp_path / "learning_curves.png") == (900, 600)
    assert png_size(tmp_path / "confusion_matrix.png") == (800, 800)
    assert png_size(tmp_path / "misclassified.png") == (900, 1000)


def test_plot_of_a_run_trained_without_validation_set_draws_its_training(capsys, mnist, tmp_path):
    pytest.importorskip("matplotlib")
    from distnet import Dense, Nesterov, Trainer

    net = Network([Dense(8, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=3)
    Trainer(net, Nesterov(0.02), seed=1).fit(mnist.train.subset(slice(0, 640)), None, epochs=2, eval_every=1,
                                             run_dir=tmp_path / "run")
    status, out, _ = run_cli(capsys, "plot", tmp_path / "run", "--out", tmp_path / "plots")
    assert status == 0 and png_size(tmp_path / "plots" / "learning_curves.png") == (900, 600)


def test_plot_says_which_line_of_the_history_is_broken_and_refuses_a_file_for_out(capsys, mnist_run, tmp_path):
    pytest.importorskip("matplotlib")
    run = Path(shutil.copytree(mnist_run[0], tmp_path / "run"))
    complete = (run / "history.jsonl").read_text()
    lines = len(complete.splitlines()) + 1
    with open(run / "history.jsonl", "a") as history:
        history.write('{"epoch": 9, "train_err')  # a write cut short: the records before it are drawn
    status, _, err = run_cli(capsys, "plot", run, "--out", tmp_path / "cut")
    assert status == 0 and err == (f"distnet: warning: {run / 'history.jsonl'}: the last line (line {lines}) was cut "
                                   f"short as it was written: the evaluations before it are drawn (a resume of the "
                                   f"run rewrites the file)\n")
    assert png_size(tmp_path / "cut" / "learning_curves.png") == (900, 600)
    (run / "history.jsonl").write_text(complete + '{"epoch": 9, "train_err\n' + complete)  # broken, not cut short
    status, _, err = run_cli(capsys, "plot", run)
    assert status == 2 and err == f"distnet: error: {run / 'history.jsonl'}: line {lines} is not valid JSON (a resume of the run, distnet train --resume {run}, writes the file again from its checkpoint)\n"
    (run / "history.jsonl").write_text(complete + "[" * 100_000 + "\n" + complete)  # RecursionError's traceback before
    status, _, err = run_cli(capsys, "plot", run)
    assert status == 2 and err == f"distnet: error: {run / 'history.jsonl'}: line {lines} is not valid JSON (a resume of the run, distnet train --resume {run}, writes the file again from its checkpoint)\n"
    (run / "history.jsonl").write_bytes(complete.encode() + b'\xff\xfe{"epoch": 9}\n' + complete.encode())
    status, _, err = run_cli(capsys, "plot", run)  # not text at all: a UnicodeDecodeError's traceback before
    assert status == 2 and err == f"distnet: error: {run / 'history.jsonl'}: line {lines} is not valid JSON (a resume of the run, distnet train --resume {run}, writes the file again from its checkpoint)\n"
    from distnet.commands.plot import read_history

    (run / "history.jsonl").write_text(complete + '{"epoch": 9, "train_err\n')  # broken, the last, but ended
    with pytest.raises(ConfigError, match=rf"line {lines} is not valid JSON \(a resume of the run"):
        read_history(run / "history.jsonl")
    for other in ('{"epoch": 9}', "[1, 2]", '{"epoch": 9, "train_error": 0.1}'):  # KeyError, TypeError before
        (run / "history.jsonl").write_text((mnist_run[0] / "history.jsonl").read_text() + other + "\n")
        status, _, err = run_cli(capsys, "plot", run)
        assert status == 2 and err == (f"distnet: error: {run / 'history.jsonl'}: line {lines} is not an evaluation "
                                       f"record (a JSON object with numbers for epoch, train_error, validation_error), "
                                       f"so not one distnet wrote\n")
    (tmp_path / "a-file").write_text("")
    status, _, err = run_cli(capsys, "plot", mnist_run[0], "--out", tmp_path / "a-file")
    assert status == 2 and err == f"distnet: error: --out {tmp_path / 'a-file'} is a file; give a folder for the PNG files\n"


def test_plot_of_a_run_s_best_network_plots_the_run_and_another_file_of_it_names_the_run(capsys, mnist_run, tmp_path):
    """Every file was refused as "not a run directory (a file, not a folder)", where evaluate, show
    and predict take RUN_DIR/best.npz for its run."""
    pytest.importorskip("matplotlib")
    run = Path(shutil.copytree(mnist_run[0], tmp_path / "run"))
    status, out, err = run_cli(capsys, "plot", run / "best.npz")
    assert (status, err) == (0, "")
    assert out.split() == [str(run / "plots" / name) for name in
                           ("learning_curves.png", "confusion_matrix.png", "misclassified.png")]
    status, out, err = run_cli(capsys, "plot", run / "checkpoint.npz")
    assert (status, out) == (2, "") and err == (f"distnet: error: {run / 'checkpoint.npz'} is a file of the run in "
                                                f"{run}, not its best network (best.npz), which plot draws with the "
                                                f"run's learning curves: give the run directory, distnet plot {run}\n")
    (tmp_path / "best.npz").write_bytes((run / "best.npz").read_bytes())  # in no run
    status, _, err = run_cli(capsys, "plot", tmp_path / "best.npz")
    assert status == 2 and err == (f"distnet: error: {tmp_path / 'best.npz'} is not a run directory (a file, not a "
                                   f"folder); expected the folder of a run that distnet train wrote\n")


def test_plot_into_a_folder_it_cannot_write_to_says_to_give_another(capsys, mnist_run, monkeypatch):
    pytest.importorskip("matplotlib")

    def refused(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("distnet.commands.plot.save", refused)  # as in a run folder made read-only
    status, _, err = run_cli(capsys, "plot", mnist_run[0])
    assert status == 2 and err == (f"distnet: error: cannot write the plots into {mnist_run[0] / 'plots'} (Permission "
                                   f"denied): give a folder you can write to, distnet plot {mnist_run[0]} --out "
                                   f"FOLDER\n")
    # Another folder does not help where the disk is full or a size limit holds (it said so before).
    for error, fix in ((OSError(errno.ENOSPC, "No space left on device"), f"free some space, or give a folder on a "
                        f"disk with room: distnet plot {mnist_run[0]} --out FOLDER"),
                       (OSError(errno.EFBIG, "File too large"), "raise the limit on the size of the files a process "
                                                                 "writes (ulimit -f)")):
        monkeypatch.setattr("distnet.commands.plot.save", lambda *args: (_ for _ in ()).throw(error))
        status, _, err = run_cli(capsys, "plot", mnist_run[0])
        assert status == 2 and err == (f"distnet: error: cannot write the plots into {mnist_run[0] / 'plots'} "
                                       f"({error.strerror}): {fix}\n")


def test_plot_names_classes_by_number_as_the_text_does_and_ticks_whole_epochs(fashion_run, fashion_test):
    pytest.importorskip("matplotlib")
    from distnet.commands import plot
    from distnet.metrics import evaluation_of

    pyplot, network = plot.import_pyplot(), Network.load(fashion_run[0] / "best.npz")
    outputs = network.predict(fashion_test.images)
    mistakes = np.flatnonzero(outputs.argmax(axis=1) != fashion_test.labels)[:3]
    grid = plot.misclassified(pyplot, fashion_test, outputs, mistakes, "run")
    assert len(grid.axes) == 36  # a 6 x 6 grid, the cells past the mistakes left empty
    i = mistakes[0]
    assert grid.axes[0].get_title() == (f"#{i}: {fashion_test.labels[i]} → {outputs[i].argmax()}\n"
                                        f"p {outputs[i].max():.2f}")  # "Ankle boot → Sneaker" did not fit
    assert grid._suptitle.get_text().endswith("\n0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, "
                                              "6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot")
    matrix = plot.confusion_matrix(pyplot, evaluation_of(outputs, fashion_test.labels, fashion_test.classes), "run")
    assert [t.get_text() for t in matrix.axes[0].get_xticklabels()][:2] == ["0 T-shirt/top", "1 Trouser"]
    curves = plot.learning_curves(pyplot, [{"epoch": 1, "train_error": 0.2, "validation_error": 0.1}], "run")
    assert curves.axes[0].get_xticks().tolist() == [0, 1, 2]  # not 0.945, 0.96, ...
    assert [t.get_text() for t in curves.axes[0].get_legend().get_texts()] == [
        "train error (running)", "validation error", "best: 10.00% (epoch 1)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels" reached the user
        empty = plot.learning_curves(pyplot, [], "run")
    assert empty.axes[0].get_legend() is None and empty.axes[0].texts[0].get_text() == "no evaluation yet"
    for figure in (grid, matrix, curves, empty):
        pyplot.close(figure)


def test_plot_without_matplotlib_says_what_to_install(capsys, mnist_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, _, err = run_cli(capsys, "plot", mnist_run[0])
    assert status == 2 and "plotting needs matplotlib: pip install matplotlib" in err


def test_plot_refuses_a_folder_that_is_not_a_run(capsys, tmp_path, monkeypatch, mnist_run):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # the folder is checked before matplotlib is needed
    status, _, err = run_cli(capsys, "plot", tmp_path)
    assert status == 2 and "is not a run directory" in err
    shutil.copytree(mnist_run[0], tmp_path / "run")
    (tmp_path / "run" / "history.jsonl").unlink()
    status, _, err = run_cli(capsys, "plot", tmp_path / "run")
    assert status == 2 and err == (f"distnet: error: {tmp_path / 'run'} is not a run directory (no history.jsonl); "
                                   f"expected the folder of a run that distnet train wrote\n")


def test_predict_with_a_model_of_other_data_says_what_it_reads(capsys, tmp_path):
    from distnet import Dense

    net = Network([Dense(3, "softmax")], input_size=4, seed=1)  # trained on a Dataset of one's own, unnamed
    net.save(tmp_path / "own.npz", notes={"trained_on": {"name": "", "classes": ["a", "b", "c"]}})
    np.save(tmp_path / "digits.npy", np.zeros((1, 28, 28), np.float32))
    status, _, err = run_cli(capsys, "predict", tmp_path / "own.npz", tmp_path / "digits.npy")
    assert status == 2 and err == (f"distnet: error: {tmp_path / 'own.npz'} takes 4 inputs per sample, not the 784 "
                                   f"pixels of an image here: distnet's commands classify images; for a network "
                                   f"trained on data of your own, use it from Python: Network.load(path)"
                                   f".predict(rows) or .error_rate(rows, labels)\n")


@pytest.mark.parametrize("command", ["evaluate", "show", "predict"])
def test_a_model_of_other_data_that_records_none_gets_the_error_alone(capsys, tmp_path, command):
    """A warning that mnist is assumed came first, for a network that takes no image at all."""
    from distnet import Dense

    Network([Dense(2, "softmax")], input_size=2, seed=1).save(tmp_path / "xor.npz")  # no notes
    np.save(tmp_path / "digits.npy", np.zeros((1, 28, 28), np.float32))
    images = [tmp_path / "digits.npy"] if command == "predict" else []
    status, out, err = run_cli(capsys, command, tmp_path / "xor.npz", *images)
    assert (status, out) == (2, "") and err == (
        f"distnet: error: {tmp_path / 'xor.npz'} takes 2 inputs per sample, not the 784 pixels of an image here: "
        f"distnet's commands classify images; for a network trained on data of your own, use it from Python: "
        f"Network.load(path).predict(rows) or .error_rate(rows, labels)\n")


def test_a_run_stopped_before_its_first_evaluation_says_so_and_how_to_go_on(capsys, mnist, tmp_path):
    pytest.importorskip("matplotlib")
    from distnet import Dense, Nesterov, Reporter, Trainer

    class StopInEpoch2(Reporter):
        def on_steps(self, epoch, step, steps, stats, seconds):
            if epoch == 2:
                raise KeyboardInterrupt

    run = tmp_path / "my run"  # a name the shell must have quoted
    net = Network([Dense(8, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=3)
    with pytest.raises(KeyboardInterrupt):  # checkpointed after epoch 1; the first evaluation would be epoch 5's
        Trainer(net, Nesterov(0.02), seed=1).fit(mnist.train.subset(slice(0, 640)), mnist.validation.subset(
            slice(0, 100)), epochs=10, eval_every=5, run_dir=run, reporter=StopInEpoch2())
    for command in ("evaluate", "show", "plot", "predict"):
        status, _, err = run_cli(capsys, command, run, *(["digits.npy"] if command == "predict" else []))
        assert status == 2 and err == (f"distnet: error: {run} has no best network (best.npz): none yet, or the file "
                                       f"was removed; resume it to get one (from its checkpoint if it had ended): "
                                       f"fit(train, validation, run_dir='{run}', resume=True) in Python on the run's "
                                       f"data\n")  # started from Python on data of its own: continued there
    assert run_cli(capsys, "evaluate", run / "best.npz")[2] == err  # "no such model file" alone before
    for name in ("checkpoint.npz", "checkpoint.prev.npz"):
        (run / name).unlink(missing_ok=True)
    for command in ("evaluate", "show", "plot", "predict"):  # which told to resume before, but for plot
        status, _, err = run_cli(capsys, command, run, *(["digits.npy"] if command == "predict" else []))
        assert status == 2 and err.endswith("stopped before its first checkpoint, so there is nothing to resume: "
                                            f"train it anew into the same folder: fit(train, validation, "
                                            f"run_dir='{run}', ...) in Python\n")


def test_a_run_started_from_python_on_data_of_its_own_is_not_taken_for_mnist(capsys, mnist, tmp_path):
    """Resumed or plotted, it was trained on MNIST's rows ("the network does not fit the training
    data", "takes rows of 2 inputs, got data of shape (10000, 784)"), no file named."""
    from distnet import Dense, Nesterov, Trainer
    from distnet.data import Dataset

    rng = np.random.default_rng(0)
    points = rng.random((200, 2)).astype(np.float32)
    own = Dataset(points, (points.sum(axis=1) > 1).astype(int), classes=["low", "high"])
    run = tmp_path / "run"
    Trainer(Network([Dense(4, "relu"), Dense(2, "softmax")], input_size=2, seed=0), Nesterov(0.1), batch_size=10,
            seed=0).fit(own, own, epochs=2, run_dir=run)
    status, _, err = run_cli(capsys, "train", "--resume", run, "--epochs", "3")
    assert status == 2 and err == (f"distnet: error: {run} was started from Python on data of its own (its config.json "
                                   f"names no data set, and its 2-4-2 network does not take MNIST's images and "
                                   f"classes): resume it from Python, with fit(train, validation, run_dir=..., "
                                   f"resume=True) on that data\n")
    status, _, err = run_cli(capsys, "plot", run)
    assert status == 2 and err.endswith(f"distnet: error: {run / 'best.npz'} takes 2 inputs per sample, not the 784 "
                                        f"pixels of an image here: distnet's commands classify images; for a network "
                                        f"trained on data of your own, use it from Python: Network.load(path)"
                                        f".predict(rows) or .error_rate(rows, labels)\n")
    with open(run / "history.jsonl", "a") as history:
        history.write('{"epoch": 3, "train_err\n{"epoch": 4}\n')  # broken, not cut short
    status, _, err = run_cli(capsys, "plot", run)  # the command line's resume before, which refuses this run
    assert status == 2 and err == (f"distnet: error: {run / 'history.jsonl'}: line 2 is not valid JSON (a resume of "
                                   f"the run, fit(train, validation, run_dir='{run}', resume=True) in Python on the "
                                   f"run's data, writes the file again from its checkpoint)\n")
    # One that MNIST's images and classes fit is resumed on MNIST, with a warning; its checksums judge the data.
    digits = tmp_path / "digits"
    Trainer(Network([Dense(10, "softmax")], input_size=784, seed=0), Nesterov(0.02), seed=0).fit(
        mnist.train.subset(slice(0, 640)), mnist.validation.subset(slice(0, 100)), epochs=1, run_dir=digits)
    status, _, err = run_cli(capsys, "train", "--resume", digits, "--epochs", "2")
    assert status == 2 and err.startswith(f"distnet: warning: {digits} was started from Python (its config.json names "
                                          f"no data set): it is resumed on mnist, which the run's checksums compare "
                                          f"with the data it was started with\n")
    # (not "another train_samples"; and it said nothing of where the run can be resumed)
    assert err.endswith(f"distnet: error: cannot resume: the training data differ from the run's (640 samples then, "
                        f"59900 now); resume with the data the run was started with; this run was started from "
                        f"Python, perhaps on data of its own: resume it with fit(train, validation, run_dir="
                        f"'{digits}', resume=True) in Python on the run's data\n")
    # Without a validation set, which the command line always holds out, it is refused at once.
    unvalidated = tmp_path / "unvalidated"
    Trainer(Network([Dense(10, "softmax")], input_size=784, seed=0), Nesterov(0.02), seed=0).fit(
        mnist.train.subset(slice(0, 640)), None, epochs=1, run_dir=unvalidated)
    status, _, err = run_cli(capsys, "train", "--resume", unvalidated, "--epochs", "2")
    assert status == 2 and err == (f"distnet: error: {unvalidated} was started from Python without a validation set, "
                                   f"which the command line always holds out: resume it from Python, with fit(train, "
                                   f"None, run_dir=..., resume=True) on its data\n")


def test_a_run_started_from_python_on_mnist_with_a_validation_set_of_its_size_is_resumed_on_it(capsys, tmp_path):
    """The command line held out its default 10,000 (config.json's validation_samples unread), and the
    data differed: no command line could resume the run."""
    from distnet import Dense, Nesterov, Trainer, load_mnist

    splits = load_mnist(download=False, validation=1000)
    run = tmp_path / "run"
    Trainer(Network([Dense(10, "softmax")], input_size=784, seed=0), Nesterov(0.02), seed=0).fit(
        splits.train, splits.validation, epochs=1, run_dir=run)
    status, _, err = run_cli(capsys, "train", "--resume", run, "--epochs", "2", "--quiet")
    assert status == 0, err
    assert [record["epoch"] for record in map(json.loads, (run / "history.jsonl").read_text().splitlines())] == [1, 2]


@pytest.mark.parametrize("threshold, accepted", [("0", False), ("1e-9", True), ("1", True), ("1.01", False)])
def test_a_threshold_is_a_probability_above_0(capsys, tmp_path, threshold, accepted):
    """0 would flag no sample at all as uncertain, whatever the network says."""
    model = Network([Dense(10, "softmax")], input_size=784, seed=0).save(tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", np.zeros((28, 28), np.float32))
    status, _, err = run_cli(capsys, "predict", model, tmp_path / "x.npy", "--threshold", threshold)
    assert (status == 0) if accepted else (status == 2 and err.startswith(
        f"distnet: error: argument --threshold: must be a probability in (0, 1], got {threshold} ")), err


def test_predict_s_dataset_option_names_the_classes_over_those_the_model_records(capsys, tmp_path):
    digits = {"name": "digits", "classes": [str(i) for i in range(10)]}
    model = Network([Dense(10, "softmax")], input_size=784, seed=0).save(tmp_path / "m.npz",
                                                                       notes={"trained_on": digits})
    np.save(tmp_path / "x.npy", np.zeros((28, 28), np.uint8))
    status, out, _ = run_cli(capsys, "predict", model, tmp_path / "x.npy", "--json", "--dataset", "fashion-mnist")
    assert status == 0 and json.loads(out)["name"] in FASHION_CLASSES


def test_a_run_s_data_folder_is_used_for_its_own_data_set_only(tmp_path):
    """A model of a run trained on Fashion-MNIST from a folder, scored on MNIST: MNIST is not
    looked for in the Fashion-MNIST folder."""
    from distnet.commands.common import _run_data_dir
    from distnet.rundir import REQUIRED_CONFIG

    folder = tmp_path / "fashion"
    folder.mkdir()
    config = {key: 1 for key in REQUIRED_CONFIG} | {"dataset": "fashion-mnist", "data_dir": str(folder)}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert _run_data_dir(tmp_path / "best.npz", "fashion-mnist") == folder
    assert _run_data_dir(tmp_path / "best.npz", "mnist") is None
