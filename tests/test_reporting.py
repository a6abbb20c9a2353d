"""Metrics on known outputs, and the terminal / JSON-lines progress reporters on known events."""
import io
import json

import numpy as np
import pytest

from distnet import ConfigError, Dataset, Dense, Nesterov, Network, Trainer
from distnet.fit_result import FitResult
from distnet.metrics import (confident_mistakes, evaluate, evaluation_of, probability_table, recognition,
                             recognized)
from distnet.progress import JsonLinesReporter, TerminalReporter, describe_training
from distnet.step_stats import StepStats

OUTPUTS = np.array([[0.90, 0.05, 0.05],   # label 0: right, sure
                    [0.20, 0.70, 0.10],   # label 0: wrong (1), 0.70
                    [0.10, 0.30, 0.60],   # label 1: wrong (2), 0.60
                    [0.05, 0.94, 0.01],   # label 2: wrong (1), 0.94
                    [0.40, 0.35, 0.25]])  # label 0: right, unsure
LABELS = np.array([0, 0, 1, 2, 0])


def test_a_class_without_samples_has_accuracy_0_not_nan_and_the_json_stays_valid():
    evaluation = evaluation_of(np.eye(3)[[0, 1, 1]], np.array([0, 1, 1]))
    assert evaluation.per_class_accuracy.tolist() == [1.0, 1.0, 0.0]
    json.loads(json.dumps(evaluation.to_dict()), parse_constant=lambda constant: pytest.fail(constant))


def test_large_counts_keep_their_columns_apart():
    evaluation = evaluation_of(np.eye(2)[[0] * 12345 + [1]], np.array([0] * 12345 + [1]))
    assert evaluation.report().splitlines()[-2].split() == ["0", "12345", "0"]


def test_a_run_without_a_validation_set_ends_with_valid_json():
    stream = io.StringIO()
    JsonLinesReporter(stream).on_end(FitResult(best_network=None, best_error=float("nan"), best_epoch=0,
                                                epochs=1, stop_reason="max_epochs", seconds=1.0))
    record = json.loads(stream.getvalue(), parse_constant=lambda constant: pytest.fail(constant))
    assert record["best_error"] is None


def test_evaluation_of_outputs():
    evaluation = evaluation_of(OUTPUTS, LABELS, ("a", "b", "c"))
    assert evaluation.error_rate == 0.6
    assert evaluation.confusion.tolist() == [[2, 1, 0], [0, 0, 1], [0, 1, 0]]
    assert evaluation.per_class_accuracy.tolist() == [2 / 3, 0, 0]
    # A label outside the classes is refused (-1 had counted as the last class), as the network does.
    for labels, message in (([0, 0, 1, 2, -1], "got labels from -1 to 2"), ([0, 0, 1, 2, 3], "got labels from 0 to 3"),
                            (LABELS[:4], "got int64 data of shape \\(4,\\) for 5 rows")):
        with pytest.raises(ConfigError, match=f"the labels must be .*class labels 0..2.*{message}"):
            evaluation_of(OUTPUTS, labels)


def test_evaluate_takes_a_dataset_or_arrays_and_refuses_no_samples_and_missing_labels():
    network = Network([Dense(3, "softmax")], input_size=4, seed=0)
    data = Dataset(np.random.default_rng(0).random((9, 4), np.float32), np.arange(9) % 3, "mine", ("a", "b", "c"))
    of_dataset, of_arrays = evaluate(network, data), evaluate(network, data.images, data.labels)
    assert of_dataset.classes == ("a", "b", "c") and of_arrays.classes == ("0", "1", "2")
    assert evaluate(network, data, classes=("x", "y", "z")).classes == ("x", "y", "z")  # given: they name them
    assert of_dataset.error_rate == of_arrays.error_rate == network.error_rate(data.images, data.labels)
    np.testing.assert_array_equal(of_dataset.confusion, of_arrays.confusion)
    with pytest.raises(ConfigError, match=r"the labels are missing: evaluate\(network, images, labels\)"):
        evaluate(network, data.images)
    with pytest.raises(ConfigError, match="an evaluation needs at least one sample"):
        evaluation_of(OUTPUTS[:0], LABELS[:0])  # its error rate was 0.0
    with pytest.raises(ConfigError, match=r"^the network's outputs are NaN or infinite for 1 of the 5 samples"):
        evaluation_of(np.where(np.arange(5)[:, None] == 2, np.nan, OUTPUTS), LABELS)  # row 2 counted as class 0


