"""The batch plan, the single-process trainer, run directories, checkpoints and resume."""
import gc
import hashlib
import io
import json
import math
import re
import shutil
import time
import warnings
import weakref

import numpy as np
import pytest

from distnet import ConfigError, Dense, Nesterov, Network, TrainingDivergedError
from distnet.batches import BatchGather, BatchPlan, split_sizes
from distnet.checkpoint import Checkpoint
from distnet.chunk_sizer import ChunkSizer
from distnet.data import Dataset
from distnet.data.augment import RandomAffine
from distnet.nn import Schedule, UpdateRule
from distnet.presets import get_preset
from distnet.progress import JsonLinesReporter, Reporter, TerminalReporter
from distnet.rundir import RunDir
from distnet.step_stats import StepStats
from distnet.stop import EarlyStopping
from distnet.trainer import Trainer
from distnet.training import TrainerBase
from hostile import deeply_nested


def test_split_sizes_differ_by_at_most_one():
    assert split_sizes(32, 3) == [11, 11, 10]
    assert split_sizes(7, 7) == [1] * 7
    assert sum(split_sizes(50_000, 3)) == 50_000


@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_batch_plan_covers_each_sample_at_most_once_per_epoch(shards):
    plan = BatchPlan(1000, 32, shards, seed=7)
    batches = plan.epoch_batches(epoch=3)
    assert len(batches) == plan.steps_per_epoch == 31
    assert all(len(b) == 32 for b in batches)
    seen = np.concatenate(batches)
    assert len(np.unique(seen)) == len(seen) == 31 * 32
    assert seen.min() >= 0 and seen.max() < 1000
    # every shard contributes its own slice of each batch
    for k, batch in enumerate(batches):
        start = 0
        for s, b in enumerate(plan.shard_batch_sizes):
            lo, hi = plan.shard_ranges[s]
            assert np.all((batch[start:start + b] >= lo) & (batch[start:start + b] < hi))
            start += b


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_a_training_set_of_whole_batches_is_used_entirely_every_epoch(shards):
    plan = BatchPlan(1024, 32, shards, seed=7)
    for epoch in (0, 1):
        batches = plan.epoch_batches(epoch)
        assert len(batches) == 32 and all(len(b) == 32 for b in batches)
        assert sorted(np.concatenate(batches).tolist()) == list(range(1024))


def test_batch_plan_is_deterministic_and_reshuffles_each_epoch():
    plan = BatchPlan(500, 10, 2, seed=1)
    a, b = plan.epoch_batches(0), BatchPlan(500, 10, 2, seed=1).epoch_batches(0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(np.concatenate(a), np.concatenate(plan.epoch_batches(1)))
    assert not np.array_equal(np.concatenate(a), np.concatenate(BatchPlan(500, 10, 2, seed=2).epoch_batches(0)))


@pytest.mark.parametrize("then, now", [(2, 3), (3, 1)])
def test_an_epoch_carried_over_keeps_its_batches_which_the_new_shards_give_between_them(then, now):
    """A resume within epoch 5 (0-based 4) with another number of workers: that epoch's batches
    are those of the shards it began with (each sample at most once), each new shard giving the
    samples of a batch that lie in it; the epochs around it are the new shards' own."""
    plan, earlier, new = (BatchPlan(1000, 32, now, seed=7, carried=(4, then)), BatchPlan(1000, 32, then, seed=7),
                          BatchPlan(1000, 32, now, seed=7))
    assert (plan.shards_of(4), plan.shards_of(5)) == (then, now)
    assert all(np.array_equal(a, b) for a, b in zip(plan.epoch_batches(4), earlier.epoch_batches(4)))
    rows = [plan.shard_steps(4, s) for s in range(now)]
    for k, batch in enumerate(earlier.epoch_batches(4)):
        given = np.concatenate([rows[s][k] + plan.shard_ranges[s][0] for s in range(now)])
        assert sorted(given.tolist()) == sorted(batch.tolist())
    for epoch in (3, 5):
        assert all(np.array_equal(a, b) for a, b in zip(plan.epoch_batches(epoch), new.epoch_batches(epoch)))
    assert BatchPlan(1000, 32, 2, seed=7, carried=(4, 2)).carried is None  # the same shards: nothing carried


def test_batch_smaller_than_workers_is_refused():
    with pytest.raises(ConfigError, match="batch size 2 is smaller than the number of workers 3"):
        BatchPlan(100, 2, 3)


def test_a_training_set_too_small_for_one_batch_is_refused_with_the_batch_size_that_would_do():
    with pytest.raises(ConfigError, match=r"has 20 samples, fewer than one batch of 32; use a batch size "
                                          r"of at most 20 \(batch_size, --batch-size\)"):
        BatchPlan(20, 32)
    with pytest.raises(ConfigError, match="the training set is empty: there is nothing to train on"):
        BatchPlan(0, 32)


@pytest.mark.parametrize("shards", [1, 3])
def test_a_training_set_of_exactly_one_batch_is_one_step_of_every_sample(shards):
    """The size the message above advises (at most 20 for 20 samples) is taken: one step an epoch,
    each sample in it once, nothing left over."""
    plan = BatchPlan(20, 20, shards, seed=5)
    assert plan.steps_per_epoch == 1 and plan.shard_ranges[-1][1] == 20
    for epoch in (0, 1):
        (batch,) = plan.epoch_batches(epoch)
        assert sorted(batch.tolist()) == list(range(20))


def test_batch_gather_copies_rows_and_one_hot_targets_into_arrays_it_keeps_while_the_row_count_stays():
    images = np.arange(60, dtype=np.float32).reshape(20, 3)
    labels = np.arange(20, dtype=np.uint8) % 4
    gather = BatchGather(4, np.float64)
    first_x, first_y = gather(np.array([4, 0, 19]), images, labels)
    np.testing.assert_array_equal(first_x, images[[4, 0, 19]])
    np.testing.assert_array_equal(first_y, np.eye(4)[[0, 0, 3]])
    assert first_x.dtype == np.float32 and first_y.dtype == np.float64
    x, y = gather(np.array([7, 7, 1]), images, labels)
    assert x is first_x and y is first_y  # the same arrays, written anew
    np.testing.assert_array_equal(x, images[[7, 7, 1]])
    np.testing.assert_array_equal(y, np.eye(4)[[3, 3, 1]])
    smaller_x, smaller_y = gather(np.array([2, 3]), images, labels)
    np.testing.assert_array_equal(smaller_y, np.eye(4)[[2, 3]])
    assert smaller_x is not first_x


def test_batch_gather_keeps_each_data_set_s_dtype_when_the_row_count_stays():
    """Images of another dtype, as many rows as before: a buffer of their own dtype, not the kept one
    (np.take would cast float64 pixels into the float32 buffer, silently)."""
    gather = BatchGather(3, np.float32)
    rows, labels = np.array([2, 0]), np.array([0, 1, 2])
    narrow, targets = gather(rows, np.ones((3, 2), np.float32), labels)
    assert targets.dtype == np.float32  # the targets' dtype is the one given, the network's
    np.testing.assert_array_equal(targets, [[0, 0, 1], [1, 0, 0]])
    wide = np.array([[0.1, 0.2], [0.3, 0.4], [1 + 2**-40, 0.6]])  # 1 + 2**-40 is 1.0 in float32
    x, _ = gather(rows, wide, labels)
    assert x.dtype == np.float64 and x is not narrow
    np.testing.assert_array_equal(x, wide[[2, 0]])
    again, _ = gather(rows, np.full((3, 2), 0.5, np.float32), labels)
    assert again.dtype == np.float32
    np.testing.assert_array_equal(again, np.full((2, 2), 0.5, np.float32))


def tiny_network(dtype=np.float64, seed=3):
    return Network([Dense(8, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=seed,
                   initializer=None, dtype=dtype)


def test_step_is_mean_gradient_then_l2_then_optimizer(mnist):
    X, Y = mnist.train.images[:32].astype(np.float64), mnist.train.one_hot(np.float64)[:32]
    net, reference = tiny_network(), tiny_network()
    Trainer(net, Nesterov(0.02, 0.87), l2=1e-3, batch_size=32).step(X, Y)
    UpdateRule(Nesterov(0.02, 0.87), 1e-3, reference.weight_slices).apply(reference.params, reference.gradient(X, Y))
    np.testing.assert_allclose(net.params, reference.params, rtol=0, atol=1e-15)


class Climbing(Schedule):
    """The base rate, then from epoch ``start`` (0-based; None: the last) 500 times it, which
    saturates the outputs: the networks from there on are worse than before, on any processor.
    (A negative rate, which climbs the cost outright, is refused.)"""

    name = "climbing"

    def __init__(self, start: int | None = None):
        self.start = start

    def factor(self, epoch, epochs):
        return 500.0 if epoch >= (epochs - 1 if self.start is None else self.start) else 1.0

    def spec(self):
        return {"name": self.name, "start": self.start}


def fit_small(mnist, run_dir=None, epochs=2, resume=False, network=None, window=3, eval_every=1, schedule=None,
              **kw):
    train, validation = mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 500))
    net = network or tiny_network()
    trainer = Trainer(net, Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11, schedule=schedule)
    return trainer.fit(train, validation, epochs=epochs, eval_every=eval_every, window=window, run_dir=run_dir,
                       resume=resume, **kw), net


def test_a_step_on_one_1d_sample_is_the_step_on_that_one_row():
    x, y = np.linspace(0.1, 0.9, 784), np.eye(10)[3]
    one_d, two_d = tiny_network(), tiny_network()
    stats = Trainer(one_d, Nesterov(0.02, 0.87), l2=1e-3).step(x, y)
    assert stats == Trainer(two_d, Nesterov(0.02, 0.87), l2=1e-3).step(x[None], y[None]) and stats.samples == 1
    np.testing.assert_array_equal(one_d.params, two_d.params)
    with pytest.raises(ConfigError, match="^a step needs at least one sample, and the mini-batch has none$"):
        Trainer(one_d, Nesterov(0.02)).step(np.zeros((0, 784)), np.zeros((0, 10)))
    np.testing.assert_array_equal(one_d.params, two_d.params)  # nothing applied


def test_a_step_on_nan_data_or_with_a_cost_that_overflows_is_refused_and_changes_nothing():
    """Trainer.step, the way to train on targets of one's own (a regression), left the network and
    the optimizer NaN without a word."""
    from distnet import Adam, TrainingDivergedError

    rng = np.random.default_rng(0)
    X, Y = rng.random((8, 4)), rng.random((8, 1))
    net = Network([Dense(3, "tanh"), Dense(1, "identity")], input_size=4, cost="mse", seed=1, dtype=np.float64)
    trainer = Trainer(net, Adam(0.01))
    stats = trainer.step(X, Y)
    assert repr(stats) == f"StepStats(cost={stats.cost!r}, correct={stats.correct}, samples=8)" and stats.cost > 0
    before, state = net.params.copy(), {k: v.copy() for k, v in trainer.optimizer.state().items()}
    for what, (bad_X, bad_Y) in {"inputs": (np.where(X > 0.9, np.nan, X), Y), "targets": (X, Y * np.inf)}.items():
        with pytest.raises(ConfigError, match=f"^the mini-batch's {what} hold NaN or infinite values; fix or drop "
                                              f"those samples$"):
            trainer.step(bad_X, bad_Y)
    with pytest.raises(TrainingDivergedError, match=r"^the step's cost is inf \(float64 overflowed\): the "
                                                    r"parameters have diverged \(lower the learning rate, now 0.01\), "
                                                    r"or the inputs or targets are too large; the step was not "
                                                    r"applied$"):
        trainer.step(X, Y * 1e200)  # finite targets whose squared error is not
    with pytest.raises(ConfigError, match=re.escape(  # "dataset[i] draws a 28x28 image" before: NumPy iterated it
            "a step takes arrays, not a data set: pass its .images and, as the targets, its .one_hot() rows")):
        trainer.step(Dataset(X, (Y[:, 0] > 0.5).astype(int), classes=2), Y)
    np.testing.assert_array_equal(net.params, before)
    assert all(np.array_equal(v, state[k]) for k, v in trainer.optimizer.state().items())


def test_a_step_on_float64_values_beyond_float32s_range_names_them_as_fit_does():
    """They were checked before the cast to the network's float32, and the step then blamed the
    learning rate for the infinite cost (found by an API audit)."""
    net = Network([Dense(3, "tanh"), Dense(2, "softmax")], input_size=4, seed=1)
    trainer, before = Trainer(net, Nesterov(0.01, 0.9)), net.params.copy()
    X, Y = np.full((2, 4), 0.5), np.eye(2)
    for what, bad in {"inputs": (X * 1e39, Y), "targets": (X, Y * 1e39)}.items():
        with pytest.raises(ConfigError, match=rf"^the mini-batch's {what} hold values too large for float32, the "
                                              rf"network's dtype \(beyond ±3.4e\+38 a value becomes infinite\); "
                                              rf"scale them"):
            trainer.step(*bad)
    np.testing.assert_array_equal(net.params, before)
    assert trainer.step(X, Y).samples == 2  # float64 values in range are taken, as before


def test_a_step_from_nan_parameters_is_refused_as_fit_refuses_it_not_blamed_on_the_learning_rate():
    # It raised TrainingDivergedError: "float64 overflowed ... lower the learning rate".
    rng = np.random.default_rng(0)
    X, Y = rng.random((8, 4)), rng.random((8, 1))
    net = Network([Dense(3, "tanh"), Dense(1, "identity")], input_size=4, cost="mse", seed=1, dtype=np.float64)
    trainer = Trainer(net, Nesterov(0.01, 0.9), batch_size=4)
    trainer.step(X, Y)
    net.params[2] = np.nan  # as a training that diverged leaves them
    before, state = net.params.copy(), trainer.optimizer.state()
    with pytest.raises(ConfigError, match=r"^the network's parameters are NaN or infinite \(as a fit that diverged "
                                          r"leaves them\), so training from them would diverge at once: train a new "
                                          r"network, or a saved one \(such as a run's best.npz\), with a new "
                                          r"optimizer \(in a new trainer\)$"):
        trainer.step(X, Y)
    np.testing.assert_array_equal(net.params, before)
    assert all(np.array_equal(v, state[k]) for k, v in trainer.optimizer.state().items())
    trainer.optimizer.load_state({k: np.full_like(v, np.inf) for k, v in state.items()})
    with pytest.raises(ConfigError, match=r"^the network's parameters and the optimizer's velocity are NaN or "
                                          r"infinite"):
        trainer.step(X, Y)
    net.params = np.zeros(net.params.size)
    with pytest.raises(ConfigError, match=r"^the optimizer's velocity is NaN or infinite \(as a fit"):
        trainer.fit(Dataset(X, np.zeros(8, int), classes=1), epochs=1)  # fit checks it before its first step


def test_a_fit_from_the_nan_state_a_diverged_fit_left_is_refused_with_what_to_do(monkeypatch):
    # Looked at once an epoch, the divergence has gone on to NaN (at every step, it is seen while
    # the parameters are finite: the test above).
    monkeypatch.setattr(ChunkSizer, "end", lambda self, start: self.largest)
    network, train = a_float64_run_that_diverges_through_huge_finite_costs()
    trainer = Trainer(network, Nesterov(0.01, 0.9), batch_size=32, seed=1)
    with pytest.raises(TrainingDivergedError):
        trainer.fit(train, epochs=5)
    trainer.learning_rate = 1e-4  # as the divergence's message advises; it was then said to be too high
    with pytest.raises(ConfigError, match=r"^the network's parameters and the optimizer's velocity are NaN or "
                                          r"infinite \(as a fit that diverged leaves them\), so training from them "
                                          r"would diverge at once: train a new network, or a saved one \(such as a "
                                          r"run's best.npz\), with a new optimizer \(in a new trainer\)$"):
        trainer.fit(train, epochs=5)


def test_a_fit_from_the_finite_parameters_a_diverged_fit_left_is_refused_not_blamed_on_the_learning_rate(
        monkeypatch):
    """A divergence seen as the cost overflows leaves the parameters finite (2.8e218 here; 2.7e37
    in the audit that found it): a new fit from them diverged at once, "the learning rate (0.0001)
    is probably too high", as check_finite_state saw nothing wrong."""
    monkeypatch.setattr(ChunkSizer, "end", lambda self, start: start + 1)  # a look after every step
    network, train = a_float64_run_that_diverges_through_huge_finite_costs()
    trainer = Trainer(network, Nesterov(0.01, 0.9), batch_size=32, seed=1)
    with pytest.raises(TrainingDivergedError):
        trainer.fit(train, epochs=5)
    assert np.isfinite(network.params).all()
    before = network.params.copy()
    trainer.learning_rate = 1e-4
    # (inf or nan, as the NumPy installed computes the overflow: 2.4.6 gives nan)
    with pytest.raises(ConfigError, match=r"^the network's cost on the first 32 training samples is (inf|nan) before any "
                                          r"training \(float64 overflowed\): its largest parameter is 2.8e\+218 "
                                          r"\(as a fit that diverged can leave them\) and its largest input 1: train "
                                          r"a new network, or a saved one \(such as a run's best.npz\), with a new "
                                          r"optimizer \(in a new trainer\), on inputs near \[-1, 1\]$"):
        trainer.fit(train, epochs=5)
    np.testing.assert_array_equal(network.params, before)


def test_extra_config_goes_into_config_json_and_may_not_replace_the_run_s_own(mnist, tmp_path):
    train = mnist.train.subset(slice(0, 320))

    def fit(extra, run="run"):
        return Trainer(tiny_network(), Nesterov(0.02), seed=1).fit(train, None, epochs=1, run_dir=tmp_path / run,
                                                                   extra_config=extra)

    fit({"note": ["kept", 1]})
    assert json.loads((tmp_path / "run" / "config.json").read_text())["note"] == ["kept", 1]
    for extra, message in (([1, 2], r"^extra_config must be a dict of JSON values by name, such as \{'preset': "
                                     r"'seed'\}, got \[1, 2\]$"),
                           ({"note": {1, 2}}, r"^extra_config must hold only what JSON can \(strings, finite numbers, "
                                              r"booleans, None, lists and dicts of them\): Object of type set is not "
                                              r"JSON serializable$"),
                           (deeply_nested(100_000), r"^extra_config is nested too deeply to be written as JSON$"),
                           ({"epochs": 50}, r"^extra_config cannot set epochs: the run records it itself \(from the "
                                            r"trainer, the data and fit's arguments\); set it there, or choose other "
                                            r"names$"),
                           ({"seed": 99, "l2": 0}, r"^extra_config cannot set l2, seed: the run records them itself")):
        with pytest.raises(ConfigError, match=message):
            fit(extra, run="refused")
        assert not (tmp_path / "refused").exists()


def test_a_run_directory_under_home_is_expanded_as_a_shell_would(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = Trainer(tiny_network(), Nesterov(0.02), seed=1).fit(mnist.train.subset(slice(0, 320)), None, epochs=1,
                                                                 run_dir="~/runs/x")
    assert result.run_dir == tmp_path / "runs" / "x" and (tmp_path / "runs" / "x" / "config.json").is_file()
    assert not (tmp_path / "~").exists()


def test_fit_writes_a_complete_run_directory(mnist, tmp_path):
    result, net = fit_small(mnist, tmp_path / "run", epochs=3)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.json", "history.jsonl", "best.npz", "best.json",
                                               "checkpoint.npz", "checkpoint.prev.npz"}
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3] == [h["epoch"] for h in result.history]
    best = min(history, key=lambda h: h["validation_error"])
    assert result.best_error == best["validation_error"] and result.best_epoch == best["epoch"]
    on_disk = Network.load(run / "best.npz")
    np.testing.assert_array_equal(on_disk.params, result.best_network.params)
    assert on_disk.error_rate(mnist.validation.images[:500], mnist.validation.labels[:500]) == result.best_error
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 32 and config["seed"] == 11 and config["optimizer"]["name"] == "nesterov"
    assert Checkpoint.load(run / "checkpoint.npz").epoch == 3


