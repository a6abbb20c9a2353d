"""The distributed trainer on a real local Ray: the same math as the single-process trainer."""
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import distnet.stop
from distnet import ConfigError, Dense, Nesterov, Network, TrainingDivergedError
from distnet.checkpoint import Checkpoint
from distnet.checks import count
from distnet.distributed import DistributedTrainer
from distnet.progress import Reporter
from distnet.nn.network_files import saved_notes
from distnet.trainer import Trainer

pytestmark = pytest.mark.slow


def small_network():
    return Network([Dense(12, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=5,
                   initializer=None, dtype=np.float64)


def data(mnist):
    return mnist.train.subset(slice(0, 1500)), mnist.validation.subset(slice(0, 300))


def fit(trainer, mnist, **kw):
    train, validation = data(mnist)
    return trainer.fit(train, validation, epochs=2, eval_every=1, window=5, **kw)


def make_trainer(kind=DistributedTrainer, seed=3, **kw):
    """The trainer of these tests: ``kind`` DistributedTrainer (or a subclass), or Trainer to compare with."""
    return kind(small_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=seed, **kw)


def single_process(mnist, shards):
    """A single-process run over the same global mini-batches as ``shards`` workers."""
    trainer = make_trainer(Trainer)
    trainer.shards = shards
    result = fit(trainer, mnist)
    return trainer.network.params.copy(), result


def distributed(mnist, workers, protocol, **kw):
    trainer = make_trainer(workers=workers, protocol=protocol)
    result = fit(trainer, mnist, **kw)
    return trainer, result


def relative_difference(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("workers,protocol", [(1, "channel"), (2, "channel"), (3, "channel"), (2, "plain")])
def test_distribution_does_not_change_the_math(mnist, ray_local, workers, protocol):
    expected, expected_result = single_process(mnist, workers)
    trainer, result = distributed(mnist, workers, protocol)
    assert trainer.active_protocol == protocol
    assert relative_difference(trainer.network.params, expected) < 1e-9
    assert relative_difference(result.best_network.params, expected_result.best_network.params) < 1e-9
    assert [h["validation_error"] for h in result.history] == [h["validation_error"] for h in expected_result.history]
    assert result.history[-1]["train_error"] == pytest.approx(expected_result.history[-1]["train_error"])


def test_data_of_your_own_is_distributed_with_the_same_math(ray_local):
    """Two features per sample instead of 784 pixels: workers, server and evaluator follow the data."""
    from test_training import xor_data

    train, validation = xor_data(1000, seed=1), xor_data(200, seed=2)

    def network():
        return Network([Dense(8, "tanh"), Dense(2, "softmax")], input_size=2, cost="cross_entropy", seed=4,
                       dtype=np.float64)

    single = Trainer(network(), Nesterov(0.1, 0.9), batch_size=20, seed=5)
    single.shards = 2
    expected = single.fit(train, validation, epochs=3, eval_every=1)
    trainer = DistributedTrainer(network(), Nesterov(0.1, 0.9), batch_size=20, seed=5, workers=2)
    result = trainer.fit(train, validation, epochs=3, eval_every=1)
    assert relative_difference(trainer.network.params, single.network.params) < 1e-9
    assert [h["validation_error"] for h in result.history] == [h["validation_error"] for h in expected.history]


def test_augmentation_and_schedule_do_not_change_the_math_either(mnist, ray_local):
    # Each worker augments its own shard and the parameter server gets each epoch's rate.
    from distnet.data.augment import RandomAffine
    from distnet.nn import CosineDecay

    options = dict(l2=1e-4, batch_size=32, seed=3, schedule=CosineDecay(), augmentation=RandomAffine())
    single = Trainer(small_network(), Nesterov(0.02, 0.87), **options)
    single.shards = 2
    expected = fit(single, mnist)
    trainer = DistributedTrainer(small_network(), Nesterov(0.02, 0.87), workers=2, protocol="channel", **options)
    result = fit(trainer, mnist)
    assert relative_difference(trainer.network.params, single.network.params) < 1e-9
    assert [h["validation_error"] for h in result.history] == [h["validation_error"] for h in expected.history]
    assert [h["learning_rate"] for h in result.history] == [h["learning_rate"] for h in expected.history]
    # ... and the augmentation did change the training.
    plain = make_trainer(Trainer, schedule=CosineDecay())
    plain.shards = 2
    fit(plain, mnist)
    assert relative_difference(plain.network.params, single.network.params) > 1e-3


def test_one_worker_equals_the_plain_trainer(mnist, ray_local):
    trainer = make_trainer(Trainer)
    fit(trainer, mnist)
    distributed_trainer, _ = distributed(mnist, 1, "auto")
    assert relative_difference(distributed_trainer.network.params, trainer.network.params) < 1e-9


def test_the_driver_writes_the_best_network_that_the_stop_evaluator_actor_keeps(mnist, ray_local, tmp_path,
                                                                                  monkeypatch):
    """Written by the driver, on every improvement: the run directory is on the driver's disk, and
    an actor, even on the driver's node, may see other files under the same path (a container's,
    a private /tmp)."""
    written_here = []  # by this process: an actor's writes would not pass through this patch
    write_json = distnet.stop.write_json
    monkeypatch.setattr("distnet.stop.write_json", lambda path, data: (written_here.append((Path(path), data)),
                                                                      write_json(path, data)))
    trainer, result = distributed(mnist, 2, "auto", run_dir=tmp_path / "run")
    run = tmp_path / "run"
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    best = min(history, key=lambda h: h["validation_error"])
    improvements = [h for i, h in enumerate(history)
                    if all(h["validation_error"] < before["validation_error"] for before in history[:i])]
    assert [(path, data["epoch"]) for path, data in written_here] == [(run / "best.json", h["epoch"])
                                                                       for h in improvements] and improvements
    best_file = Network.load(run / "best.npz")
    validation = data(mnist)[1]
    assert best_file.error_rate(validation.images, validation.labels) == best["validation_error"]
    assert json.loads((run / "best.json").read_text())["epoch"] == best["epoch"] == result.best_epoch
    # What the network was trained on is written into it, as the single-process path does.
    assert saved_notes(run / "best.npz") == {"trained_on": {"name": "mnist/train", "classes": list("0123456789")}}
    assert {"config.json", "checkpoint.npz"} <= {p.name for p in run.iterdir()}
    assert len(trainer.placement) == 2 and all("node_id" in p for p in trainer.placement)


class ScriptedValidationErrors(DistributedTrainer):
    """The workers evaluate as ever, but the stop rule is told these errors: epoch 2 is the best."""

    errors = (0.5, 0.25, 0.75)
    evaluations = 0

    def _validation_error_rate(self):
        super()._validation_error_rate()
        self.evaluations += 1
        return self.errors[self.evaluations - 1]


def test_the_best_network_file_keeps_the_best_epoch_s_parameters_after_a_worse_epoch(mnist, ray_local, tmp_path):
    """The stop evaluator's handle keeps the parameters of an improvement only (the tests above
    improve at every evaluation): a worse epoch 3 must leave epoch 2's in best.npz."""
    trainer = make_trainer(ScriptedValidationErrors, workers=2)
    train, validation = data(mnist)
    result = trainer.fit(train, validation, epochs=3, eval_every=1, window=5, run_dir=tmp_path / "run")
    assert (trainer.evaluations, result.best_epoch) == (3, 2)
    best_file = Network.load(tmp_path / "run" / "best.npz")
    np.testing.assert_array_equal(best_file.params, result.best_network.params)
    assert not np.array_equal(best_file.params, trainer.network.params)  # the last epoch's differ
    assert json.loads((tmp_path / "run" / "best.json").read_text())["epoch"] == 2


def test_resuming_an_ended_distributed_run_starts_no_actor(mnist, ray_local, tmp_path, monkeypatch):
    _, ended = distributed(mnist, 2, "auto", run_dir=tmp_path / "run")

    def no_actors(*args):
        raise AssertionError("the resume of an ended run started the trainer's actors")

    monkeypatch.setattr(DistributedTrainer, "_open", no_actors)
    with pytest.warns(UserWarning, match="had ended at epoch 2 \\(max epochs\\): nothing left to train") as caught:
        trainer, again = distributed(mnist, 2, "auto", run_dir=tmp_path / "run", resume=True)
    assert [w.filename for w in caught] == [__file__]  # the user's call, not distnet's line
    assert again.already_ended and trainer.placement == [] and trainer.active_protocol is None
    assert (again.best_error, again.best_epoch, again.epochs) == (ended.best_error, ended.best_epoch, ended.epochs)
    np.testing.assert_array_equal(again.best_network.params, ended.best_network.params)


def test_a_resume_without_a_worker_count_continues_with_the_run_s(mnist, ray_local, tmp_path):
    """Not told how many workers, a resume takes the run's 2, not the cluster's 4 CPUs (which
    would make it another draw of the training)."""
    uninterrupted, _ = distributed(mnist, 2, "auto")
    trainer = make_trainer(workers=2)
    train, validation = data(mnist)
    trainer.fit(train, validation, epochs=1, eval_every=1, window=5, run_dir=tmp_path / "run")
    refused = make_trainer(seed=4)
    with pytest.raises(ConfigError, match="started with another seed \\(3 in its checkpoint, 4 now\\)"):
        refused.fit(train, validation, epochs=2, run_dir=tmp_path / "run", resume=True)
    assert refused.workers is None  # a refused resume leaves the trainer as it was
    resumed = make_trainer()
    result = resumed.fit(train, validation, epochs=2, run_dir=tmp_path / "run", resume=True)
    assert resumed.shards == len(resumed.placement) == 2 and result.epochs == 2
    np.testing.assert_array_equal(resumed.network.params, uninterrupted.network.params)
    for run_workers in (4, 3):  # the next resume, of another run, takes that run's (it kept the 2 before)
        with resumed._workers_of_run(run_workers):
            assert resumed.shards == run_workers


def test_told_no_worker_count_a_trainer_takes_no_more_workers_than_a_batch_has_samples(mnist, ray_local):
    """Ray's 4 CPUs would be 4 workers; a batch of 3 makes 3 (it was refused after Ray started,
    with the run directory written)."""
    trainer = DistributedTrainer(small_network(), Nesterov(0.02), batch_size=3, seed=1)
    result = trainer.fit(mnist.train.subset(slice(0, 30)), epochs=1)
    assert trainer.shards == len(trainer.placement) == 3 < ray_local.cluster_resources()["CPU"] == 4
    assert result.epochs == 1


def test_told_no_worker_count_each_fit_decides_its_own(mnist, ray_local, tmp_path):
    """A new run takes the cluster's CPUs (3 here: a batch has 3 samples), a resume the run's 2,
    each fit afresh: a new run after a resume took the resumed run's 2 (for good)."""
    train = mnist.train.subset(slice(0, 30))

    def trainer(workers=None):
        return DistributedTrainer(small_network(), Nesterov(0.02), batch_size=3, seed=1, workers=workers)

    trainer(2).fit(train, epochs=1, run_dir=tmp_path / "two")
    unset = trainer()
    for run, workers, options in ((None, 3, {}), ("two", 2, {"resume": True, "epochs": 2}), ("new", 3, {})):
        unset.fit(train, run_dir=run and tmp_path / run, **{"epochs": 1, **options})
        assert unset.shards == len(unset.placement) == workers, run
    assert json.loads((tmp_path / "new" / "config.json").read_text())["workers"] == 3


class InterruptAt(Reporter):
    def on_steps(self, epoch, step, steps, stats, seconds):
        if (epoch, step) >= (2, 25):
            raise KeyboardInterrupt


def test_a_resume_on_another_number_of_workers_trains_on_records_it_and_a_plain_resume_keeps_it(
        mnist, ray_local, tmp_path):
    """A 2-shard run stopped within epoch 2 (at its checkpoint of step 20) goes on on 3 workers: no
    room for 9 first (advice that works, nothing recorded), then epoch 2 ends with its batches as
    begun and epoch 3 draws from 3 shards, exactly as the single-process trainer told 3 shards
    computes it; config.json records 3 workers and Ray, and a resume told no number takes them."""
    train, validation = data(mnist)
    run, single = tmp_path / "run", tmp_path / "single"
    begun = make_trainer(Trainer)
    begun.shards = 2
    with pytest.raises(KeyboardInterrupt):
        begun.fit(train, validation, epochs=3, eval_every=1, window=5, run_dir=run, checkpoint_every=10,
                  reporter=InterruptAt())
    shutil.copytree(run, single)

    def resume(run_dir, epochs, shards=None, **options):
        trainer = (Trainer if shards else DistributedTrainer)(small_network(), Nesterov(0.02, 0.87), l2=1e-4,
                                                              batch_size=32, seed=3, **options)
        if shards:
            trainer.shards = shards
        return trainer, trainer.fit(train, validation, epochs=epochs, run_dir=run_dir, resume=True)

    with warnings.catch_warnings(record=True) as heard, \
            pytest.raises(ConfigError, match=rf"cannot place 9 workers .*; continue it as it was, in this process \(with a "
                                             rf"Trainer\): "
                                             rf"fit\(train, validation, run_dir={re.escape(repr(str(run)))}, "
                                             rf"resume=True, epochs=2\) in Python on the run's data, or on at most "
                                             rf"(\d+) workers?: fit\(.*, resume=True, epochs=2\) in Python on the "
                                             rf"run's data, with workers=\1 \(from there its mini-batches are drawn "
                                             rf"from \1 shards?"):
        warnings.simplefilter("always")
        resume(run, 2, workers=9, placement_timeout=1)
    assert not [w for w in heard if "shards" in str(w.message)]  # the run does not go on with 9: nothing said of it
    config = json.loads((run / "config.json").read_text())
    assert (config["workers"], config["epochs"]) == (2, 3)  # nothing trained on 9 (its 2 epochs were recorded)
    with pytest.warns(UserWarning, match=r"drawn from 3 shards .* where it drew them from 2 so far: from here it is "
                                         r"another draw of the same training.*epoch 2, which it resumes at step 20"):
        resume(run, 2, workers=3)
    config = json.loads((run / "config.json").read_text())
    assert (config["workers"], config["protocol"]) == (3, "auto")  # on Ray now, a later resume from the CLI too
    assert Checkpoint.load(run / "checkpoint.npz").config["workers"] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain, result = resume(run, 3)
    assert plain.shards == len(plain.placement) == 3 and result.epochs == 3
    with pytest.warns(UserWarning, match="drawn from 3 shards"):
        told, expected = resume(single, 3, shards=3)
    assert relative_difference(plain.network.params, told.network.params) < 1e-9
    assert [h["validation_error"] for h in result.history] == [h["validation_error"] for h in expected.history]


def test_a_resume_told_more_workers_than_fit_where_its_own_number_does_is_told_to_go_on_as_it_was(
        mnist, ray_local, tmp_path):
    """The advice was --workers 2 (another draw of the same training) for a run of 2 workers, which
    a plain resume continues bit for bit; then --workers 1 for a run of 1 where 2 fit (the run's
    own number had to fit exactly). It gives the new total of epochs, which config.json records only
    once the training starts: without it, the advice trained to the old total."""
    from ray.util.placement_group import placement_group, remove_placement_group

    train, validation = data(mnist)
    for workers, free in ((2, 2), (1, 2)):
        run = tmp_path / f"run{workers}"
        # as the command line records its runs: resumed with distnet train --resume
        make_trainer(workers=workers).fit(train, validation, epochs=1, run_dir=run, extra_config={"dataset": "mnist"})
        other_job = placement_group([{"CPU": 1}] * (int(ray_local.cluster_resources()["CPU"]) - free))
        ray_local.get(other_job.ready())
        try:
            resumed = make_trainer(workers=3, placement_timeout=1)
            with pytest.raises(ConfigError) as refused:
                resumed.fit(train, validation, epochs=2, run_dir=run, resume=True)
        finally:
            remove_placement_group(other_job)
        assert str(refused.value).endswith(f"; continue it as it was, on its own {count(workers, 'worker')}: distnet "
                                           f"train --resume {run} --epochs 2, or add nodes")
        assert json.loads((run / "config.json").read_text())["epochs"] == 1  # nothing recorded


def test_a_resume_on_ray_of_a_run_of_one_process_where_no_worker_fits_is_told_to_go_on_in_it(
        mnist, ray_local, tmp_path):
    """Such a run goes on in this process with a plain --resume: the advice was to end what holds the
    CPUs."""
    from ray.util.placement_group import placement_group, remove_placement_group

    train, validation = data(mnist)
    run = tmp_path / "run"
    make_trainer(Trainer).fit(train, validation, epochs=1, run_dir=run, extra_config={"dataset": "mnist"})
    other_job = placement_group([{"CPU": 1}] * int(ray_local.cluster_resources()["CPU"]))
    ray_local.get(other_job.ready())
    try:
        with pytest.raises(ConfigError) as refused:
            make_trainer(workers=2, placement_timeout=1, max_failures=5).fit(train, validation, epochs=3, run_dir=run,
                                                                             resume=True, checkpoint_every=10)
    finally:
        remove_placement_group(other_job)
    # (not --max-failures 5: in this process there are no failures to recover from)
    assert str(refused.value).endswith(f"; continue it as it was, in this process: distnet train --resume {run} "
                                       f"--epochs 3 --checkpoint-every 10")


@pytest.mark.parametrize("protocol", ["channel", "plain"])
def test_divergence_through_huge_finite_costs_is_reported_by_the_parameter_server_path(ray_local, protocol):
    from test_training import a_float64_run_that_diverges_through_huge_finite_costs

    network, train = a_float64_run_that_diverges_through_huge_finite_costs()
    trainer = DistributedTrainer(network, Nesterov(0.01, 0.9), batch_size=32, seed=1, workers=1, protocol=protocol)
    with pytest.raises(TrainingDivergedError, match="epoch 1"):
        trainer.fit(train, epochs=5)
    assert trainer.failures == []  # not taken for a lost actor


@pytest.mark.parametrize("protocol", ["channel", "plain"])
def test_parameters_that_overflow_on_the_last_step_of_a_fit_are_divergence_on_the_parameter_server_too(
        ray_local, monkeypatch, protocol):
    """As the single-process trainer's test of it: the fit's last step overflows the parameters at
    a finite cost, which only the parameter server's params_finite answer with the chunk's
    statistics shows. Without it the fit returned a network of NaN/inf parameters."""
    from distnet.chunk_sizer import ChunkSizer
    from distnet.data import Dataset

    monkeypatch.setattr(ChunkSizer, "CHUNK_SECONDS", 0.0)  # chunks of one step each (2 steps an epoch)
    rng = np.random.default_rng(0)
    train = Dataset(rng.random((64, 5), np.float32), rng.integers(0, 3, 64), classes=["a", "b", "c"])
    net = Network([Dense(8, "leaky_relu"), Dense(3, "softmax")], input_size=5, seed=2, dtype=np.float32)
    trainer = DistributedTrainer(net, Nesterov(0.1, 0.9), batch_size=32, seed=1, workers=1, protocol=protocol)

    class Bomb(Reporter):
        def on_steps(self, epoch, step, steps, stats, seconds):
            if (epoch, step) == (1, 1):
                trainer._set_learning_rate(1e300)  # on the server: the next update overflows the parameters

    with pytest.raises(TrainingDivergedError, match=r"epoch 1, by step 2"):
        trainer.fit(train, epochs=1, reporter=Bomb())
    assert trainer.failures == []


def test_the_actors_beside_the_driver_are_bound_to_its_node_not_merely_sent_there_if_it_suits():
    """The parameter server and the stop evaluator take no CPU: under a soft affinity Ray places such
    an actor on any node at all, far from the driver that exchanges the parameters with it (which a
    cluster of one node cannot show)."""
    from distnet.distributed.placement import on_node

    options = on_node("ab" * 28)
    assert options["num_cpus"] == 0
    strategy = options["scheduling_strategy"]
    assert (strategy.node_id, strategy.soft) == ("ab" * 28, False)


def test_no_workers_points_to_the_single_process_trainer():
    with pytest.raises(ConfigError, match=r"workers=0 means no Ray workers: train in this process with Trainer\(...\) "
                                          r"instead, or give workers=1 or more"):
        DistributedTrainer(small_network(), Nesterov(0.02), workers=0)


@pytest.mark.parametrize("options, message", [
    ({"protocol": "grpc"}, "unknown step protocol 'grpc'; choose one of auto, channel, compiled, plain"),
    ({"workers": 1.5}, "workers must be a positive integer, got 1.5"),
    ({"max_failures": -1}, "max_failures must be a whole number of at least 0, got -1"),
    ({"placement_timeout": 0}, "placement_timeout must be a positive finite number, got 0"),  # had waited no time
    ({"placement_timeout": "60"}, "placement_timeout must be a positive finite number, got '60'"),
    ({"step_timeout": -1}, "step_timeout must be a positive finite number, got -1"),
    ({"address": 123}, "address must be 'auto', 'local', a cluster's HOST:PORT or None (RAY_ADDRESS's cluster, else "
                       "a Ray of this process's own), got 123"),  # an AttributeError in fit
    ({"address": ""}, "address must be 'auto', 'local', a cluster's HOST:PORT or None"),  # taken for None
    ({"address": "foo"}, "cluster address 'foo' is not 'auto', 'local' or HOST:PORT (e.g. 10.0.0.5:6379)"),
])
def test_how_to_run_is_checked_when_the_trainer_is_made_and_when_it_is_changed(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        DistributedTrainer(small_network(), Nesterov(0.02), **options)
    trainer = DistributedTrainer(small_network(), Nesterov(0.02))
    (name, value), = options.items()
    kept = getattr(trainer, name)
    with pytest.raises(ConfigError, match=re.escape(message)):  # as it was, a fit trained on another one
        setattr(trainer, name, value)
    assert getattr(trainer, name) == kept


def test_batch_smaller_than_workers_is_refused(mnist, ray_local):
    trainer = DistributedTrainer(small_network(), Nesterov(0.02), batch_size=2, workers=3)
    with pytest.raises(ConfigError, match="batch size 2 is smaller than the number of workers 3"):
        fit(trainer, mnist)


@pytest.mark.parametrize("workers, batch_size, options, message", [
    (2, 1, {}, "batch size 1 is smaller than the number of workers 2"),
    (None, 64, {"train": "subset"}, "the training set has 50 samples, fewer than one batch of 64; use a batch size "
                                    "of at most 50"),
    (2, 32, {"epochs": 0}, "epochs must be a whole number of at least 1"),
    (2, 32, {"network": "five classes"}, "the network does not fit the training data"),
    (2, 32, {"run_dir": "no/such/run", "resume": True}, "no/such/run does not exist; expected the folder of a run"),
])
def test_what_fit_cannot_train_with_is_refused_before_ray_starts(mnist, monkeypatch, workers, batch_size, options,
                                                                 message):
    def start_ray(self):
        raise AssertionError("Ray started before the arguments were checked")

    monkeypatch.setattr(DistributedTrainer, "_connect_ray", start_ray)
    network = Network([Dense(5, "softmax")], input_size=784, seed=1) if options.pop("network", None) \
        else small_network()
    train = mnist.train.subset(slice(0, 50)) if options.pop("train", None) else mnist.train
    trainer = DistributedTrainer(network, Nesterov(0.02), batch_size=batch_size, workers=workers, seed=1)
    with pytest.raises(ConfigError, match=message):
        trainer.fit(train, mnist.validation, **options)


def test_a_new_run_into_a_folder_that_holds_one_is_refused_before_ray_starts(mnist, monkeypatch, tmp_path):
    Trainer(small_network(), Nesterov(0.02), seed=1).fit(mnist.train.subset(slice(0, 320)), epochs=1,
                                                          run_dir=tmp_path / "run")

    def start_ray(self):
        raise AssertionError("Ray started before the run directory was checked")

    monkeypatch.setattr(DistributedTrainer, "_connect_ray", start_ray)
    with pytest.raises(ConfigError, match="already holds a run"):
        DistributedTrainer(small_network(), Nesterov(0.02), workers=2, seed=1).fit(
            mnist.train.subset(slice(0, 320)), epochs=1, run_dir=tmp_path / "run")


def test_a_second_fit_goes_on_from_the_first_as_the_single_process_trainer_s_does(mnist, ray_local):
    """Parameters and optimizer state (Nesterov's velocity) come back from the parameter server."""
    single = Trainer(small_network(), Nesterov(0.02, 0.87), batch_size=32, seed=3)
    single.shards = 2
    trainer = DistributedTrainer(small_network(), Nesterov(0.02, 0.87), batch_size=32, seed=3, workers=2)
    for _ in range(2):
        fit(single, mnist)
        fit(trainer, mnist)
    assert relative_difference(trainer.network.params, single.network.params) < 1e-9


def test_more_workers_than_cpus_is_a_clear_error_not_a_hang(mnist, ray_local, tmp_path):
    trainer = DistributedTrainer(small_network(), Nesterov(0.02), batch_size=32, workers=9,
                                 placement_timeout=3)
    with pytest.raises(ConfigError, match=r"^cannot place 9 workers \(one CPU each\): the cluster has 4 CPUs, "
                                          r"(\d) free, after waiting 3 s; use at most \1 workers? "
                                          r"\(--workers \1; workers=\1 in Python\), or add nodes$"):
        fit(trainer, mnist, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # made for the run, which saved nothing in it (its config.json was left)


def test_workers_that_would_fit_but_for_other_work_are_told_so(mnist, ray_local):
    """CPUs held by another job were told as if the cluster were too small."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    other_job = placement_group([{"CPU": 1}] * 3)
    ray.get(other_job.ready())
    try:
        trainer = DistributedTrainer(small_network(), Nesterov(0.02), batch_size=32, workers=2, placement_timeout=1)
        with pytest.raises(ConfigError, match=r"^cannot place 2 workers \(one CPU each\): the cluster has 4 CPUs, "
                                              r"1 free, after waiting 1 s \(the other 3 in use by other jobs or "
                                              r"actors: once they end, 2 fit\); use at most 1 worker "):
            fit(trainer, mnist)
        last_cpu = placement_group([{"CPU": 1}])
        ray.get(last_cpu.ready())
        trainer = DistributedTrainer(small_network(), Nesterov(0.02), batch_size=32, workers=1, placement_timeout=1)
        with pytest.raises(ConfigError, match=r"^cannot place 1 worker \(one CPU each\): the cluster has 4 CPUs, "
                                              r"0 free, after waiting 1 s \(the other 4 in use by other jobs or "
                                              r"actors: once they end, 1 fit\); end what holds the CPUs, or add "
                                              r"nodes$"):  # not "use at most 1 worker", which it had been asked
            fit(trainer, mnist)
        remove_placement_group(last_cpu)
    finally:
        remove_placement_group(other_job)


def test_distnet_train_with_two_workers_end_to_end_on_real_mnist(ray_local, tmp_path, capsys):
    from distnet.cli import main

    run = tmp_path / "run"
    assert main(["train", "--workers", "2", "--epochs", "4", "--eval-every", "1", "--run-dir", str(run),
                 "--no-download", "--quiet"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_error"] < 0.05 and summary["workers"] == 2 and summary["epochs"] == 4
    assert f"test error {100 * summary['test_error']:.2f}%" in out
    assert sorted(p["worker"] for p in summary["placement"]) == [0, 1]
    assert {"config.json", "history.jsonl", "best.npz", "best.json", "checkpoint.npz"} <= {p.name for p in run.iterdir()}
    assert len((run / "history.jsonl").read_text().splitlines()) == 4


def run_script(script: str, folder, timeout: float):
    """``script`` run by a Python of its own in ``folder`` (with its own Ray); its completed
    process, which must have succeeded."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=folder,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


EMBEDDED_RUN = """
import sys
import numpy as np
import ray
from distnet import Dense, Nesterov, Network
from distnet.data import Dataset
from distnet.distributed import DistributedTrainer
from distnet.progress import Reporter

@ray.remote
def pyarrow_in_worker():
    return repr(sys.modules.get("pyarrow", "never imported"))

class AskTheWorkers(Reporter):
    def on_start(self, info):
        print("pyarrow in a worker:", ray.get(pyarrow_in_worker.remote()))

rng = np.random.default_rng(0)
train = Dataset(rng.random((128, 784), np.float32), rng.integers(0, 10, 128))
trainer = DistributedTrainer(Network([Dense(10, "softmax")], input_size=784, seed=1), Nesterov(0.02),
                             batch_size=32, workers=1, seed=1)
trainer.fit(train, None, epochs=1, reporter=AskTheWorkers())
print("ray still running:", ray.is_initialized())

# A resume refused (another seed than the run's) is refused before Ray starts.
from distnet import ConfigError
from distnet.trainer import Trainer
Trainer(Network([Dense(10, "softmax")], input_size=784, seed=1), Nesterov(0.02), batch_size=32,
        seed=1).fit(train, None, epochs=1, run_dir="single")
def no_ray(*args, **kwargs):
    raise AssertionError("a refused resume started Ray")
ray.init = no_ray
try:
    DistributedTrainer(Network([Dense(10, "softmax")], input_size=784, seed=1), Nesterov(0.02), batch_size=32,
                       workers=1, seed=2).fit(train, None, epochs=1, run_dir="single", resume=True)
except ConfigError as e:
    print("refused:", str(e)[:70])
print("ray running after a refused resume:", ray.is_initialized())
"""


def test_an_embedded_ray_keeps_pyarrow_out_of_its_workers(tmp_path):
    """Ray would import pyarrow (15-25 MB) into every worker where it is installed; a Ray that
    distnet starts marks it absent in each worker process before anything runs there."""
    done = run_script(EMBEDDED_RUN, tmp_path, timeout=120)
    assert "pyarrow in a worker: None\n" in done.stdout  # None: the import is refused, not merely not yet made
    assert "ray still running: False" in done.stdout
    assert "refused: cannot resume: the run was started with another seed (1 in its" in done.stdout
    assert "ray running after a refused resume: False" in done.stdout


def _signalled(signum, then_run=()):
    """Send ``signum`` to this process, then run ``then_run`` (as the block goes on)."""
    os.kill(os.getpid(), signum)
    for step in then_run:
        step()


def test_ctrl_c_and_sigterm_are_held_until_the_block_has_run_and_a_second_goes_through_at_once():
    from distnet.signals import interruptions_held

    done = []
    with pytest.raises(KeyboardInterrupt):
        with interruptions_held():
            _signalled(signal.SIGINT, [lambda: done.append("block")])
    assert done == ["block"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler

    terminated = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: terminated.append(done.copy()))
    try:
        with interruptions_held():
            _signalled(signal.SIGTERM, [lambda: done.append("block 2")])
        assert terminated == [["block", "block 2"]]  # its own handler, once the block had run

        with pytest.raises(KeyboardInterrupt):  # the second: inside the block, which never ends
            with interruptions_held():
                _signalled(signal.SIGTERM, [lambda: os.kill(os.getpid(), signal.SIGINT), lambda: done.append("never")])
        assert "never" not in done and len(terminated) == 1  # the first stays held: one stop is enough
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

SECOND_CTRL_C_WHILE_RAY_STOPS = """
import os
import signal
import numpy as np
import ray
import ray._private.node
from distnet import Dense, Nesterov, Network, Reporter
from distnet.data import Dataset
from distnet.distributed import DistributedTrainer

class CtrlC(Reporter):
    def on_steps(self, epoch, step, steps, stats, seconds):
        raise KeyboardInterrupt

stopped = []
kill_all_processes = ray._private.node.Node.kill_all_processes
def second_ctrl_c_first(node, *args, **kwargs):
    stopped.extend(info.process.pid for infos in node.all_processes.values() for info in infos)
    os.kill(os.getpid(), signal.SIGINT)  # lands at Python's next instruction: Ray's processes not yet stopped
    kill_all_processes(node, *args, **kwargs)
ray._private.node.Node.kill_all_processes = second_ctrl_c_first

rng = np.random.default_rng(0)
train = Dataset(rng.random((4096, 784), np.float32), rng.integers(0, 10, 4096))
trainer = DistributedTrainer(Network([Dense(10, "softmax")], input_size=784, seed=1), Nesterov(0.02),
                             batch_size=32, workers=1, seed=1)
try:
    trainer.fit(train, None, epochs=1, reporter=CtrlC())
except KeyboardInterrupt:
    print("interrupted")

def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # (reaped between open and read: ESRCH)
        return False

print("ray initialized:", ray.is_initialized())
print("ray processes:", len(stopped), "running:", sum(map(running, stopped)))
"""


def test_a_second_ctrl_c_while_ray_stops_is_held_until_ray_has_stopped(tmp_path):
    """Cut short, Ray's shutdown left its node's processes running (and Ray's core worker could end
    the process with exit status 1, in silence): a second Ctrl-C soon after the first."""
    done = run_script(SECOND_CTRL_C_WHILE_RAY_STOPS, tmp_path, timeout=120)
    assert done.stdout.splitlines()[-3:-1] == ["interrupted", "ray initialized: False"]
    stopped = re.fullmatch(r"ray processes: (\d+) running: (\d+)", done.stdout.splitlines()[-1])
    assert stopped and int(stopped[1]) >= 3 and stopped[2] == "0", done.stdout

CTRL_C_WHILE_RAY_STARTS = """
import os
import signal
import numpy as np
import ray
import ray._private.node
from distnet import Dense, Nesterov, Network
from distnet.data import Dataset
from distnet.distributed import DistributedTrainer

start_ray_processes = ray._private.node.Node.start_ray_processes
def ctrl_c_once_started(node, *args, **kwargs):
    start_ray_processes(node, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGINT)  # lands at Python's next instruction: ray.init waits for its raylet
ray._private.node.Node.start_ray_processes = ctrl_c_once_started

rng = np.random.default_rng(0)
train = Dataset(rng.random((256, 784), np.float32), rng.integers(0, 10, 256))
trainer = DistributedTrainer(Network([Dense(10, "softmax")], input_size=784, seed=1), Nesterov(0.02),
                             batch_size=32, workers=1, seed=1)
try:
    trainer.fit(train, None, epochs=1)
    print("trained")
except KeyboardInterrupt:
    print("interrupted")
print("ray initialized:", ray.is_initialized())
print("sigterm default:", signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
"""


def _processes_of_session(session: int) -> list[str]:
    """What runs in the session ``session`` (a process group leader's pid): pid and name of each."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):  # not a process, or gone meanwhile
            continue
        name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(f"{entry.name} {name}")
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the processes' sessions from /proc")
def test_ctrl_c_while_ray_starts_is_held_until_it_has_started_and_then_stops_it_whole(tmp_path):
    """Cut short while ray.init waited for its raylet, Ray left its dashboard and runtime-env
    agents running for a minute or more after the process ended (nothing had recorded the node
    that ray.init was starting, so neither ray.shutdown nor Ray's exit handler stopped it)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    script = subprocess.Popen([sys.executable, "-c", CTRL_C_WHILE_RAY_STARTS], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, start_new_session=True)
    try:
        out, err = script.communicate(timeout=120)
        assert script.returncode == 0, err[-2000:]
        assert out.splitlines()[:2] == ["interrupted", "ray initialized: False"], out
        assert out.splitlines()[2] == "sigterm default: True", out  # the process's own again, not Ray's
        deadline = time.monotonic() + 10  # Ray's processes stop on their own once told: a few seconds at most
        while (left := _processes_of_session(script.pid)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == [], left
    finally:
        for process in _processes_of_session(script.pid):  # (a failed test leaves none behind)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(process.split()[0]), signal.SIGKILL)

TWO_FITS_AT_ONCE = """
import threading
import numpy as np
import ray
from distnet import ConfigError, Dense, Nesterov, Network, Reporter
from distnet.data import Dataset
from distnet.distributed import DistributedTrainer

rng = np.random.default_rng(0)
train = Dataset(rng.random((128, 784), np.float32), rng.integers(0, 10, 128))

def trainer():
    return DistributedTrainer(Network([Dense(10, "softmax")], input_size=784, seed=1), Nesterov(0.02),
                              batch_size=32, workers=1, seed=1)

def fit(name, reporter=None):
    try:
        trainer().fit(train, None, epochs=1, reporter=reporter)
        print(name, "trained")
    except ConfigError as e:
        print(name, "refused:", e)

class SecondFitMeanwhile(Reporter):
    def on_start(self, info):
        second = threading.Thread(target=fit, args=("second",))
        second.start()
        second.join()

fit("first", SecondFitMeanwhile())
print("ray running:", ray.is_initialized())
fit("third")
"""


def test_a_second_fit_in_another_thread_is_refused_while_the_first_owns_this_process_s_ray(tmp_path):
    """Ray raised an AssertionError in one of two threads, and left agents running."""
    done = run_script(TWO_FITS_AT_ONCE, tmp_path, timeout=300)
    assert done.stdout.splitlines() == [
        "second refused: another DistributedTrainer of this process is training on the Ray it started, and shuts "
        "it down when its fit ends (a process has one Ray); fit one after the other, or call ray.init() first: "
        "trainers share a Ray they did not start",
        "first trained", "ray running: False", "third trained"]


PLAIN_RUN = """
import sys
import numpy as np
import ray
from distnet import Dense, Nesterov, Network, Reporter
from distnet.data import Dataset
from distnet.distributed import DistributedTrainer

def shared_memory_mb(actor):
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status["RssShmem"].split()[0]) / 1024

class Watch(Reporter):
    def on_steps(self, *args):
        print("worker shared memory MB:", ray.get(trainer._worker_actors[0].__ray_call__.remote(shared_memory_mb)))

rng = np.random.default_rng(0)
train = Dataset(rng.random((4000, 784), np.float32), rng.integers(0, 10, 4000))
network = Network([Dense(200, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=1, dtype=np.float64)
trainer = DistributedTrainer(network, Nesterov(0.02), batch_size=32, workers=1, seed=1, protocol="plain")
trainer.fit(train, None, epochs=3, reporter=Watch())
"""


def test_plain_steps_objects_are_freed_before_they_pile_up_in_a_worker_s_memory(tmp_path):
    """Under `plain` every step's parameters and gradient (1.2 MB each here) are new object-store
    objects. Freed in Ray's default batches, once a second, a second's worth of them lay at ever new
    places of the store, all counted in the worker's resident memory (146 MB here; 550-800 MB for
    the wide network's workers); a Ray that distnet starts frees them every 10 ms."""
    done = run_script(PLAIN_RUN, tmp_path, timeout=180)
    seen = [float(line.rsplit(" ", 1)[1]) for line in done.stdout.splitlines() if line.startswith("worker shared")]
    assert seen and max(seen) < 60, seen  # the images are float64 copies here, outside shared memory


def test_only_an_actor_s_refused_write_into_the_run_directory_is_reported_as_a_file_error(tmp_path):
    """Such an error names the file and the CLI says how to resume; a broken pipe, or a file
    elsewhere (the step channel's in /dev/shm), is a failure of the run's machinery instead."""
    from distnet.rundir import RunDir

    trainer = DistributedTrainer(small_network(), Nesterov(0.02), workers=1)
    trainer._run = RunDir(tmp_path / "run")
    assert trainer._names_a_run_file(OSError(28, "No space left on device", str(tmp_path / "run" / "best.npz")))
    assert not trainer._names_a_run_file(OSError(28, "No space left on device", "/dev/shm/distnet-0/memory"))
    assert not trainer._names_a_run_file(BrokenPipeError(32, "Broken pipe", str(tmp_path / "run" / "x")))
    assert not trainer._names_a_run_file(ValueError("not a file error"))
    trainer._run = None
    assert not trainer._names_a_run_file(OSError(28, "No space left on device", str(tmp_path / "run" / "best.npz")))


NO_ROOM_FOR_A_CHANNEL = """
import errno, os, warnings
import numpy as np
import ray
from distnet import ConfigError, Dense, Nesterov, Network
from distnet.data import Dataset
from distnet.distributed import DistributedTrainer

def full_shared_memory():  # in every actor process: /dev/shm as a small one fills up
    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.posix_fallocate = full

ray.init(num_cpus=3, include_dashboard=False, logging_level="ERROR",
         runtime_env={"worker_process_setup_hook": full_shared_memory})
rng = np.random.default_rng(0)
train = Dataset(rng.random((128, 784), np.float32), rng.integers(0, 10, 128))
for protocol in ("auto", "channel"):
    trainer = DistributedTrainer(Network([Dense(10, "softmax")], input_size=784, seed=1), Nesterov(0.02),
                                 batch_size=32, workers=2, seed=1, protocol=protocol)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(train, None, epochs=1)
        print(protocol, "trained with", trainer.active_protocol)
        print(protocol, "warned:", *[str(w.message) for w in caught])
    except ConfigError as e:
        print(protocol, "refused:", e)
ray.shutdown()
"""


def test_a_host_without_room_for_the_channel_trains_by_plain_calls_or_refuses_channel(tmp_path):
    """The parameter server's ChannelUnavailable crosses Ray as an instance of its class: ``auto``
    warns and trains by plain calls, ``channel`` is refused with what to change."""
    done = run_script(NO_ROOM_FOR_A_CHANNEL, tmp_path, timeout=300)
    lines = done.stdout.splitlines()
    assert lines[0] == "auto trained with plain"
    assert lines[1].startswith("auto warned: /dev/shm has no room for the step channel's ")
    assert lines[1].endswith("(No space left on device): the steps go by plain actor calls, slower for a small "
                             "network (in Docker, --shm-size gives the shared memory more room)")
    assert lines[2].startswith("channel refused: protocol 'channel': /dev/shm has no room for the step channel's ")
    assert lines[2].endswith("give the host's shared memory more room (in Docker: --shm-size), or use protocol "
                             "'plain'")
    assert len(lines) == 3


def _live_placement_groups() -> list:
    import ray

    return [pg for pg, info in ray.util.placement_group_table().items() if info["state"] != "REMOVED"]


def test_ctrl_c_while_a_fit_waits_for_room_leaves_no_placement_group_behind(mnist, ray_local, monkeypatch):
    """As in a notebook on a Ray of one's own, whose CPUs another piece of work holds: the group,
    placed once they are free, held them for the rest of the session, and every later fit failed."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    other_work = placement_group([{"CPU": 1}] * 4)
    ray.get(other_work.ready())
    wait = ray.wait

    def interrupted(refs, *args, timeout=None, **kwargs):
        if timeout == 17:  # the placement wait (Ctrl-C during it)
            raise KeyboardInterrupt
        return wait(refs, *args, timeout=timeout, **kwargs)

    monkeypatch.setattr(ray, "wait", interrupted)
    before = _live_placement_groups()
    try:
        trainer = DistributedTrainer(small_network(), Nesterov(0.02), batch_size=32, workers=1, placement_timeout=17)
        with pytest.raises(KeyboardInterrupt):
            fit(trainer, mnist)
        assert _live_placement_groups() == before
    finally:
        remove_placement_group(other_work)


def test_an_interrupted_close_still_ends_the_actors_and_frees_their_cpus(mnist, ray_local, monkeypatch):
    """A second Ctrl-C while a fit closes (here: while it takes back the server's state) skipped
    the rest of the close: actors and their placement group held the CPUs for the session."""
    import ray

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(DistributedTrainer, "_take_back_state", interrupted)
    before = _live_placement_groups()
    trainer = DistributedTrainer(small_network(), Nesterov(0.02), batch_size=32, workers=2)
    with pytest.raises(KeyboardInterrupt):
        fit(trainer, mnist)
    assert _live_placement_groups() == before
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources().get("CPU", 0):
        assert time.monotonic() < deadline, "the fit's actors still hold CPUs"
        time.sleep(0.2)