def test_evaluate_refuses_data_of_other_classes_than_the_network_s_outputs():
    data = Dataset(np.random.default_rng(0).random((9, 4), np.float32), np.arange(9) % 3, "mine", ("a", "b", "c"))
    for outputs, classes in ((5, "3 classes \\(a, b, c\\)"), (2, "3 classes \\(a, b, c\\)")):
        network = Network([Dense(outputs, "softmax")], input_size=4, seed=0)
        with pytest.raises(ConfigError, match=f"^the network gives {outputs} outputs, one per class, and the data has "
                                              f"{classes}: evaluate it on data of the classes it was trained on$"):
            evaluate(network, data)
    digits = Dataset(data.images, data.labels)  # the ten digits, unless told its classes
    with pytest.raises(ConfigError, match=r"gives 3 outputs, one per class, and the data has 10 classes "
                                          r"\(0, 1, 2, 3, 4, 5, 6, 7, 8, 9\)"):
        evaluate(Network([Dense(3, "softmax")], input_size=4, seed=0), digits)


def test_confident_mistakes_come_surest_first():
    assert confident_mistakes(OUTPUTS, LABELS, 10).tolist() == [3, 1, 2]
    assert confident_mistakes(OUTPUTS, LABELS, 2).tolist() == [3, 1]
    assert confident_mistakes(OUTPUTS, LABELS, 0).tolist() == []


def test_confident_mistakes_that_are_as_sure_come_in_sample_order():
    """Ties keep the samples' order, so that a listing of mistakes is the same on every machine
    (NumPy's default sort is not stable, and which one it runs depends on the CPU)."""
    rng = np.random.default_rng(0)
    confidence = rng.choice([0.6, 0.7, 0.9], 200)
    outputs = np.stack([1 - confidence, confidence], axis=1)  # every sample predicted as class 1 ...
    labels = np.zeros(200, int)  # ... and labelled 0: 200 mistakes, in three ties
    expected = sorted(range(200), key=lambda i: (-confidence[i], i))
    assert confident_mistakes(outputs, labels, 200).tolist() == expected
    assert confident_mistakes(outputs, labels, 30).tolist() == expected[:30]


def test_a_threshold_separates_the_unrecognized():
    assert recognized(OUTPUTS, None).all()
    assert recognized(OUTPUTS, 0.65).tolist() == [True, True, False, True, False]
    split = recognition(OUTPUTS, LABELS, 0.65)
    assert (split.total, split.recognized, split.wrong) == (5, 3, 2)
    assert split.error_rate == pytest.approx(2 / 3)
    assert split.report() == ("threshold 0.65: 3 of 5 recognized (60.00%), 2 of them wrong (66.67%); "
                              "2 not recognized")
    assert split.to_dict()["not_recognized"] == 2


def test_probability_table_is_the_article_s():
    output = np.array([0.002, 0.011, 0.012, 0.002, 0.001, 0.001, 0.002, 0.963, 0.001, 0.005])
    lines = probability_table(output, tuple("0123456789"), {7: "network"})
    assert lines[0] == "class  P"
    assert lines[1] == "0      0.002"
    assert lines[8] == "7      0.963  <- network"
    assert lines[-1] == "Σ      1.000"


def test_confident_mistakes_check_the_labels_outputs_and_count():
    # Labels of another length had broadcast (one label over all rows) or failed in numpy, labels
    # outside the classes counted, a NaN row was a class-0 mistake, -1 dropped the last mistake.
    for labels, message in ((LABELS[:1], "got int64 data of shape \\(1,\\) for 5 rows"),
                            (LABELS[:4], "got int64 data of shape \\(4,\\) for 5 rows"),
                            ([7] * 5, "got labels from 7 to 7")):
        with pytest.raises(ConfigError, match=f"^the labels must be .*class labels 0..2.*{message}"):
            confident_mistakes(OUTPUTS, labels, 10)
    with pytest.raises(ConfigError, match=r"^the network's outputs are NaN or infinite for 1 of the 5 samples"):
        confident_mistakes(np.where(np.arange(5)[:, None] == 0, np.nan, OUTPUTS), LABELS, 10)
    for count in (-1, 1.5, None, "2"):
        with pytest.raises(ConfigError) as refused:
            confident_mistakes(OUTPUTS, LABELS, count)
        assert str(refused.value) == f"the count of mistakes must be a whole number of at least 0, got {count!r}"
    assert confident_mistakes(OUTPUTS.tolist(), LABELS.tolist(), np.int64(1)).tolist() == [3]