class InterruptAfter(Reporter):
    """Interrupts the training, as Ctrl-C would, at its first look at progress past ``step`` of ``epoch``."""

    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def on_steps(self, epoch, step, steps, stats, seconds):
        if (epoch, step) > (self.epoch, self.step):
            raise KeyboardInterrupt


def without_times(history):
    return [{k: v for k, v in record.items() if not k.endswith("_seconds")} for record in history]


def test_an_interrupted_run_resumed_ends_exactly_where_an_uninterrupted_run_ends(mnist, tmp_path):
    whole, whole_net = fit_small(mnist, tmp_path / "whole", epochs=4)
    run = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        fit_small(mnist, run, epochs=4, checkpoint_every=20, reporter=InterruptAfter(2, 20))
    checkpoint = Checkpoint.load(run / "checkpoint.npz")
    assert (checkpoint.epoch, checkpoint.step) == (1, 20)  # 20 steps into epoch 2
    resumed, resumed_net = fit_small(mnist, run, epochs=4, resume=True, checkpoint_every=20)
    np.testing.assert_array_equal(resumed_net.params, whole_net.params)
    # epoch 2's train error and cost count its steps from before the interruption too
    assert without_times(resumed.history) == without_times(whole.history)
    assert (resumed.best_epoch, resumed.best_error) == (whole.best_epoch, whole.best_error)


def test_a_resumed_run_checkpoints_within_epochs_as_its_config_records_until_told_otherwise(mnist, tmp_path):
    run = tmp_path / "run"

    def interrupted_at(epoch, step, **kw):
        with pytest.raises(KeyboardInterrupt):
            fit_small(mnist, run, epochs=4, reporter=InterruptAfter(epoch, step), **kw)
        checkpoint = Checkpoint.load(run / "checkpoint.npz")
        return (checkpoint.epoch, checkpoint.step), json.loads((run / "config.json").read_text())["checkpoint_every"]

    assert interrupted_at(1, 20, checkpoint_every=20) == ((0, 20), 20)
    assert interrupted_at(2, 40, resume=True) == ((1, 40), 20)  # not told again: still every 20 steps
    assert interrupted_at(3, 40, resume=True, checkpoint_every=0) == ((2, 0), 0)  # told: at epoch ends only
    assert interrupted_at(4, 40, resume=True) == ((3, 0), 0)


def test_a_run_bound_for_more_epochs_resumed_to_end_where_it_stopped_evaluates_its_last_epoch(mnist, tmp_path):
    """Stopped after epoch 3 of 6 (evaluated every 2), resumed with epochs=3: as a run of 3 epochs,
    evaluated after the 3rd; it was taken for a run that had ended, its last evaluation epoch 2's."""
    whole, whole_net = fit_small(mnist, tmp_path / "whole", epochs=3, eval_every=2)
    run = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        fit_small(mnist, run, epochs=6, eval_every=2, reporter=InterruptAfter(4, 0))
    assert (Checkpoint.load(run / "checkpoint.npz").epoch, Checkpoint.load(run / "checkpoint.npz").step) == (3, 0)
    resumed, resumed_net = fit_small(mnist, run, epochs=3, eval_every=2, resume=True)
    assert not resumed.already_ended and [r["epoch"] for r in resumed.history] == [2, 3]
    assert without_times(resumed.history) == without_times(whole.history)
    assert (resumed.best_epoch, resumed.best_error) == (whole.best_epoch, whole.best_error)
    np.testing.assert_array_equal(resumed.best_network.params, whole.best_network.params)
    np.testing.assert_array_equal(Network.load(run / "best.npz").params, whole.best_network.params)
    assert json.loads((run / "config.json").read_text())["epochs"] == 3
    with pytest.warns(UserWarning, match="had ended at epoch 3"):  # and now it has
        again, _ = fit_small(mnist, run, epochs=3, eval_every=2, resume=True)
    assert again.already_ended and again.history == resumed.history

    old = tmp_path / "old"
    with pytest.raises(KeyboardInterrupt):
        fit_small(mnist, old, epochs=6, eval_every=2, reporter=InterruptAfter(4, 0))
    checkpoint = Checkpoint.load(old / "checkpoint.npz")
    checkpoint.finished_epoch = None  # as distnet wrote them until 2026-12-01
    checkpoint.save(old / "checkpoint.npz")
    with pytest.raises(ConfigError, match="^the run has trained 3 epochs without evaluating the last, and its "
                                          "checkpoint, written before checkpoints kept an epoch's statistics, cannot "
                                          "evaluate it as a run ending there would: resume it with more epochs$"):
        fit_small(mnist, old, epochs=3, eval_every=2, resume=True)


def test_a_resume_on_another_number_of_shards_warns_ends_its_epoch_as_begun_and_records_the_number(mnist, tmp_path):
    """Told no number (shards not set), a single-process trainer takes the run's and ends exactly
    where the uninterrupted run does; told another, it warns, ends the epoch it resumes within with
    that epoch's batches (so that epoch scores as in the uninterrupted run), draws the next from
    the new number of shards, and records it for the resumes after it."""
    train, validation = mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 500))

    def fit(run, shards=None, **options):
        trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11)
        if shards is not None:
            trainer.shards = shards
        return trainer, trainer.fit(train, validation, eval_every=1, window=3, run_dir=run, **options)

    whole, whole_result = fit(tmp_path / "whole", shards=2, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "run", shards=2, epochs=3, checkpoint_every=20, reporter=InterruptAfter(2, 20))
    assert (Checkpoint.load(tmp_path / "run" / "checkpoint.npz").step, whole.shards) == (20, 2)
    same = tmp_path / "same"
    shutil.copytree(tmp_path / "run", same)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the run's own number: nothing to warn of
        kept, kept_result = fit(same, resume=True)
    assert kept.shards == 2 and json.loads((same / "config.json").read_text())["workers"] == 2
    np.testing.assert_array_equal(kept.network.params, whole.network.params)

    with pytest.warns(UserWarning, match=re.escape(
            f"{tmp_path / 'run'} trains on with its mini-batches drawn from 3 shards of the training set (as 3 "
            f"workers draw them), where it drew them from 2 so far: from here it is another draw of the same "
            f"training, not bit-identical to a run that kept 2 workers; epoch 2, which it resumes at step 20, ends "
            f"with the batches it began with (of 2 shards: no sample twice in that epoch), and the new ones start "
            f"with epoch 3")):
        _, two = fit(tmp_path / "run", shards=3, epochs=2, resume=True)
    assert without_times(two.history) == without_times(whole_result.history[:2])
    saved = Checkpoint.load(tmp_path / "run" / "checkpoint.npz")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["workers"] == saved.config["workers"] == 3
    assert (saved.epoch, saved.step, saved.epoch_shards) == (2, 0, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        later, three = fit(tmp_path / "run", epochs=3, resume=True)  # told no number: the run's 3 now
    assert later.shards == 3 and three.epochs == 3
    assert three.history[2]["train_error"] != whole_result.history[2]["train_error"]  # another draw from epoch 3
    # One trainer told no number resumes each run with that run's own (it kept the first run's for the
    # second before, which warned and rewrote the second run's config.json).
    trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for run, shards in ((tmp_path / "run", 3), (same, 2)):
            trainer.fit(train, validation, eval_every=1, window=3, run_dir=run, epochs=4, resume=True)
            assert trainer.shards == shards == json.loads((run / "config.json").read_text())["workers"]


def test_a_trainer_not_set_a_number_of_shards_takes_a_resumed_run_s_for_that_fit_only(mnist, tmp_path):
    """A new run after the resume of a 2-worker run draws one shard's batches again (the trainer
    kept the 2 for good, and the new run drew 2 shards' batches and recorded 2 workers)."""
    train = mnist.train.subset(slice(0, 640))

    def trainer():
        return Trainer(tiny_network(), Nesterov(0.02, 0.87), batch_size=32, seed=11)

    two = trainer()
    two.shards = 2
    two.fit(train, epochs=1, run_dir=tmp_path / "two")
    unset = trainer()
    unset.fit(train, epochs=2, run_dir=tmp_path / "two", resume=True)
    assert unset.shards == 2
    unset.fit(train, epochs=1, run_dir=tmp_path / "new")
    assert unset.shards == 1 == json.loads((tmp_path / "new" / "config.json").read_text())["workers"]
    with pytest.warns(UserWarning, match="had ended at epoch 2"):
        unset.fit(train, epochs=2, run_dir=tmp_path / "two", resume=True)  # nothing to train: returned as it ended
    assert unset.shards == 2  # that fit's (it said 1, the last new run's)
    unset.batch_size = 1  # a new run of 1-sample batches: one shard's, whatever the last resumed run had
    unset.fit(train.subset(slice(0, 64)), epochs=1, run_dir=tmp_path / "ones")
    assert unset.shards == 1
    unset.batch_size = 32
    unset.shards = 3  # told a number, every fit takes it
    unset.fit(train, epochs=1, run_dir=tmp_path / "three")
    assert unset.shards == 3 == json.loads((tmp_path / "three" / "config.json").read_text())["workers"]


def test_the_last_epoch_is_evaluated_even_between_two_evaluations(mnist):
    result, _ = fit_small(mnist, epochs=3, eval_every=2)
    assert [record["epoch"] for record in result.history] == [2, 3]


def files(folder):
    """Each file's digest: a failed comparison of raw bytes takes pytest minutes to print."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("ending", ["early_stop", "max_epochs"])
def test_resuming_a_run_that_ended_trains_nothing_and_returns_its_ending(mnist, tmp_path, ending):
    # window 1 stops at the first evaluation whose error is above the one before: the 4th, which
    # climbs the cost, if not before.
    options = {"window": 1, "epochs": 40, "schedule": Climbing(start=3)} if ending == "early_stop" else {"epochs": 2}
    ended, ended_net = fit_small(mnist, tmp_path / "run", **options)
    assert ended.stop_reason == ending
    assert ended.epochs < 40 if ending == "early_stop" else ended.epochs == 2
    before = files(tmp_path / "run")
    with pytest.warns(UserWarning, match=f"had ended at epoch {ended.epochs} \\({ending.replace('_', ' ')}\\): "
                                         "nothing left to train"):
        again, net = fit_small(mnist, tmp_path / "run", resume=True, **options)
    assert files(tmp_path / "run") == before  # not an evaluation, checkpoint or history line more
    assert again.already_ended and not ended.already_ended
    assert (again.stop_reason, again.epochs, again.best_epoch, again.best_error) == \
        (ended.stop_reason, ended.epochs, ended.best_epoch, ended.best_error)
    assert again.history == ended.history
    assert again.seconds == Checkpoint.load(tmp_path / "run" / "checkpoint.npz").seconds > 0
    np.testing.assert_array_equal(again.best_network.params, ended.best_network.params)
    np.testing.assert_array_equal(net.params, ended_net.params)  # the network as the run left it
    if ending == "early_stop":  # any other total ends it as well, and config.json keeps the one it ran with
        with pytest.warns(UserWarning, match="early stop"):
            assert fit_small(mnist, tmp_path / "run", resume=True, **{**options, "epochs": 2})[0].already_ended
        assert files(tmp_path / "run") == before


def test_a_trainer_given_back_an_ended_run_holds_its_optimizer_state_too_and_trains_on_as_after_it(mnist, tmp_path):
    """The resume of an ended run gave the trainer the run's last parameters but kept its own
    optimizer state (none, for a new trainer): a fit after it went on from the one without the
    other, unlike a fit after the run itself."""
    def trainer():
        return Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11)

    train, validation = mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 500))
    after_the_run = trainer()
    after_the_run.fit(train, validation, epochs=2, run_dir=tmp_path / "run")
    given_back = trainer()
    with pytest.warns(UserWarning, match="had ended at epoch 2"):
        assert given_back.fit(train, validation, epochs=2, run_dir=tmp_path / "run", resume=True).already_ended
    np.testing.assert_array_equal(given_back.optimizer.state()["velocity"],
                                  after_the_run.optimizer.state()["velocity"])
    for continued in (after_the_run, given_back):
        continued.fit(train, validation, epochs=1)
    np.testing.assert_array_equal(given_back.network.params, after_the_run.network.params)


def test_a_run_that_ended_at_its_maximum_trains_on_to_a_larger_one_as_if_started_with_it(mnist, tmp_path):
    whole, whole_net = fit_small(mnist, tmp_path / "whole", epochs=4)
    run = tmp_path / "run"
    assert fit_small(mnist, run, epochs=2)[0].stop_reason == "max_epochs"
    longer, longer_net = fit_small(mnist, run, epochs=4, resume=True)
    np.testing.assert_array_equal(longer_net.params, whole_net.params)
    assert longer.history == [{**h, "epoch_seconds": g["epoch_seconds"], "elapsed_seconds": g["elapsed_seconds"]}
                              for h, g in zip(whole.history, longer.history)]
    assert (longer.epochs, longer.best_epoch, longer.best_error) == (whole.epochs, whole.best_epoch, whole.best_error)
    assert json.loads((run / "config.json").read_text())["epochs"] == 4
    before = files(run)
    with pytest.raises(ConfigError, match="has trained 4 epochs, more than the 3 asked for; resume it with a "
                                          "larger number of epochs"):
        fit_small(mnist, run, epochs=3, resume=True)
    assert files(run) == before


def test_a_resume_keeps_the_run_s_own_settings_unless_given(mnist, tmp_path):
    """Left out, epochs, eval_every and window are the run's; given, eval_every and window must be
    the run's, and epochs sets a new total."""
    train, validation = mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 500))

    def fit(**options):
        trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11)
        return trainer.fit(train, validation, run_dir=tmp_path / "run", **options)

    fit(epochs=4, eval_every=2, window=10)
    with pytest.warns(UserWarning, match="had ended at epoch 4"):
        assert fit(resume=True).already_ended  # not 100 epochs (the default for a new run)
    before = files(tmp_path / "run")
    for changed in ({"eval_every": 5}, {"window": 4}, {"acceptable_error": 0.5}):
        name = next(iter(changed))
        with pytest.raises(ConfigError, match=f"cannot resume: the run was started with another {name} \\("):
            fit(resume=True, **changed)
    assert files(tmp_path / "run") == before
    with pytest.raises(ConfigError, match="cannot resume: the training data differ from the run's \\(2000 samples as "
                                          "then, but other values\\)"):
        Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11).fit(
            mnist.train.subset(slice(2000, 4000)), validation, run_dir=tmp_path / "run", resume=True, epochs=6)
    relabelled = Dataset(train.images, (train.labels + 1) % 10, classes=train.classes, name=train.name)  # same images
    with pytest.raises(ConfigError, match="cannot resume: the training data differ from the run's \\(2000 samples as "
                                          "then, but other values\\)"):
        Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11).fit(
            relabelled, validation, run_dir=tmp_path / "run", resume=True, epochs=6)
    for other, differ in ((None, "500 samples then, 0 now"), (mnist.validation.subset(slice(500, 1000)),
                                                               "500 samples as then, but other values")):
        with pytest.raises(ConfigError, match=f"cannot resume: the validation data differ from the run's "
                                              f"\\({differ}\\), and the stop rule compares their errors"):
            Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11).fit(
                train, other, run_dir=tmp_path / "run", resume=True, epochs=6)
    renamed = Dataset(train.images, train.labels, classes=[*"9876543210"], name=train.name)  # same values
    with pytest.raises(ConfigError, match=re.escape(
            "cannot resume: the run's outputs are the classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, in that order, and the "
            "data resumed on names them 9, 8, 7, 6, 5, 4, 3, 2, 1, 0; give the training data the run's class names")):
        Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11).fit(
            renamed, Dataset(validation.images, validation.labels, classes=renamed.classes), run_dir=tmp_path / "run",
            resume=True, epochs=6)
    assert files(tmp_path / "run") == before
    longer = fit(resume=True, epochs=6, eval_every=2)
    assert [h["epoch"] for h in longer.history] == [2, 4, 6]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 6