def test_the_metrics_take_outputs_as_a_2_d_array_of_one_row_per_sample():
    assert evaluation_of(OUTPUTS.tolist(), LABELS).error_rate == 0.6
    assert recognition(OUTPUTS.tolist(), LABELS, 0.65).recognized == 3
    assert recognized(OUTPUTS.tolist(), 0.65).tolist() == [True, True, False, True, False]
    calls = (lambda outputs: evaluation_of(outputs, [0]), lambda outputs: confident_mistakes(outputs, [0], 1),
             lambda outputs: recognition(outputs, [0], 0.5), lambda outputs: recognized(outputs, 0.5))
    for call in calls:
        with pytest.raises(ConfigError) as refused:
            call(np.array([0.9, 0.1]))
        assert str(refused.value) == ("the outputs must be a 2-D array of numbers, one row per sample and one column "
                                      "per class (as network.predict(X) gives them): got float64 data of shape (2,) "
                                      "(one sample's outputs? pass them as outputs[None, :])")
        with pytest.raises(ConfigError, match=r"^the outputs must be a 2-D array .*: got float64 data of shape "
                                              r"\(1, 0\)$"):
            call(np.zeros((1, 0)))


def test_a_threshold_is_a_probability_and_a_recognition_needs_one():
    for threshold in (float("nan"), 0, 2, "0.5"):
        for call in (lambda: recognized(OUTPUTS, threshold), lambda: recognition(OUTPUTS, LABELS, threshold)):
            with pytest.raises(ConfigError) as refused:
                call()
            assert str(refused.value) == ("the threshold must be a probability in (0, 1], such as 0.9 (or None for "
                                          f"no threshold), got {threshold!r}")
    with pytest.raises(ConfigError) as refused:
        recognition(OUTPUTS, LABELS, None)  # its report() failed on formatting None
    assert str(refused.value) == ("a recognition needs a threshold, a probability in (0, 1] such as 0.9; without one "
                                  "every sample counts as recognized: evaluation_of(outputs, labels) gives their "
                                  "error rate")
    assert recognition(OUTPUTS, LABELS, 1).report().startswith("threshold 1: 0 of 5 recognized")


def test_probability_table_names_one_class_per_output():
    output = OUTPUTS[0]
    assert probability_table(output) == probability_table(output, ("0", "1", "2")) == [
        "class  P", "0      0.900", "1      0.050", "2      0.050", "Σ      1.000"]
    # Fewer names had dropped rows (while Σ summed them all); none or None had failed in Python.
    for classes, given in ((("a", "b"), "2 (a, b)"), (tuple("abcd"), "4 (a, b, c, d)"), ((), "0 ()")):
        with pytest.raises(ConfigError) as refused:
            probability_table(output, classes)
        assert str(refused.value) == (f"classes must name each of the output's 3 classes, got {given}: give one "
                                      f"name per output, or None for 0..2")
    for marks, key in (({3: "label"}, "3"), ({-1: "label"}, "-1"), ({"1": "label"}, "'1'")):
        with pytest.raises(ConfigError) as refused:
            probability_table(output, None, marks)  # a mark beyond the classes had been left out
        assert str(refused.value) == f"the marks are keyed by class index 0..2, such as {{2: 'label'}}; got {key}"
    with pytest.raises(ConfigError) as refused:
        probability_table(OUTPUTS, ("a", "b", "c"))
    assert str(refused.value) == ("a probability table shows one sample's outputs, a 1-D array of one value per class "
                                  "(such as outputs[i]): got an array of shape (5, 3)")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def start_info(**changes):
    info = {"steps_per_epoch": 10, "epochs": 3, "batch_size": 32, "workers": 2, "distributed": True, "first_epoch": 1,
            "first_step": 0,
            "parameters": 28928, "sizes": [784, 36, 14, 10], "l2": 1e-4,
            "optimizer": {"name": "nesterov", "learning_rate": 0.02, "momentum": 0.87},
            "schedule": None, "augmentation": None}
    return {**info, **changes}


def record(epoch, validation, best, best_epoch, rate=0.01):
    return {"epoch": epoch, "train_error": 0.1, "validation_error": validation, "best_error": best,
            "best_epoch": best_epoch, "learning_rate": rate}