@pytest.mark.parametrize("options, message", [
    ({"epochs": 0}, "epochs must be a whole number of at least 1, got 0"),
    ({"epochs": 2.5}, "epochs must be a whole number of at least 1, got 2.5"),
    ({"eval_every": True}, "eval_every must be a whole number of at least 1, got True"),
    ({"window": 0}, "window must be a whole number of at least 1, got 0"),
    ({"checkpoint_every": -1}, "checkpoint_every must be a whole number of at least 0, got -1"),
    ({"acceptable_error": 50}, r"acceptable_error must be an error rate, a fraction in \[0, 1\) such as 0.02"),
])
def test_fit_refuses_settings_it_cannot_train_with_before_any_work(mnist, tmp_path, options, message):
    trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), batch_size=32, seed=11)
    with pytest.raises(ConfigError, match=message):
        trainer.fit(mnist.train, mnist.validation, run_dir=tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()


def test_numpy_numbers_are_taken_as_plain_ones_and_the_run_files_stay_json(mnist, tmp_path):
    from distnet import LeakyReLU

    net = Network([Dense(8, LeakyReLU(np.float32(0.01))), Dense(10, "softmax")], input_size=784, seed=np.int64(3))
    trainer = Trainer(net, Nesterov(np.float32(0.02), np.float32(0.87)), l2=np.float32(1e-4),
                      batch_size=np.int64(32), seed=np.int64(11))
    trainer.fit(mnist.train.subset(slice(0, 640)), mnist.validation.subset(slice(0, 100)), epochs=np.int64(2),
                eval_every=np.int64(1), window=np.int64(4), acceptable_error=np.float64(1e-4),
                checkpoint_every=np.int64(7), run_dir=tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["epochs"], config["batch_size"], config["seed"]) == (2, 32, 11)
    assert Checkpoint.load(tmp_path / "run" / "checkpoint.npz").epoch == 2
    assert Network.load(tmp_path / "run" / "best.npz").spec() == net.spec()


def test_validation_data_that_does_not_fit_is_refused_before_any_work(mnist, tmp_path):
    from distnet import Dataset

    narrow = Dataset(np.zeros((10, 5), np.float32), np.zeros(10, int))
    with pytest.raises(ConfigError, match="the network does not fit the validation data: it takes 784 inputs and "
                                          "gives 10 outputs, the data has 5 values per sample and 10 classes"):
        Trainer(tiny_network(), Nesterov(0.02), seed=1).fit(mnist.train, narrow, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_run_from_before_validation_was_recorded_keeps_its_best_network_on_a_resume_without_one(mnist, tmp_path):
    run = tmp_path / "run"
    fit_small(mnist, run, epochs=2, checkpoint_every=20)
    checkpoint = Checkpoint.load(run / "checkpoint.prev.npz")  # in epoch 2, after epoch 1's best network
    for config in (checkpoint.config, json.loads((run / "config.json").read_text())):
        del config["validation_samples"], config["validation_crc32"]
    (run / "config.json").write_text(json.dumps(checkpoint.config))
    (run / "checkpoint.npz").unlink()
    checkpoint.save(run / "checkpoint.npz")
    trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11)
    result = trainer.fit(mnist.train.subset(slice(0, 2000)), None, run_dir=run, resume=True)
    assert result.epochs == 2 and checkpoint.best_params is not None
    for best in (result.best_network.params, Network.load(run / "best.npz").params):
        np.testing.assert_array_equal(best, checkpoint.best_params)
    assert not np.array_equal(result.best_network.params, trainer.network.params)  # not the last network


def checkpoint_of_epoch_2_of_3_with_the_best_network_of_epoch_3_left_by_a_crash(mnist, run):
    """As a run killed after epoch 3's evaluation wrote its best network, before its checkpoint."""
    fit_small(mnist, run, epochs=3)
    assert json.loads((run / "best.json").read_text())["epoch"] == 3
    (run / "checkpoint.npz").unlink()
    (run / "checkpoint.prev.npz").rename(run / "checkpoint.npz")
    return Checkpoint.load(run / "checkpoint.npz")


def test_a_resume_takes_the_best_network_of_its_checkpoint_not_a_newer_one_a_crash_left(mnist, tmp_path,
                                                                                        monkeypatch):
    run = tmp_path / "run"
    checkpoint = checkpoint_of_epoch_2_of_3_with_the_best_network_of_epoch_3_left_by_a_crash(mnist, run)
    assert checkpoint.epoch == 2 and not np.array_equal(checkpoint.best_params, Network.load(run / "best.npz").params)
    monkeypatch.setattr(TrainerBase, "_train_epoch", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # stopped right after the resume restored the run
        fit_small(mnist, run, epochs=3, resume=True)
    np.testing.assert_array_equal(Network.load(run / "best.npz").params, checkpoint.best_params)
    assert json.loads((run / "best.json").read_text())["epoch"] == checkpoint.stopping_state["best_epoch"]


def test_a_resume_on_other_workers_keeps_the_newer_best_network_it_will_not_train_again(mnist, tmp_path,
                                                                                    monkeypatch):
    """Another draw of the training does not reach epoch 3's network again: best.npz was replaced
    by a worse one, and the better was in no file (the same workers' resume trains it again)."""
    run = tmp_path / "run"
    checkpoint_of_epoch_2_of_3_with_the_best_network_of_epoch_3_left_by_a_crash(mnist, run)
    newer, record = Network.load(run / "best.npz").params, (run / "best.json").read_text()
    monkeypatch.setattr(TrainerBase, "_train_epoch", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        resume_on_two_shards_keeping(mnist, run, newer, "best.npz restarts from the checkpoint's", epochs=3,
                                     eval_every=1)
    assert (run / "best-before-resume.json").read_text() == record
    assert json.loads((run / "best.json").read_text())["epoch"] == 2


def test_a_resume_on_other_workers_from_before_the_first_evaluation_keeps_the_best_network_saved_since(
        mnist, tmp_path):
    """A checkpoint from before the run's first evaluation (checkpoint.npz lost to a kill between
    its rotation and its writing, say) left best.npz to be overwritten: the run's first evaluated
    network was lost for good."""
    run = tmp_path / "run"
    fit_small(mnist, run, epochs=2, eval_every=2)  # checkpoints after epochs 1 and 2, the best network of epoch 2
    (run / "checkpoint.npz").unlink()  # checkpoint.prev.npz, of epoch 1, is the newest now
    resume_on_two_shards_keeping(mnist, run, Network.load(run / "best.npz").params,
                                 "the next evaluation writes best.npz anew", epochs=2, eval_every=2)


def test_a_run_ended_at_its_previous_checkpoint_keeps_the_best_network_saved_after_it(mnist, tmp_path):
    """checkpoint.npz damaged, a resume with the epochs of checkpoint.prev.npz ends the run there.
    best.npz, of the lost checkpoint's epoch, was overwritten with the older one's best network:
    lost for good, since the run trains no more."""
    run = tmp_path / "run"
    fit_small(mnist, run, epochs=3)
    newer, newer_record = (run / "best.npz").read_bytes(), (run / "best.json").read_text()
    assert json.loads(newer_record)["epoch"] == 3  # (else nothing would be lost)
    (run / "checkpoint.npz").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.warns(UserWarning) as heard:
        result, _ = fit_small(mnist, run, epochs=2, resume=True)
    assert f"{run / 'best.npz'} came after the checkpoint this run resumes from, and the run ends at that " \
           f"checkpoint: it is kept as best-before-resume.npz, and best.npz is the best network as of the " \
           f"checkpoint" in [str(w.message) for w in heard]
    assert (run / "best-before-resume.npz").read_bytes() == newer
    assert (run / "best-before-resume.json").read_text() == newer_record
    assert result.already_ended and result.epochs == 2
    assert json.loads((run / "best.json").read_text())["epoch"] == result.best_epoch <= 2
    np.testing.assert_array_equal(Network.load(run / "best.npz").params, result.best_network.params)


def test_a_resume_on_other_workers_that_owes_the_first_evaluation_sets_nothing_aside(mnist, tmp_path, monkeypatch):
    """Killed between its first best.npz and the checkpoint after it, a run resumed on other
    workers set that best.npz aside with a warning, though the evaluation it owes scores the same
    network again and writes the same best.npz."""
    run = tmp_path / "run"
    with monkeypatch.context() as patched:
        kill_at_checkpoint(patched, when=lambda checkpoint: checkpoint.history)  # the first after an evaluation
        with pytest.raises(Killed):
            fit_small(mnist, run, epochs=2)
    saved = Checkpoint.load(run / "checkpoint.npz")
    evaluated = (run / "best.npz").read_bytes()
    trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11)
    trainer.shards = 2
    with warnings.catch_warnings(record=True) as heard:
        warnings.simplefilter("always")
        trainer.fit(mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 500)), epochs=1,
                    window=3, run_dir=run, resume=True)
    assert (saved.epoch, saved.history) == (1, []) and not (run / "best-before-resume.npz").exists()
    assert not [w for w in heard if "came after the checkpoint" in str(w.message)]
    assert (run / "best.npz").read_bytes() == evaluated


def resume_on_two_shards_keeping(mnist, run, newer, then, **fit_args):
    """Resume ``run`` on two shards (another draw), which keeps the best network ``newer`` saved
    after its checkpoint as best-before-resume.npz and warns so, saying ``then`` of best.npz."""
    trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11)
    trainer.shards = 2
    with pytest.warns(UserWarning) as heard:
        try:
            trainer.fit(mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 500)), window=3,
                        run_dir=run, resume=True, **fit_args)
        finally:
            assert any(str(w.message) == f"{run / 'best.npz'} came after the checkpoint this run resumes from, and "
                                         f"the run goes on otherwise than it would have: it is kept as "
                                         f"best-before-resume.npz, and {then}" for w in heard)
            np.testing.assert_array_equal(Network.load(run / "best-before-resume.npz").params, newer)


def test_a_distributed_run_resumed_in_one_process_is_said_to_sum_its_gradients_in_another_order(mnist, tmp_path):
    run = tmp_path / "run"
    fit_small(mnist, run, epochs=1)
    run_config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**run_config, "workers": 2, "protocol": "channel"}))
    for name in ("checkpoint.npz", "checkpoint.prev.npz"):  # as two workers on Ray left it
        if (run / name).exists():
            checkpoint = Checkpoint.load(run / name)
            checkpoint.config = {**checkpoint.config, "workers": 2}
            checkpoint.save(run / name)
    with pytest.warns(UserWarning, match=r"now trains in one process, where it trained on Ray so far, with the "
                                         r"same mini-batches of 2 shards: their gradients are summed in another order"):
        fit_small(mnist, run, epochs=2, resume=True)


def test_a_checkpoint_without_the_best_network_resumes_with_best_npz(mnist, tmp_path, monkeypatch):
    run = tmp_path / "run"
    fit_small(mnist, run, epochs=2, checkpoint_every=20)
    (run / "checkpoint.npz").unlink()
    checkpoint = Checkpoint.load(run / "checkpoint.prev.npz")
    checkpoint.best_params = None  # as distnet wrote them until 2026-12-01
    checkpoint.save(run / "checkpoint.npz")
    tiny_network(seed=4).save(run / "best.npz")  # what such a run left there is all there is to go by
    best = (run / "best.npz").read_bytes()
    given = []
    load_state = EarlyStopping.load_state
    monkeypatch.setattr(EarlyStopping, "load_state", lambda self, state, params: (given.append(params),
                                                                                   load_state(self, state, params)))
    monkeypatch.setattr(TrainerBase, "_train_epoch", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # stopped right after the resume restored the run
        fit_small(mnist, run, epochs=2, resume=True, checkpoint_every=20)
    np.testing.assert_array_equal(given[0], tiny_network(seed=4).params)  # the stop rule's best network
    assert (run / "best.npz").read_bytes() == best  # and not rewritten


@pytest.mark.parametrize("best_npz", ["kept", "gone"])
def test_an_ended_run_whose_checkpoint_lacks_the_best_network_returns_best_npz_or_its_last(mnist, tmp_path,
                                                                                           best_npz):
    run = tmp_path / "run"
    ended, _ = fit_small(mnist, run, epochs=2)
    checkpoint = Checkpoint.load(run / "checkpoint.npz")
    checkpoint.best_params = None  # as distnet wrote them until 2026-12-01
    checkpoint.save(run / "checkpoint.npz")
    if best_npz == "kept":
        tiny_network(seed=4).save(run / "best.npz")  # what such a run left there is all there is to go by
        record = json.loads((run / "best.json").read_text())
        (run / "best.json").write_text(json.dumps({**record, "epoch": 3}))  # as a later resume, killed, left it
        before = files(run)
    else:
        (run / "best.npz").unlink()
    with pytest.warns(UserWarning, match="had ended at epoch 2"):
        again, net = fit_small(mnist, run, epochs=2, resume=True)
    if best_npz == "kept":
        np.testing.assert_array_equal(again.best_network.params, tiny_network(seed=4).params)
        assert (again.best_error, again.best_epoch) == (ended.best_error, ended.best_epoch)
        assert files(run) == before  # best.json not made to call that network the one of the checkpoint's epoch
    else:  # nothing left of the best network: the last one stands in for it, unscored
        np.testing.assert_array_equal(again.best_network.params, checkpoint.params)
        assert np.isnan(again.best_error) and again.best_epoch == 2
    np.testing.assert_array_equal(net.params, checkpoint.params)


def test_a_run_without_validation_resumed_to_more_epochs_ends_with_its_last_network(mnist, tmp_path):
    run, train = tmp_path / "run", mnist.train.subset(slice(0, 2000))
    Trainer(tiny_network(), Nesterov(0.02, 0.87), seed=11).fit(train, None, epochs=2, run_dir=run)
    trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), seed=11)
    result = trainer.fit(train, None, epochs=4, run_dir=run, resume=True)
    np.testing.assert_array_equal(result.best_network.params, trainer.network.params)
    np.testing.assert_array_equal(Network.load(run / "best.npz").params, trainer.network.params)
    assert result.best_epoch == 4 and not (run / "best.json").exists()


def test_a_crash_before_the_first_checkpoint_after_the_first_best_network_leaves_no_false_record(mnist, tmp_path,
                                                                                                monkeypatch):
    run = tmp_path / "run"
    fit_small(mnist, run, epochs=2, eval_every=2)
    (run / "checkpoint.npz").unlink()
    (run / "checkpoint.prev.npz").rename(run / "checkpoint.npz")  # epoch 1's: no evaluation yet
    record = (run / "best.json").read_text()
    monkeypatch.setattr(TrainerBase, "_train_epoch", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # stopped right after the resume restored the run
        fit_small(mnist, run, epochs=2, eval_every=2, resume=True)
    assert (run / "best.json").read_text() == record


def resume_ending_at_epoch_2_keeping_the_best_network_ahead(mnist, run):
    """Resume ``run``, whose checkpoint ended it at epoch 2 and whose best.npz came after it: the
    result, after both warnings."""
    with pytest.warns(UserWarning) as heard:
        result, _ = fit_small(mnist, run, epochs=2, resume=True)
    said = [str(w.message) for w in heard]
    assert len(said) == 2 and "had ended at epoch 2" in said[0] and said[1].startswith(
        f"{run / 'best.npz'} came after the checkpoint this run resumes from, and the run ends at that checkpoint: "
        f"it is kept as best-before-resume.npz"), said
    return result


def test_an_ended_run_returns_the_best_network_of_its_checkpoint_and_its_files_say_the_same(mnist, tmp_path):
    """A crash left epoch 3's best network; the run, ended at 2, returns and writes its checkpoint's,
    and keeps epoch 3's, which it will not train again, as best-before-resume.npz."""
    run = tmp_path / "run"
    checkpoint = checkpoint_of_epoch_2_of_3_with_the_best_network_of_epoch_3_left_by_a_crash(mnist, run)
    kept, ahead = (run / "checkpoint.npz").read_bytes(), (run / "best.npz").read_bytes()
    result = resume_ending_at_epoch_2_keeping_the_best_network_ahead(mnist, run)
    assert (run / "best-before-resume.npz").read_bytes() == ahead
    np.testing.assert_array_equal(result.best_network.params, checkpoint.best_params)
    np.testing.assert_array_equal(Network.load(run / "best.npz").params, checkpoint.best_params)
    assert result.best_epoch == checkpoint.stopping_state["best_epoch"] == \
        json.loads((run / "best.json").read_text())["epoch"]
    assert (run / "checkpoint.npz").read_bytes() == kept
    before = files(run)  # a second resume finds nothing to set right
    with pytest.warns(UserWarning, match="had ended at epoch 2"):
        fit_small(mnist, run, resume=True)
    assert files(run) == before


@pytest.mark.parametrize("damage", ["removed", "truncated"])
def test_an_ended_run_whose_best_npz_was_removed_or_damaged_writes_it_again_from_its_checkpoint(mnist, tmp_path,
                                                                                             damage):
    """Resumed, it said "best network: RUN/best.npz" with no such file, and no command got it back."""
    run, unscored = tmp_path / "run", tmp_path / "unscored"
    fit_small(mnist, run, epochs=2)
    Trainer(tiny_network(), Nesterov(0.02), seed=1).fit(mnist.train.subset(slice(0, 640)), None, epochs=1,
                                                        run_dir=unscored)
    for folder in (run, unscored):
        kept = (folder / "best.npz").read_bytes()
        if damage == "removed":
            (folder / "best.npz").unlink()
        else:
            (folder / "best.npz").write_bytes(kept[:len(kept) // 2])
        if folder == run:
            (folder / "best.json").unlink()
            with pytest.warns(UserWarning, match="had ended at epoch 2"):
                fit_small(mnist, run, epochs=2, resume=True)
            assert json.loads((run / "best.json").read_text())["epoch"] == \
                Checkpoint.load(run / "checkpoint.npz").stopping_state["best_epoch"]
        else:
            with pytest.warns(UserWarning, match="had ended at epoch 1"):
                Trainer(tiny_network(), Nesterov(0.02), seed=1).fit(mnist.train.subset(slice(0, 640)), None,
                                                                    epochs=1, run_dir=unscored, resume=True)
        assert (folder / "best.npz").read_bytes() == kept  # the same network, and what it was trained on


def test_a_resume_names_what_differs_before_it_looks_at_the_data(mnist, tmp_path):
    train = mnist.train.subset(slice(0, 640))
    Trainer(tiny_network(), Nesterov(0.02), seed=1).fit(train, epochs=1, run_dir=tmp_path / "run")
    wider = Trainer(tiny_network(np.float32), Nesterov(0.02), seed=1)
    with pytest.raises(ConfigError, match="cannot resume: the run was started with another network dtype \\('float64' in its checkpoint, "
                                          "'float32' now\\); resume with"):
        wider.fit(train, epochs=2, run_dir=tmp_path / "run", resume=True)


def test_a_refused_resume_names_the_field_of_a_spec_that_differs_not_the_whole_spec():
    from distnet.resume import _differences
    then = Network([Dense(36, "leaky_relu"), Dense(10, "softmax")], input_size=784).spec()
    now = Network([Dense(64, {"name": "leaky_relu", "alpha": 0.1}), Dense(10, "softmax")], input_size=784).spec()
    assert _differences("network", then, now) == ["another network layer 1 size (36 in its checkpoint, 64 now)",
                                                  "another network layer 1 activation alpha (0.01 in its "
                                                  "checkpoint, 0.1 now)"]
    assert _differences("l2", 1e-4, 0.0) == ["another l2 (0.0001 in its checkpoint, 0.0 now)"]
    assert _differences("schedule", None, {"name": "cosine"}) == [
        "another schedule (None in its checkpoint, {'name': 'cosine'} now)"]
    assert _differences("seed", 3, 3) == []


def test_a_resume_to_a_new_total_interrupted_resumes_to_that_total(mnist, tmp_path):
    """The new total is in config.json at once: a later resume without epochs trains to it."""
    from test_schedules import InterruptAt

    train, validation = mnist.train.subset(slice(0, 640)), mnist.validation.subset(slice(0, 100))

    def trainer():
        return Trainer(tiny_network(), Nesterov(0.02, 0.87), batch_size=32, seed=11)

    trainer().fit(train, validation, epochs=2, eval_every=1, run_dir=tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        trainer().fit(train, validation, epochs=4, run_dir=tmp_path / "run", resume=True,
                      reporter=InterruptAt(epoch=3, step=5))
    assert trainer().fit(train, validation, run_dir=tmp_path / "run", resume=True).epochs == 4


def test_resume_checkpoints_and_extra_config_need_a_run_directory(mnist):
    with pytest.raises(ConfigError, match="resume=True continues the run in run_dir: give run_dir"):
        Trainer(tiny_network(), Nesterov(0.02), seed=1).fit(mnist.train, resume=True)
    with pytest.raises(ConfigError, match="checkpoint_every=3 writes checkpoints into run_dir: give run_dir"):
        Trainer(tiny_network(), Nesterov(0.02), seed=1).fit(mnist.train, epochs=1, checkpoint_every=3)
    with pytest.raises(ConfigError, match=r"^extra_config \(preset, note\) goes into the config.json of run_dir: give "
                                          r"run_dir, or leave extra_config out$"):  # was taken, and written nowhere
        Trainer(tiny_network(), Nesterov(0.02), seed=1).fit(mnist.train, epochs=1,
                                                            extra_config={"preset": "seed", "note": 1})


def test_a_resume_of_a_folder_without_a_run_says_so(mnist, tmp_path):
    trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), batch_size=32, seed=11)
    with pytest.raises(ConfigError, match=f"{tmp_path / 'typo'} does not exist; expected the folder of a run"):
        trainer.fit(mnist.train, run_dir=tmp_path / "typo", resume=True)
    with pytest.raises(ConfigError, match=f"{tmp_path} has no checkpoint to resume from"):
        trainer.fit(mnist.train, run_dir=tmp_path, resume=True)
    assert list(tmp_path.iterdir()) == []


def test_fit_refuses_a_reporter_or_run_dir_it_cannot_use_before_writing_anything(mnist, tmp_path):
    trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), batch_size=32, seed=11)
    train = mnist.train.subset(slice(0, 320))
    for reporter, given in ((TerminalReporter, "the class TerminalReporter, not an instance"),
                            ("stderr", "'stderr', which lacks on_start, on_steps, on_evaluation, on_end")):
        with pytest.raises(ConfigError, match=rf"reporter must be a Reporter, such as TerminalReporter\(\) \(or an "
                                              rf"object with the methods on_start, on_steps, on_evaluation, "
                                              rf"on_end\); got {re.escape(given)}$"):
            trainer.fit(train, epochs=1, run_dir=tmp_path / "run", reporter=reporter)
    with pytest.raises(ConfigError, match=r"run_dir must be a path \(a str or pathlib.Path, not empty\), got 5$"):
        trainer.fit(train, epochs=1, run_dir=5)  # a TypeError of pathlib's before
    assert not (tmp_path / "run").exists()  # the class had failed only once config.json was written


def test_fit_refuses_data_it_cannot_train_on(mnist):
    trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), batch_size=32, seed=11)
    with pytest.raises(ConfigError, match=r"train must be a distnet Dataset \(such as load_mnist\(\).train, or "
                                          r"Dataset\(images, labels\) for your own data\), got tuple"):
        trainer.fit((mnist.train.images, mnist.train.labels))
    with pytest.raises(ConfigError, match="validation must be a distnet Dataset"):
        trainer.fit(mnist.train, mnist.validation.images)
    five_classes = Trainer(Network([Dense(5, "softmax")], input_size=784, seed=1), Nesterov(0.02), seed=1)
    with pytest.raises(ConfigError, match="the network does not fit the training data: it takes 784 inputs and gives 5 "
                                          r"outputs, the data has 784 values per sample and 10 classes \(the ten "
                                          r"digits, a Dataset's classes unless it is given classes=\[...\] of your "
                                          r"own\)"):
        five_classes.fit(Dataset(mnist.train.images[:320], mnist.train.labels[:320] % 5))
    five = Dataset(mnist.train.images[:320], mnist.train.labels[:320] % 5, classes=tuple("abcde"))
    assert five_classes.fit(five, epochs=1).epochs == 1
    images = mnist.validation.images[:100].copy()
    images[[7, 42], 3] = [np.nan, np.inf]
    with pytest.raises(ConfigError, match=r"the validation data hold NaN or infinite values \(sample 7 is the first "
                                          r"such\); fix or drop those samples"):
        trainer.fit(mnist.train, Dataset(images, mnist.validation.labels[:100]))
    beyond_float32 = mnist.train.images[:320].astype(np.float64)
    beyond_float32[5, 0] = 1e39  # finite in float64, infinite once cast to the network's float32
    with pytest.raises(ConfigError, match=re.escape(  # "NaN or infinite values" before
            "the training data hold values too large for float32, the network's dtype (sample 5 is the first such: "
            "beyond ±3.4e+38 a value becomes infinite); scale the data")):
        Trainer(tiny_network(np.float32), Nesterov(0.02), seed=1).fit(Dataset(beyond_float32,
                                                                               mnist.train.labels[:320]))


@pytest.mark.parametrize("options, message", [
    ({"optimizer": Nesterov}, "optimizer must be an Optimizer, such as Nesterov(0.02, 0.87); got the class "
                              "Nesterov, not an instance"),
    ({"optimizer": "nesterov"}, "optimizer must be an Optimizer, such as Nesterov(0.02, 0.87); got 'nesterov'"),
    ({"network": [Dense(10, "softmax")]}, "network must be a Network, such as Network(["),
    ({"schedule": "cosine"}, "schedule must be a Schedule or None, such as CosineDecay(); got 'cosine'"),
    ({"augmentation": True}, "augmentation must be a RandomAffine or None, such as RandomAffine(); got True"),
    ({"seed": "1"}, "seed must be a whole number >= 0 (or None for a random one), got '1'"),
    ({"seed": -1}, "seed must be a whole number >= 0"),
])
def test_a_trainer_refuses_parts_of_the_wrong_kind_when_made(options, message):
    arguments = {"network": tiny_network(), "optimizer": Nesterov(0.02, 0.87), **options}
    with pytest.raises(ConfigError, match=re.escape(message)):
        Trainer(arguments.pop("network"), arguments.pop("optimizer"), **arguments)


def xor_data(n: int, seed: int):
    """Points around the corners of the unit square, labelled as XOR of their corner: no line
    separates the classes, a hidden layer does."""
    from distnet import Dataset

    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n, 2))
    points = (corners + rng.normal(0, 0.1, size=(n, 2))).astype(np.float32)
    return Dataset(points, corners[:, 0] ^ corners[:, 1], name="xor", classes=("same", "different"))


def test_data_of_your_own_trains_with_fit():
    train, validation = xor_data(2000, seed=1), xor_data(400, seed=2)
    net = Network([Dense(8, "tanh"), Dense(2, "softmax")], input_size=2, cost="cross_entropy", seed=4)
    result = Trainer(net, Nesterov(0.1, 0.9), batch_size=20, seed=5).fit(train, validation, epochs=20, eval_every=5)
    assert result.best_error < 0.02
    with pytest.raises(ConfigError, match="dataset\\[i\\] draws a 28x28 image, and these samples have 2 values each"):
        train[0]
    with pytest.raises(ConfigError, match="augmentation moves 28x28 images, and these samples have 2 values each"):
        Trainer(net, Nesterov(0.1), seed=5, augmentation=RandomAffine()).fit(train)


def test_a_fit_without_validation_set_records_and_reports_its_training_each_evaluation(mnist, tmp_path):
    scored, _ = fit_small(mnist, epochs=3)
    terminal, lines = io.StringIO(), io.StringIO()
    result = Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11).fit(
        mnist.train.subset(slice(0, 2000)), None, epochs=3, eval_every=1, run_dir=tmp_path / "run",
        reporter=TerminalReporter(terminal))
    # The same training as the run that has a validation set, without the validation's numbers.
    kept = ("epoch", "train_error", "train_cost")
    assert [{k: h[k] for k in kept} for h in result.history] == [{k: h[k] for k in kept} for h in scored.history]
    assert not {"validation_error", "best_error", "best_epoch"} & set().union(*result.history)
    on_disk = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert on_disk == result.history and math.isnan(result.best_error) and result.best_epoch == 3
    printed = terminal.getvalue().splitlines()
    assert [line.split("  epochs/min")[0].rsplit("  ", 1)[0] for line in printed[2:5]] == [
        f"epoch {h['epoch']:>3}  train error {100 * h['train_error']:5.2f}%  train cost {h['train_cost']:.4g}"
        for h in result.history]
    assert printed[5].endswith("s of training; no validation set, so the last network is kept")
    JsonLinesReporter(lines).on_end(result)
    assert json.loads(lines.getvalue())["best_error"] is None


def test_a_fit_result_reads_in_one_line(mnist):
    result, _ = fit_small(mnist, epochs=2)
    assert repr(result) == (f"FitResult(best_error={result.best_error:.4f}, best_epoch={result.best_epoch}, "
                            f"epochs=2, stop_reason='max_epochs', evaluations=2, run_dir=None, "
                            f"seconds={result.seconds:.1f})")