def test_terminal_reporter_draws_a_bar_then_evaluation_lines():
    stream = Terminal()
    reporter = TerminalReporter(stream, width=10)
    reporter.on_start(start_info())
    reporter.on_steps(1, 5, 10, StepStats.of_step(1.0, correct=150, samples=160), seconds=0.5)
    reporter.on_evaluation(record(1, 0.05, 0.05, 1))
    reporter.on_evaluation(record(2, 0.06, 0.05, 1))
    text = stream.getvalue()
    assert "training 784-36-14-10, 28,928 parameters, 2 workers, batch 32, 10 steps per epoch, at most 3 epochs" in text
    assert "learning with nesterov (learning rate 0.02, momentum 0.87), L2 0.0001" in text
    assert "\repoch   1 [#####-----] 5/10  320 samples/s  train error  6.25%" in text
    assert "epoch   1  train error 10.00%  validation error  5.00%  best  5.00% (epoch 1)*  " in text
    assert "epoch   2  train error 10.00%  validation error  6.00%  best  5.00% (epoch 1)   " in text


@pytest.mark.parametrize("columns, line", [
    (80, "epoch   1 [##########----------] 1000/2000  1,000 samples/s  train error  6.25%"),
    (70, "epoch   1 [#####-----] 1000/2000  1,000 samples/s  train error  6.25%"),
    (60, "epoch   1 1000/2000  1,000 samples/s  train error  6.25%"),
    (40, "epoch   1 1000/2000  1,000 samples/s  t"),
    (0, "epoch   1 [##########----------] 1000/2000  1,000 samples/s  train error  6.25%")])  # 0: unset, 80
def test_the_bar_fits_the_terminal_s_width(monkeypatch, columns, line):
    """A wider line wraps, and every redraw left a row behind (~150 of them in a seed run at 80
    columns)."""
    monkeypatch.setenv("COLUMNS", str(columns))
    stream = Terminal()
    reporter = TerminalReporter(stream, width=20)
    reporter.on_start(start_info())
    reporter.on_steps(1, 1000, 2000, StepStats.of_step(1.0, correct=150, samples=160), seconds=32)
    drawn = stream.getvalue().split("\r")[-1]
    assert drawn == line and len(drawn) < (columns or 80)


def test_after_a_resume_within_an_epoch_the_rate_counts_only_the_steps_timed():
    stream = Terminal()
    reporter = TerminalReporter(stream, width=10)
    reporter.on_start(start_info(first_epoch=2, first_step=4))
    reporter.on_steps(2, 6, 10, StepStats.of_step(1.0, correct=180, samples=192), seconds=1.0)  # 2 of 6 steps timed
    reporter.on_steps(3, 5, 10, StepStats.of_step(1.0, correct=150, samples=160), seconds=0.5)
    bars = stream.getvalue()
    assert "\repoch   2 [######----] 6/10  64 samples/s  train error  6.25%" in bars
    assert "\repoch   3 [#####-----] 5/10  320 samples/s  " in bars


def test_terminal_reporter_shows_the_scheduled_rate_and_augmentation():
    stream = io.StringIO()  # not a terminal: no bar
    reporter = TerminalReporter(stream)
    reporter.on_start(start_info(schedule={"name": "cosine", "final": 0.0},
                                 augmentation={"name": "random_affine", "rotation": 10.0, "scale": 0.1, "shift": 2.0}))
    reporter.on_steps(1, 5, 10, StepStats.of_step(1.0, 150, 160), 0.5)
    reporter.on_evaluation(record(1, 0.05, 0.05, 1, rate=0.0015))
    lines = stream.getvalue().splitlines()
    assert lines[1] == ("learning with nesterov (learning rate 0.02, momentum 0.87), L2 0.0001, cosine schedule "
                        "(final 0), random affine augmentation (±10°, ±10% scale, ±2 px)")
    assert "samples/s" not in stream.getvalue()
    assert " lr 1.50e-03 " in lines[2]