def test_a_trainer_keeps_none_of_the_data_after_its_fit():
    rng = np.random.default_rng(0)
    train = Dataset(rng.random((320, 784), np.float32), rng.integers(0, 10, 320))
    images = weakref.ref(train.images)
    trainer = Trainer(tiny_network(np.float32), Nesterov(0.02, 0.87), batch_size=32, seed=1,
                      augmentation=RandomAffine())
    trainer.fit(train, epochs=1)
    kept = [name for name, value in vars(trainer).items()
            if isinstance(value, Dataset) or (isinstance(value, np.ndarray) and value.size >= train.images.size)]
    assert kept == []  # neither the data (nor a copy) nor its augmented images
    del train
    gc.collect()
    assert images() is None


def test_a_fit_draws_its_batches_and_each_epoch_s_augmentation_from_the_trainer_s_seed():
    """The trainer's seed reaches the batch plan (two seeds train apart, one seed twice alike) and
    the augmentation, which is asked for new draws each epoch: (seed, epoch, shard)."""
    class Recording(RandomAffine):
        def __init__(self):
            super().__init__()
            self.keys = []

        def epoch(self, images, seed, epoch, shard=0, out=None):
            self.keys.append((seed, epoch, shard))
            return super().epoch(images, seed, epoch, shard, out)

    rng = np.random.default_rng(0)
    train = Dataset(rng.random((96, 784), np.float32), rng.integers(0, 10, 96))

    def trained(seed, augmentation=None):
        net = tiny_network(np.float32)
        Trainer(net, Nesterov(0.02, 0.87), batch_size=32, seed=seed, augmentation=augmentation).fit(train, epochs=2)
        return net.params

    np.testing.assert_array_equal(trained(1), trained(1))
    assert not np.array_equal(trained(1), trained(2))  # no augmentation: the batches differ
    recording = Recording()
    trained(7, recording)
    assert recording.keys == [(7, 0, 0), (7, 1, 0)]


def test_a_fit_trains_on_the_caller_s_data_when_it_has_the_network_s_dtype(monkeypatch):
    rng = np.random.default_rng(0)
    train, validation = (Dataset(rng.random((n, 784), np.float32), rng.integers(0, 10, n)) for n in (320, 64))
    opened, open_data = [], Trainer._open
    monkeypatch.setattr(Trainer, "_open", lambda self, *args: opened.extend(args[:2]) or open_data(self, *args))
    Trainer(tiny_network(np.float32), Nesterov(0.02, 0.87), batch_size=32, seed=1).fit(train, validation, epochs=1)
    assert np.shares_memory(opened[0].images, train.images)  # no copy of the training set (150 MB for MNIST)
    assert np.shares_memory(opened[1].images, validation.images)
    Trainer(tiny_network(np.float64), Nesterov(0.02, 0.87), batch_size=32, seed=1).fit(train, validation, epochs=1)
    assert opened[2].images.dtype == np.float64 and opened[3].images.dtype == np.float64


def test_the_best_network_is_that_of_the_best_evaluation_not_the_last(mnist, tmp_path):
    train, validation = mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 500))
    net = tiny_network()
    result = Trainer(net, Nesterov(0.02, 0.87), batch_size=32, seed=11, schedule=Climbing()).fit(
        train, validation, epochs=4, eval_every=1, window=20, run_dir=tmp_path / "run")
    assert result.best_epoch < 4 and net.error_rate(validation.images, validation.labels) > result.best_error
    assert result.best_network.error_rate(validation.images, validation.labels) == result.best_error
    assert Network.load(tmp_path / "run").error_rate(validation.images, validation.labels) == result.best_error


def test_a_trainer_shows_what_it_trains_with():
    trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=64, seed=3)
    assert repr(trainer) == ("Trainer(network=784-8-10, optimizer=Nesterov(learning_rate=0.02, momentum=0.87), "
                             "l2=0.0001, batch_size=64, seed=3)")


def test_a_run_directory_held_by_another_training_is_refused_untouched(mnist, tmp_path):
    fit_small(mnist, tmp_path / "run", epochs=1)
    before = files(tmp_path / "run")
    with RunDir(tmp_path / "run").held(create=False):  # as a training in another process holds it
        for resume in (True, False):
            with pytest.raises(ConfigError, match="is in use: another process is training this run"):
                fit_small(mnist, tmp_path / "run", epochs=2, resume=resume)
    assert files(tmp_path / "run") == before
    resumed, _ = fit_small(mnist, tmp_path / "run", epochs=2, resume=True)  # free again
    assert resumed.epochs == 2 and not resumed.already_ended


class SessionThatCannotStart(Trainer):
    def _session(self, run, reporter):
        raise ConfigError("cannot reach a Ray cluster")  # as a distributed trainer whose cluster is not there


def test_a_run_directory_made_for_a_training_that_could_not_start_is_not_left_behind(mnist, tmp_path):
    train = mnist.train.subset(slice(0, 320))
    trainer = SessionThatCannotStart(tiny_network(), Nesterov(0.02, 0.87), batch_size=32, seed=1)
    (tmp_path / "kept").mkdir()  # folders that were there stay
    for run in (tmp_path / "new", tmp_path / "new" / "deeper", tmp_path / "kept"):
        with pytest.raises(ConfigError, match="cannot reach"):
            trainer.fit(train, epochs=1, run_dir=run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "new"] and not any((tmp_path / "new").iterdir())


def test_a_resumed_run_counts_the_seconds_of_every_session(mnist, tmp_path):
    # Three epochs, then one more: the session of one epoch alone would take about a third as long.
    fit_small(mnist, tmp_path / "run", epochs=3)
    first = Checkpoint.load(tmp_path / "run" / "checkpoint.npz").seconds
    assert first > 0
    resumed, _ = fit_small(mnist, tmp_path / "run", epochs=4, resume=True)
    assert Checkpoint.load(tmp_path / "run" / "checkpoint.npz").seconds > first
    assert resumed.seconds > first
    # ... and so does the history's elapsed time, which went on from the first session's.
    elapsed = [h["elapsed_seconds"] for h in resumed.history]
    assert elapsed == sorted(elapsed) and elapsed[-1] > first


def test_a_checkpoint_without_seconds_loads_as_zero_and_bad_seconds_are_refused(mnist, tmp_path):
    from distnet.errors import ModelFormatError
    from distnet.io import npz_bytes, read_npz

    fit_small(mnist, tmp_path / "run", epochs=1)
    path = tmp_path / "run" / "checkpoint.npz"
    arrays = read_npz(path.read_bytes(), str(path), required=("params", "meta"))
    meta = json.loads(arrays.pop("meta").tobytes())
    for seconds, expected in ((None, 0.0), (-1.0, None), ("ten", None)):
        if seconds is None:
            meta.pop("seconds")
        else:
            meta["seconds"] = seconds
        path.write_bytes(npz_bytes(arrays, meta))
        if expected is None:
            with pytest.raises(ModelFormatError, match="malformed \\(seconds\\)"):
                Checkpoint.load(path)
        else:
            assert Checkpoint.load(path).seconds == expected


def test_resume_from_mid_epoch_checkpoint(mnist, tmp_path):
    whole, whole_net = fit_small(mnist, tmp_path / "whole", epochs=2)
    run = tmp_path / "mid"
    fit_small(mnist, run, epochs=2, checkpoint_every=25)
    # Roll back to a mid-epoch checkpoint by hand: epoch 1 (0-based), step 50.
    ckpt = Checkpoint.load(run / "checkpoint.prev.npz")
    assert (ckpt.epoch, ckpt.step) == (1, 50)
    ckpt.save(run / "checkpoint.npz")
    starts = StartRecorder()
    resumed, net = fit_small(mnist, run, epochs=2, resume=True, checkpoint_every=25, reporter=starts)
    np.testing.assert_array_equal(net.params, whole_net.params)
    assert without_times(resumed.history) == without_times(whole.history)
    assert [(i["first_epoch"], i["first_step"]) for i in starts.infos] == [(2, 50)]  # the bar's rate counts from there


class StartRecorder(Reporter):
    def __init__(self):
        self.infos = []

    def on_start(self, info):
        self.infos.append(info)


class StepCounter(Reporter):
    def __init__(self):
        self.looks = []

    def on_steps(self, epoch, step, steps, stats, seconds):
        self.looks.append((epoch, step))


def test_chunk_size_grows_to_about_a_second_of_steps_within_bounds():
    chunks = ChunkSizer(1562)
    assert chunks.size == 157  # a tenth of an epoch to begin with
    chunks.record(157, 0.05)   # 3,140 steps a second: the whole epoch fits in a second
    assert chunks.size == 1562
    chunks.record(1562, 2.0)   # 781 steps a second
    assert chunks.size == 781
    chunks.record(781, 100.0)  # slow steps: still a tenth of an epoch at least
    assert chunks.size == 157
    assert ChunkSizer(3).size == 1


def test_a_chunk_runs_to_the_end_of_the_epoch_rather_than_leave_a_short_one_behind():
    chunks = ChunkSizer(97)  # the wide network's epoch
    chunks.record(10, 0.22)  # 45 steps a second
    assert chunks.size == 45
    assert [chunks.end(0), chunks.end(45)] == [45, 97]  # not 45, 90 and a chunk of 7 steps
    assert chunks.end(20) == 65 and chunks.end(40) == 97 and chunks.end(96) == 97  # 32 steps left: a chunk; 12: not
    tenths = ChunkSizer(50)
    assert [tenths.end(s) for s in range(0, 50, 5)] == list(range(5, 55, 5))  # a tail of a whole chunk stays


def test_chunks_change_the_progress_reports_but_not_the_result(mnist, monkeypatch):
    results = {}
    for seconds in (0.0, 1e9):
        monkeypatch.setattr(ChunkSizer, "CHUNK_SECONDS", seconds)
        counter = StepCounter()
        result, net = fit_small(mnist, epochs=3, reporter=counter)
        results[seconds] = (net.params.copy(), [h["validation_error"] for h in result.history], counter.looks)
    steps = 2000 // 32
    assert results[0.0][2] == [(e, min(s, steps)) for e in (1, 2, 3) for s in range(7, steps + 7, 7)]
    assert results[1e9][2] == [(1, 7), (1, steps), (2, steps), (3, steps)]  # one look per epoch once sized
    np.testing.assert_array_equal(results[0.0][0], results[1e9][0])
    assert results[0.0][1] == results[1e9][1]


class LearningRateBomb(Reporter):
    """Makes the learning rate absurd in the middle of epoch 2, after saving the run's files (of a
    run directory ``run``; None: none)."""

    def __init__(self, trainer, run):
        self.trainer, self.run, self.saved = trainer, run, None

    def on_steps(self, epoch, step, steps, stats, seconds):
        if epoch == 2 and self.saved is None:
            self.saved = {name: (self.run / name).read_bytes() for name in ("best.npz", "checkpoint.npz")} \
                if self.run is not None else {}
            self.trainer.optimizer.learning_rate = 1e30


def test_divergence_stops_with_a_clear_message_and_keeps_the_best(mnist, tmp_path, monkeypatch):
    monkeypatch.setattr(ChunkSizer, "CHUNK_SECONDS", 0.0)  # chunks of a tenth of an epoch: the bomb goes off mid-epoch
    train, validation = mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 500))
    trainer = Trainer(tiny_network(np.float32), Nesterov(0.02, 0.87), batch_size=32, seed=1)
    bomb = LearningRateBomb(trainer, tmp_path)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2.*learning rate \(1e\+30\) is probably too high") as raised:
        trainer.fit(train, validation, epochs=3, eval_every=1, run_dir=tmp_path, reporter=bomb)
    assert bomb.saved == {name: (tmp_path / name).read_bytes() for name in ("best.npz", "checkpoint.npz")}
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["epoch"] == 1
    assert Network.load(tmp_path / "best.npz").error_rate(validation.images, validation.labels) == best["validation_error"]
    assert np.array_equal(raised.value.best_network.params, Network.load(tmp_path / "best.npz").params)
    assert not np.isfinite(trainer.network.params).all()  # as documented: the trainer's network diverged


def test_a_divergence_without_a_run_directory_hands_over_the_best_network(mnist, monkeypatch):
    """Without a run directory the best network so far was lost with the diverged one."""
    monkeypatch.setattr(ChunkSizer, "CHUNK_SECONDS", 0.0)
    train, validation = mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 500))
    trainer = Trainer(tiny_network(np.float32), Nesterov(0.02, 0.87), batch_size=32, seed=1)
    expected = Trainer(tiny_network(np.float32), Nesterov(0.02, 0.87), batch_size=32, seed=1)
    first = expected.fit(train, validation, epochs=1, eval_every=1)
    with pytest.raises(TrainingDivergedError) as raised:
        trainer.fit(train, validation, epochs=3, eval_every=1, reporter=LearningRateBomb(trainer, None))
    assert str(raised.value).endswith(f"try a smaller one; the best network so far (epoch 1, validation error "
                                      f"{first.best_error:.2%}) is this error's best_network")
    assert np.array_equal(raised.value.best_network.params, first.best_network.params)
    with pytest.raises(TrainingDivergedError) as raised:  # nothing scored before it diverged: none to give
        Trainer(tiny_network(np.float32), Nesterov(1e30), batch_size=32, seed=1).fit(train, validation, epochs=1)
    assert raised.value.best_network is None and "best_network" not in str(raised.value)


def a_float64_run_that_diverges_through_huge_finite_costs():
    """Unbounded outputs and the quadratic cost: the cost passes 1e289..1e308 before it overflows."""
    rng = np.random.default_rng(0)
    train = Dataset(rng.random((640, 784)), rng.integers(0, 10, 640))
    network = Network([Dense(16, "leaky_relu"), Dense(10, "identity")], input_size=784, seed=1, dtype=np.float64)
    return network, train


def test_divergence_through_huge_finite_costs_is_reported_as_divergence():
    network, train = a_float64_run_that_diverges_through_huge_finite_costs()
    with pytest.raises(TrainingDivergedError, match="epoch 1"):
        Trainer(network, Nesterov(0.01, 0.9), batch_size=32, seed=1).fit(train, epochs=5)


@pytest.mark.parametrize("changes, message", [
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),  # reached the trainer
    ({"l2": 5}, "l2 must be a number in [0, 1), got 5"),
    ({"hidden": (10, 20)}, "hidden must be (size, activation) pairs, one per hidden layer, such as ((36, "
                           "'leaky_relu'), (14, 'leaky_relu')), got (10, 20)"),  # a TypeError in build_network
    ({"foo": 1}, "a preset has no foo; its fields are name, description, hidden, output, cost, initializer, "
                 "optimizer, l2, batch_size, eval_every, window, epochs, schedule, augmentation"),
    # Accepted, and refused only as a run built them, before:
    ({"optimizer": {"name": "sgd"}}, "unknown optimizer 'sgd'; known: gradient_descent, momentum, nesterov, adam"),
    ({"cost": "crossentropy"}, "unknown cost 'crossentropy'; known: quadratic, half_quadratic, mse, cross_entropy"),
    ({"hidden": ((36, "leaky"),)}, "unknown activation 'leaky'; known: identity, sigmoid, tanh, relu, leaky_relu, "
                                   "softplus, softmax"),
])
def test_a_preset_changed_to_what_no_run_could_take_is_refused(changes, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        get_preset("seed").with_overrides(**changes)


def test_a_preset_is_its_own_copy_of_every_spec():
    """A notebook's change to one preset reached every later get_preset, and one layer's
    activation was the other's too."""
    changed = get_preset("seed")
    changed.optimizer["learning_rate"] = 5.0
    changed.hidden[0][1]["alpha"] = 0.3
    assert [activation["alpha"] for _, activation in changed.hidden] == [0.3, 0.01]
    assert get_preset("seed").build_optimizer().learning_rate == 0.02
    assert [activation["alpha"] for _, activation in get_preset("seed").hidden] == [0.01, 0.01]
    overridden = get_preset("seed").with_overrides(epochs=3)
    overridden.optimizer["momentum"] = 0.5
    assert get_preset("seed").optimizer["momentum"] == 0.87


def test_seed_preset_is_the_articles_configuration():
    # The MNIST example of the original (../shared/reference/java-original.md, "The MNIST example").
    preset = get_preset("seed")
    net = preset.build_network(seed=942457)
    assert net.sizes == [784, 36, 14, 10]
    assert [layer.activation.spec() for layer in net.layers] == [
        {"name": "leaky_relu", "alpha": 0.01}, {"name": "leaky_relu", "alpha": 0.01}, {"name": "softmax"}]
    assert net.cost_function.spec() == {"name": "quadratic"} and preset.initializer == "xavier_normal"
    assert preset.build_optimizer().spec() == {"name": "nesterov", "learning_rate": 0.02, "momentum": 0.87}
    assert (preset.l2, preset.batch_size, preset.eval_every, preset.window) == (1e-4, 32, 5, 40)
    assert preset.schedule is None and preset.augmentation is None


def test_seed_preset_reaches_below_5_percent_on_real_mnist(mnist):
    preset = get_preset("seed")
    net = preset.build_network(seed=942457)
    trainer = Trainer(net, preset.build_optimizer(), l2=preset.l2, batch_size=preset.batch_size, seed=942457)
    result = trainer.fit(mnist.train, mnist.validation, epochs=5, eval_every=5)
    assert result.best_error < 0.05
    assert net.error_rate(mnist.test.images, mnist.test.labels) < 0.05


def test_resume_removes_what_killed_writes_left_behind_and_nothing_else(mnist, tmp_path):
    from distnet.io import UNFINISHED_WRITE, atomic_writer

    run = tmp_path / "run"
    fit_small(mnist, run, epochs=1)
    # The name a real atomic write gives its temporary file, as a kill midway would leave it.
    with atomic_writer(tmp_path / "elsewhere" / "checkpoint.npz") as f:
        f.write(b"partial")
        temporary = next(p.name for p in (tmp_path / "elsewhere").iterdir() if p.name != "checkpoint.npz")
    assert UNFINISHED_WRITE.fullmatch(temporary)
    (run / temporary).write_bytes(b"partial")
    for keep in ("notes.tmp", ".keep", ".checkpoint.npz.tmp"):
        (run / keep).write_text("the user's")
    files = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ConfigError, match="another window"):
        fit_small(mnist, run, epochs=2, resume=True, window=4)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files  # a refused resume removed it too
    resumed, _ = fit_small(mnist, run, epochs=2, resume=True)
    assert resumed.epochs == 2
    assert not (run / temporary).exists()
    assert all((run / keep).read_text() == "the user's" for keep in ("notes.tmp", ".keep", ".checkpoint.npz.tmp"))


def test_the_history_does_not_depend_on_how_steps_were_grouped_into_chunks(mnist, monkeypatch):
    """Chunks are sized by how fast steps run; float64 costs summed chunk by chunk differed in their
    last bits between a run of tenth-of-an-epoch chunks and one of whole epochs."""
    histories = []
    for seconds in (0.0, 1e9):
        monkeypatch.setattr(ChunkSizer, "CHUNK_SECONDS", seconds)
        network = Network([Dense(12, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=5, dtype=np.float64)
        trainer = Trainer(network, Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11)
        result = trainer.fit(mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 300)), epochs=3,
                             eval_every=1)
        histories.append([{k: v for k, v in h.items() if "seconds" not in k} for h in result.history])
    assert histories[0] == histories[1]


def test_step_stats_sum_costs_exactly_and_read_the_float_sums_of_older_checkpoints():
    costs = [0.1, 1e-3, 7.25, 1 / 3] * 50
    forward, backward = StepStats(), StepStats()
    for cost in costs:
        forward += StepStats.of_step(cost, 1, 2)
    for cost in reversed(costs):
        backward += StepStats.of_step(cost, 1, 2)
    assert forward == backward and (forward.correct, forward.samples) == (200, 400)
    assert forward.cost == pytest.approx(sum(costs), rel=1e-15)
    diverged = StepStats.of_step(1.0, 0, 1)
    diverged += StepStats.of_step(float("inf"), 0, 1)
    assert diverged.cost == float("inf")
    assert StepStats.from_saved({"cost": 2.5, "correct": 3, "samples": 4}) == StepStats.of_step(2.5, 3, 4)
    for huge in (2.0**900, 1e300, -1e300):
        assert StepStats.of_step(huge, 0, 1).cost == math.copysign(math.inf, huge)
    assert StepStats.of_step(2.0**899, 0, 1).cost == 2.0**899
    for malformed in ({"cost_units": 1.5, "correct": 1, "samples": 2}, {"cost": 1.0, "samples": 2},
                      {"cost": 1.0, "correct": -1, "samples": 2}, {"cost": "1", "correct": 1, "samples": 2}, [1]):
        with pytest.raises(ValueError, match="not the sums of steps"):
            StepStats.from_saved(malformed)
    assert StepStats.from_saved(vars(forward)) == forward


def test_a_step_cost_is_cut_to_whole_units_of_2_to_the_minus_64_and_no_samples_have_no_error_rate():
    """Cut, as StepStats says, not rounded: 1.75 units are 1 (round() would make them 2), 0.75 are 0;
    the error rate of no samples is NaN, not a perfect 0."""
    unit = 2.0**-64
    assert [StepStats.of_step(k * unit, 0, 1).cost_units for k in (0.75, 1.75, 3.0)] == [0, 1, 3]
    assert StepStats.of_step(1.75 * unit, 0, 1).cost == unit
    assert math.isnan(StepStats().error_rate)
    assert StepStats.of_step(0.5, 3, 4).error_rate == 0.25


def test_batch_gather_takes_labels_of_any_integer_type_call_after_call():
    images = np.zeros((5, 2), np.float32)
    gather = BatchGather(400, np.float32)
    gather(np.array([0, 1]), images, np.array([1, 2, 3, 4, 5], np.uint8))
    _, targets = gather(np.array([0, 1]), images, np.array([300, 2, 3, 4, 5], np.int64))
    assert targets[0].argmax() == 300


def test_a_network_given_to_the_trainer_later_is_the_one_l2_decays():
    from distnet import GradientDescent, Trainer

    def network(hidden: int) -> Network:
        return Network([Dense(hidden, "sigmoid"), Dense(2, "softmax")], input_size=4, seed=hidden, dtype=np.float64)

    rng = np.random.default_rng(0)
    X, Y = rng.random((8, 4)), np.eye(2)[rng.integers(0, 2, 8)]
    trainer = Trainer(network(3), GradientDescent(0.1), l2=0.5, batch_size=4)
    trainer.network = later = network(5)  # a 4-5-2 network: weights at [0:20] and [25:35]
    trainer.step(X, Y)
    alone = Trainer(expected := network(5), GradientDescent(0.1), l2=0.5)
    alone.step(X, Y)
    np.testing.assert_array_equal(later.params, expected.params)  # the first network's slices decayed before
    with pytest.raises(ConfigError, match="network must be a Network"):
        trainer.network = "4-5-2"

    class SwapDuringTheFit(Reporter):
        def on_start(self, info):
            trainer.network = network(5)

    with pytest.raises(ConfigError, match=r"the network cannot change during a fit"):
        trainer.fit(Dataset(X, Y.argmax(axis=1), classes=["a", "b"]), epochs=1, reporter=SwapDuringTheFit())
    assert trainer.network is later


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_every_sample_is_used_in_some_epoch_including_the_left_over_ones(shards):
    plan = BatchPlan(1000, 32, shards, seed=7)  # 31 steps of 32: 8 samples sit out each epoch
    assert sum(b - a for a, b in plan.shard_ranges) == 1000
    seen = np.zeros(1000, dtype=bool)
    for epoch in range(40):
        for batch in plan.epoch_batches(epoch):
            seen[batch] = True
    assert seen.all(), np.flatnonzero(~seen)


def test_shards_of_equal_size_are_shuffled_independently():
    plan = BatchPlan(1000, 32, 2, seed=7)
    assert plan.shard_ranges == [(0, 500), (500, 1000)]
    first, second = (np.concatenate(plan.shard_steps(0, shard)) for shard in (0, 1))
    assert not np.array_equal(first, second)
    # and the rule the module documents: shard s's order is a permutation seeded with (seed, epoch, s)
    expected = np.random.default_rng([7, 0, 1]).permutation(500)[:16 * 31]
    np.testing.assert_array_equal(second, expected)


# -- TR1: a chunk whose parameters end non-finite is divergence, even when its cost was finite -----
def test_parameters_that_overflow_on_the_last_step_of_a_fit_are_divergence(monkeypatch):
    """Each step's cost is computed before its update: when the fit's last step is the one that
    overflows the parameters, only the loop's params_finite check sees it. Without it the fit
    returned a network of NaN/inf parameters as its result."""
    monkeypatch.setattr(ChunkSizer, "CHUNK_SECONDS", 0.0)  # chunks of one step each (2 steps an epoch)
    rng = np.random.default_rng(0)
    train = Dataset(rng.random((64, 5), np.float32), rng.integers(0, 3, 64), classes=["a", "b", "c"])
    net = Network([Dense(8, "leaky_relu"), Dense(3, "softmax")], input_size=5, seed=2, dtype=np.float32)
    trainer = Trainer(net, Nesterov(0.1, 0.9), batch_size=32, seed=1)

    class Bomb(Reporter):
        def on_steps(self, epoch, step, steps, stats, seconds):
            if (epoch, step) == (1, 1):
                trainer.optimizer.learning_rate = 1e300  # the next update overflows the parameters

    with pytest.raises(TrainingDivergedError, match=r"epoch 1, by step 2"):
        trainer.fit(train, epochs=1, reporter=Bomb())