def test_the_header_and_end_line_name_where_it_runs_and_count_in_words():
    stream = io.StringIO()
    reporter = TerminalReporter(stream)
    reporter.on_start(start_info(workers=1, epochs=1))
    reporter.on_start(start_info(workers=1, distributed=False))
    reporter.on_start(start_info(epochs=12, first_epoch=11))  # a resumed run
    reporter.on_start(start_info(epochs=12, first_epoch=1, first_step=6))  # resumed within epoch 1: was as new
    reporter.on_start(start_info(epochs=12, first_epoch=3, first_step=4))
    reporter.on_start(start_info(epochs=12, first_epoch=13))  # trained to its end, its last evaluation owed
    reporter.on_end(FitResult(best_network=None, best_error=0.05, best_epoch=1, epochs=1, stop_reason="max_epochs",
                              seconds=1.5))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "training 784-36-14-10, 28,928 parameters, 1 worker, batch 32, 10 steps per epoch, at most 1 epoch"
    assert lines[2].startswith("training 784-36-14-10, 28,928 parameters, in this process, batch 32, ")
    assert lines[4].endswith("10 steps per epoch, at most 12 epochs, resuming in epoch 11")
    assert lines[6].endswith("10 steps per epoch, at most 12 epochs, resuming in epoch 1 at step 6")
    assert lines[8].endswith("10 steps per epoch, at most 12 epochs, resuming in epoch 3 at step 4")
    assert lines[10].endswith("10 steps per epoch, at most 12 epochs, resuming to evaluate epoch 12, the last")
    assert lines[12] == "stopped after 1 epoch (max epochs), 1.5 s of training; best validation error 5.00% at epoch 1"


def test_an_error_no_better_than_guessing_gets_one_hint_to_check_the_learning_rate():
    stream = io.StringIO()
    reporter = TerminalReporter(stream)
    reporter.on_start(start_info())
    reporter.on_evaluation({**record(1, 0.05, 0.05, 1), "train_error": 0.8549})  # just better than 0.95 x 90 %
    assert "hint" not in stream.getvalue()
    reporter.on_evaluation({**record(2, 0.9, 0.05, 1, rate=1000.0), "train_error": 0.9014})
    reporter.on_evaluation({**record(3, 0.9, 0.05, 1, rate=1000.0), "train_error": 0.9014})
    hints = [line for line in stream.getvalue().splitlines() if line.startswith("hint")]
    assert hints == ["hint: a train error of 90.14% is no better than guessing (90% with 10 classes); if it stays "
                     "there, the network is not learning: check the learning rate (1000 now)"]
    reporter.on_start(start_info())  # the same reporter for the next fit: it may hint once again
    reporter.on_evaluation({**record(1, 0.9, 0.9, 1, rate=1000.0), "train_error": 0.9014})
    assert sum(line.startswith("hint") for line in stream.getvalue().splitlines()) == 2


def test_pixels_left_at_0_to_255_get_named_in_the_hint():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 784)).astype(np.float32)  # a float copy of the bytes, not divided
    stream = io.StringIO()
    trainer = Trainer(Network([Dense(10, "softmax")], input_size=784, seed=1), Nesterov(0.02, 0.87), batch_size=32,
                      seed=0)
    trainer.fit(Dataset(images, rng.integers(0, 10, 64)), None, epochs=1, reporter=TerminalReporter(stream))
    hints = [line for line in stream.getvalue().splitlines() if line.startswith("hint")]
    assert len(hints) == 1 and hints[0].endswith(
        ", and the inputs' scale: they reach 255, where networks like this one learn from inputs in [0, 1] "
        "(divide pixels by 255)")
    scaled = io.StringIO()
    reporter = TerminalReporter(scaled)
    reporter.on_start(start_info(largest_input=1.0))
    reporter.on_evaluation({**record(1, 0.9, 0.9, 1), "train_error": 0.9})
    assert scaled.getvalue().splitlines()[-1].endswith("check the learning rate (0.01 now)")