# -- TR3: checkpoint_every writes no step checkpoint where the epoch's own follows at once ----------
def test_checkpoint_every_writes_each_position_once_and_none_at_an_epoch_s_last_step(tmp_path, monkeypatch):
    """Two steps an epoch, a checkpoint every step: after step 1 (within the epoch) and at each
    epoch's end, never at (epoch, 2) just before the epoch's own checkpoint (a write the size of the
    network for nothing, and checkpoint.prev.npz then no fallback worth the name)."""
    monkeypatch.setattr(ChunkSizer, "CHUNK_SECONDS", 0.0)
    written = []
    save = RunDir.save_checkpoint
    monkeypatch.setattr(RunDir, "save_checkpoint",
                        lambda self, checkpoint: (written.append((checkpoint.epoch, checkpoint.step)),
                                                  save(self, checkpoint)))
    rng = np.random.default_rng(0)
    train = Dataset(rng.random((64, 5), np.float32), rng.integers(0, 3, 64), classes=["a", "b", "c"])
    net = Network([Dense(8, "leaky_relu"), Dense(3, "softmax")], input_size=5, seed=2, dtype=np.float32)
    Trainer(net, Nesterov(0.1, 0.9), batch_size=32, seed=1).fit(train, epochs=2, eval_every=1, checkpoint_every=1,
                                                                run_dir=tmp_path / "run")
    assert written == [(0, 1), (1, 0), (1, 1), (2, 0)]


# -- TR7: each epoch's statistics are that epoch's --------------------------------------------------
def test_each_epoch_s_train_error_and_cost_count_that_epoch_s_samples_only():
    """64 samples, batches of 32: every epoch's statistics hold 64 samples. Carried over from the
    epoch before, epoch 2's train_error and train_cost in the history (and the progress) were the
    average of both epochs."""
    ends = []

    class EpochEnds(Reporter):
        def on_steps(self, epoch, step, steps, stats, seconds):
            if step == steps:
                ends.append((epoch, stats.samples, stats.error_rate))

    rng = np.random.default_rng(0)
    train = Dataset(rng.random((64, 5), np.float32), rng.integers(0, 3, 64), classes=["a", "b", "c"])
    net = Network([Dense(8, "leaky_relu"), Dense(3, "softmax")], input_size=5, seed=2, dtype=np.float32)
    result = Trainer(net, Nesterov(0.1, 0.9), batch_size=32, seed=1).fit(train, epochs=3, eval_every=1,
                                                                         reporter=EpochEnds())
    assert [(epoch, samples) for epoch, samples, _ in ends] == [(1, 64), (2, 64), (3, 64)]
    assert [h["train_error"] for h in result.history] == [error for _, _, error in ends]


# -- R6: a resume with a layer more is refused naming the layers ------------------------------------
def test_a_resume_with_a_layer_added_at_the_end_is_refused_naming_the_layers(tmp_path):
    """Lists of another length are one difference: compared pairwise, the common layers matched and
    the resume went on to fail on the parameters' size ("expected 87 parameters for layers [5, 8,
    3, 3], got an array of shape (75,)"), which says nothing of the run's settings."""
    rng = np.random.default_rng(0)
    train = Dataset(rng.random((64, 5), np.float32), rng.integers(0, 3, 64), classes=["a", "b", "c"])
    layers = [Dense(8, "leaky_relu"), Dense(3, "softmax")]
    Trainer(Network(layers, input_size=5, seed=2, dtype=np.float32), Nesterov(0.1, 0.9), batch_size=32,
            seed=1).fit(train, epochs=1, run_dir=tmp_path / "run")
    bigger = Network([*layers, Dense(3, "softmax")], input_size=5, seed=2, dtype=np.float32)
    # (and no advice to resume it with `distnet train --resume`: fit started this run)
    with pytest.raises(ConfigError, match=r"^cannot resume: the run was started with another network layers \(.*"
                                          r"resume with the run's own settings, which its config.json records$"):
        Trainer(bigger, Nesterov(0.1, 0.9), batch_size=32, seed=1).fit(train, epochs=2, run_dir=tmp_path / "run",
                                                                        resume=True)


def test_a_second_change_of_shards_within_one_epoch_names_the_shards_that_epoch_began_with(mnist, tmp_path):
    """2 shards, interrupted at step 20 of epoch 2; resumed on 3 and interrupted at step 40 of that
    same epoch, which still draws 2 shards' batches; resumed on 4: the warning must say that epoch 2
    ends with the batches of the 2 shards it began with (the checkpoint's epoch_shards), not of the 3
    the run's config had since."""
    train, validation = mnist.train.subset(slice(0, 2000)), mnist.validation.subset(slice(0, 500))
    run = tmp_path / "run"

    def fit(shards, **options):
        trainer = Trainer(tiny_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=11)
        trainer.shards = shards
        return trainer.fit(train, validation, epochs=3, eval_every=1, window=3, run_dir=run, **options)

    with pytest.raises(KeyboardInterrupt):
        fit(2, checkpoint_every=20, reporter=InterruptAfter(2, 20))
    with pytest.warns(UserWarning), pytest.raises(KeyboardInterrupt):
        fit(3, resume=True, reporter=InterruptAfter(2, 40))
    saved = Checkpoint.load(run / "checkpoint.npz")
    assert (saved.epoch, saved.step, saved.epoch_shards, saved.config["workers"]) == (1, 40, 2, 3)
    with pytest.warns(UserWarning, match=re.escape(
            "where it drew them from 3 so far: from here it is another draw of the same training, not bit-identical "
            "to a run that kept 3 workers; epoch 2, which it resumes at step 40, ends with the batches it began "
            "with (of 2 shards: no sample twice in that epoch)")):
        fit(4, resume=True)


def untimed(records: list[dict]) -> list[dict]:
    """History records without their times, which differ from run to run."""
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in records]


class Killed(BaseException):
    """Raised where a test's process would be killed: no handler of distnet's catches it."""


def kill_at_checkpoint(monkeypatch, when=lambda checkpoint: True) -> None:
    """Checkpoints are saved as usual, but one for which ``when(checkpoint)`` holds: the process
    is killed (Killed raised) in place of that write."""
    save = RunDir.save_checkpoint

    def save_or_be_killed(self, checkpoint):
        if when(checkpoint):
            raise Killed
        save(self, checkpoint)

    monkeypatch.setattr(RunDir, "save_checkpoint", save_or_be_killed)


def test_a_reporter_that_changes_what_it_is_told_changes_nothing_of_the_run(mnist, tmp_path):
    """It was handed the run's own dicts and stats: a reporter that formats a record in place, or
    pops a spec's name, made the checkpoints unresumable ("another optimizer name") and
    history.jsonl a mix of strings and numbers."""
    from distnet import Reporter

    class Scribbles(Reporter):
        def on_start(self, info):
            info["optimizer"].pop("name")
            info["sizes"].clear()

        def on_steps(self, epoch, step, steps, stats, seconds):
            stats.correct = stats.samples = 0

        def on_evaluation(self, record):
            record["validation_error"] = f"{record['validation_error']:.1%}"

    plain, _ = fit_small(mnist, tmp_path / "plain", epochs=2)
    scribbled, _ = fit_small(mnist, tmp_path / "run", epochs=2, reporter=Scribbles())
    assert untimed(scribbled.history) == untimed(plain.history)
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [r["validation_error"] for r in history] == [r["validation_error"] for r in plain.history]
    assert Checkpoint.load(tmp_path / "run" / "checkpoint.npz").config["optimizer"]["name"] == "nesterov"
    assert fit_small(mnist, tmp_path / "run", epochs=3, resume=True)[0].epochs == 3


def test_a_resume_keeps_the_run_s_extra_config_and_refuses_to_change_it(mnist, tmp_path):
    """Given other values, it was taken into the checkpoints and not into config.json, and left
    out, the run's own keys were dropped from the checkpoints: two records that disagreed."""
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # in epoch 2, checkpointed after epoch 1
        fit_small(mnist, run, epochs=3, extra_config={"x": 3, "note": "first"}, reporter=InterruptAfter(2, 0))
    before = files(run)
    with pytest.raises(ConfigError, match=re.escape(
            "cannot resume with extra_config x=4: the run recorded x=3; leave it out (a resume keeps what the run "
            "recorded) or give that")):
        fit_small(mnist, run, epochs=3, resume=True, extra_config={"x": 4})
    assert files(run) == before
    fit_small(mnist, run, epochs=3, resume=True, extra_config={"x": 3, "added": True})
    config = json.loads((run / "config.json").read_text())
    assert (config["x"], config["note"], config["added"]) == (3, "first", True)
    assert {key: Checkpoint.load(run / "checkpoint.npz").config[key] for key in ("x", "note", "added")} == {
        "x": 3, "note": "first", "added": True}


def test_a_run_killed_between_its_first_best_network_and_checkpoint_resumes_as_if_never_killed(
        mnist, tmp_path, monkeypatch):
    """Evaluating its first epoch, the stop rule wrote best.npz before the first checkpoint: a run
    killed in between was a folder that could neither be resumed nor started again in place."""
    def killed(self, record):
        raise Killed  # after best.npz and best.json, before the history's line and the checkpoint

    plain, _ = fit_small(mnist, tmp_path / "plain", epochs=3)
    with monkeypatch.context() as patched:
        patched.setattr(RunDir, "append_history", killed)
        with pytest.raises(Killed):
            fit_small(mnist, tmp_path / "run", epochs=3)
    assert {"best.npz", "best.json", "checkpoint.npz"} <= {p.name for p in (tmp_path / "run").iterdir()}
    resumed, _ = fit_small(mnist, tmp_path / "run", epochs=3, resume=True)

    assert untimed(resumed.history) == untimed(plain.history)  # epoch 1's evaluation made on resuming
    assert np.array_equal(resumed.best_network.params, plain.best_network.params)
    assert [untimed([json.loads(line)]) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()] == [
        untimed([record]) for record in plain.history]


def test_a_resume_that_ends_a_run_undoes_what_a_killed_resume_left_ahead_of_its_checkpoint(
        mnist, tmp_path, monkeypatch):
    """A resume to 4 epochs of a 2-epoch run, killed after epoch 3's evaluation (before its
    checkpoint), then ended at 2 again: best.npz and history.jsonl held epoch 3's (the summary
    named a best.npz that was not the one scored), and config.json kept 4, so a later resume
    left to the run trained on to 4."""
    run = tmp_path / "run"
    ended, _ = fit_small(mnist, run, epochs=2)
    with monkeypatch.context() as patched:
        kill_at_checkpoint(patched)
        with pytest.raises(Killed):
            fit_small(mnist, run, epochs=4, resume=True)
    assert json.loads((run / "best.json").read_text())["epoch"] == 3  # ahead of the checkpoint of epoch 2
    ahead = (run / "best.npz").read_bytes()
    again = resume_ending_at_epoch_2_keeping_the_best_network_ahead(mnist, run)
    assert (run / "best-before-resume.npz").read_bytes() == ahead
    assert again.already_ended and again.best_epoch == ended.best_epoch
    assert np.array_equal(Network.load(run / "best.npz").params, ended.best_network.params)
    assert json.loads((run / "best.json").read_text())["epoch"] == ended.best_epoch
    assert [json.loads(line)["epoch"] for line in (run / "history.jsonl").read_text().splitlines()] == [1, 2]
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    with pytest.warns(UserWarning, match="had ended at epoch 2"):
        assert fit_small(mnist, run, epochs=None, resume=True)[0].already_ended  # not trained on to 4


def test_a_resume_back_to_the_total_of_its_checkpoint_records_it_over_a_killed_resume_s(mnist, tmp_path, monkeypatch):
    """A run of 4 checkpointed at epoch 2; a resume to 6 recorded 6 and was killed before a
    checkpoint; a resume to 4 trained to 4 but left config.json at 6, so a resume left to the
    run trained on to 6."""
    run = tmp_path / "run"
    with monkeypatch.context() as patched:
        kill_at_checkpoint(patched, when=lambda checkpoint: checkpoint.epoch >= 3)
        for epochs, resume in ((4, False), (6, True)):
            with pytest.raises(Killed):
                fit_small(mnist, run, epochs=epochs, window=10, resume=resume)
    assert json.loads((run / "config.json").read_text())["epochs"] == 6
    assert Checkpoint.load(run / "checkpoint.npz").config["epochs"] == 4
    assert fit_small(mnist, run, epochs=4, window=10, resume=True)[0].epochs == 4
    assert json.loads((run / "config.json").read_text())["epochs"] == 4
    with pytest.warns(UserWarning, match="had ended at epoch 4"):
        assert fit_small(mnist, run, epochs=None, window=None, resume=True)[0].already_ended  # not to 6


def test_the_training_time_leaves_out_the_start_of_the_stop_rule_s_keeper(mnist, monkeypatch):
    """A distributed trainer's keeper is the stop evaluator's actor, whose start (~0.6 s of a 0.7 s
    fit) counted as training time; here a keeper slow to make stands for it."""
    make = Trainer._early_stopping

    def slow_to_start(self, *args, **kwargs):
        time.sleep(1.5)
        return make(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_early_stopping", slow_to_start)
    result, _ = fit_small(mnist, epochs=1)
    assert result.seconds < 1.5 and result.history[-1]["elapsed_seconds"] < 1.5