def test_the_pace_is_that_since_the_evaluation_before(monkeypatch):
    clock = iter([0.0, 0.0, 60.0, 90.0])  # made, started; epoch 5 a minute on (a slow first epoch); epoch 10 30 s on
    monkeypatch.setattr("distnet.progress.time.perf_counter", lambda: next(clock))
    stream = io.StringIO()
    reporter = TerminalReporter(stream)
    reporter.on_start(start_info(epochs=10))
    reporter.on_evaluation(record(5, 0.05, 0.05, 5))
    reporter.on_evaluation(record(10, 0.04, 0.04, 10))
    lines = stream.getvalue().splitlines()
    assert lines[2].endswith("  5.0 epochs/min") and lines[3].endswith("  10.0 epochs/min")
    clock = iter([0.0, 0.0, 15.0])  # resumed three quarters into epoch 3: its last quarter takes 15 s
    stream = io.StringIO()
    reporter = TerminalReporter(stream)
    reporter.on_start(start_info(epochs=10, first_epoch=3, first_step=30, steps_per_epoch=40))
    reporter.on_evaluation(record(3, 0.05, 0.05, 3))
    assert stream.getvalue().splitlines()[-1].endswith("  1.0 epochs/min")  # not 4.0 (a whole epoch in 15 s)
    clock = iter([0.0, 0.0, 2.0])  # resumed to make the evaluation its last epoch owes: no epoch trained
    stream = io.StringIO()
    reporter = TerminalReporter(stream)
    reporter.on_start(start_info(epochs=10, first_epoch=11))
    reporter.on_evaluation(record(10, 0.05, 0.05, 10))
    assert stream.getvalue().splitlines()[-1].endswith("best  5.00% (epoch 10)*")  # it said 0.0 epochs/min


def test_describe_training_without_l2_or_extras():
    assert describe_training(start_info(l2=0.0, optimizer={"name": "adam", "learning_rate": 0.003})) == \
        "learning with adam (learning rate 0.003)"


def test_json_lines_reporter_emits_one_object_per_event():
    stream = io.StringIO()
    reporter = JsonLinesReporter(stream)
    reporter.on_start(start_info())
    reporter.on_evaluation(record(1, 0.05, 0.05, 1))
    reporter.on_end(FitResult(best_network=None, best_error=0.05, best_epoch=1, epochs=1, stop_reason="max_epochs",
                              seconds=1.5))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["start", "evaluation", "end"]
    assert events[1]["validation_error"] == 0.05 and events[2]["stop_reason"] == "max_epochs"


def test_a_reporter_given_a_file_name_instead_of_a_stream_is_refused_at_once(tmp_path):
    for reporter in (JsonLinesReporter, TerminalReporter):
        with pytest.raises(ConfigError, match=r"^a reporter writes to a text stream, such as sys.stdout or "
                                              r"open\(path, 'w'\), not 'progress.jsonl'$"):
            reporter("progress.jsonl")

    class Lines:  # a stream of one's own, with write alone
        def __init__(self):
            self.text = ""

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    lines = Lines()
    TerminalReporter(lines).on_evaluation({"epoch": 1, "train_error": 0.5, "train_cost": 1.0, "learning_rate": 0.1,
                                           "epoch_seconds": 1.0, "elapsed_seconds": 1.0})
    assert lines.text.startswith("epoch   1  train error 50.00%")


def test_a_recovery_is_one_line_on_the_terminal_and_one_event_in_json_lines():
    what = "worker 1 (pid 123) lost at epoch 5, step 40"
    terminal, lines = io.StringIO(), io.StringIO()
    TerminalReporter(terminal).on_recovery(what, 1, 3)
    TerminalReporter(terminal).on_recovery("the stop evaluator died (ActorDiedError)", 1, 1)
    # A step that hung, every actor answering: it said "no actor lost at ...; replaced" (a cluster audit).
    TerminalReporter(terminal).on_recovery("a step stalled at epoch 1, step 1, every actor answering", 2, 3)
    assert terminal.getvalue().splitlines() == [
        "recovered: worker 1 (pid 123) lost at epoch 5, step 40; replaced (1 of 3 failures allowed)",
        "recovered: the stop evaluator died (ActorDiedError); replaced (1 of 1 failure allowed)",
        "recovered: a step stalled at epoch 1, step 1, every actor answering; the steps started again (2 of 3 "
        "failures allowed)"]
    JsonLinesReporter(lines).on_recovery(what, 2, 3)
    assert json.loads(lines.getvalue()) == {"event": "recovery", "what": what, "failures": 2, "max_failures": 3}


def test_a_reporter_of_your_own_without_on_recovery_is_not_told_of_recoveries():
    from distnet.distributed import DistributedTrainer
    from distnet.nn import Nesterov

    class Mine:  # the four events fit requires, and no more
        on_start = on_steps = on_evaluation = on_end = staticmethod(lambda *args: None)

    heard = []

    class Listening(Mine):
        def on_recovery(self, *args):
            heard.append(args)

    trainer = DistributedTrainer(Network([Dense(10, "softmax")], input_size=4, seed=0), Nesterov(0.1), workers=1)
    for reporter in (Mine(), Listening()):
        trainer._reporter, trainer.failures, trainer._unreported = reporter, [], []
        trainer._count_failure("worker 0 (pid 7) lost at epoch 1, step 3")
        trainer._report_recoveries()
    assert heard == [("worker 0 (pid 7) lost at epoch 1, step 3", 1, 3)] and trainer._unreported == []


def test_an_output_equal_to_the_threshold_is_recognized():
    outputs = np.array([[0.5, 0.5, 0.0], [0.25, 0.75, 0.0], [0.4, 0.3, 0.3]], dtype=np.float32)
    assert recognized(outputs, 0.5).tolist() == [True, True, False]
    assert recognized(outputs, 0.75).tolist() == [False, True, False]
    assert recognition(outputs, np.array([1, 1, 0]), 0.5).recognized == 2


def test_confident_mistakes_that_tie_come_in_sample_order():
    outputs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.9, 0.1], [1.0, 0.0]], dtype=np.float32)
    labels = np.array([1, 1, 1, 1, 0])  # wrong: 0, 2, 3 (and 0, 2 tie at 1.0)
    assert confident_mistakes(outputs, labels, 10).tolist() == [0, 2, 3]
    assert confident_mistakes(outputs, labels, 1).tolist() == [0]


def test_a_log_that_is_not_a_terminal_gets_a_progress_line_once_a_minute_has_passed_without_one(monkeypatch):
    """A log file or a job's output had no line between evaluations (minutes apart on a wide network)."""
    assert TerminalReporter(io.StringIO(), log_every=3600).log_every == 3600.0
    with pytest.raises(ConfigError, match="log_every must be a positive finite number, got 0"):
        TerminalReporter(io.StringIO(), log_every=0)
    clock = iter([0.0, 0.0, 59.0, 61.0, 62.0, 70.0, 100.0, 131.0])
    monkeypatch.setattr("distnet.progress.time.perf_counter", lambda: next(clock))
    stream = io.StringIO()
    reporter = TerminalReporter(stream)  # made, then started at 0
    reporter.on_start(start_info(first_epoch=2, first_step=4))
    lines = len(stream.getvalue().splitlines())
    reporter.on_steps(2, 5, 10, StepStats.of_step(1.0, correct=20, samples=32), seconds=59.0)
    assert len(stream.getvalue().splitlines()) == lines  # 59 s: not yet
    reporter.on_steps(2, 6, 10, StepStats.of_step(1.0, correct=60, samples=64), seconds=1.0)  # 2 steps timed
    reporter.on_steps(2, 7, 10, StepStats.of_step(1.0, correct=90, samples=96), seconds=2.0)  # 1 s later: not yet
    assert stream.getvalue().splitlines()[lines:] == ["epoch   2 6/10  64 samples/s  train error  6.25%"]
    reporter.on_evaluation(record(2, 0.05, 0.05, 2))  # at 70 s: a line, the next a minute after it
    reporter.on_steps(3, 1, 10, StepStats.of_step(1.0, correct=30, samples=32), seconds=30.0)  # 100 s
    reporter.on_steps(3, 2, 10, StepStats.of_step(1.0, correct=64, samples=64), seconds=61.0)  # 131 s
    assert stream.getvalue().splitlines()[lines + 2:] == ["epoch   3 2/10  1 samples/s  train error  0.00%"]
    assert "\r" not in stream.getvalue()


def test_a_recovery_line_counts_as_a_line_for_the_log_s_progress_lines(monkeypatch):
    clock = iter([0.0, 0.0, 100.0, 130.0, 161.0])  # made, started; a recovery at 100 s; steps at 130 s and 161 s
    monkeypatch.setattr("distnet.progress.time.perf_counter", lambda: next(clock))
    stream = io.StringIO()
    reporter = TerminalReporter(stream)
    reporter.on_start(start_info())
    reporter.on_recovery("worker 1 (pid 123) lost at epoch 1, step 4", 1, 3)
    reporter.on_steps(1, 5, 10, StepStats.of_step(1.0, correct=150, samples=160), seconds=130.0)
    assert stream.getvalue().splitlines()[-1].startswith("recovered: ")  # 30 s after that line: none yet
    reporter.on_steps(1, 6, 10, StepStats.of_step(1.0, correct=180, samples=192), seconds=161.0)
    assert stream.getvalue().splitlines()[-1].startswith("epoch   1 6/10  ")
