"""Learning-rate schedules, and the training loop applying them (and augmentation) per epoch."""
import json
import math
import re

import numpy as np
import pytest

from distnet import Adam, ConfigError, Dense, Network
from distnet.data.augment import RandomAffine
from distnet.nn import CosineDecay, StepDecay, schedule_from_spec
from distnet.progress import Reporter
from distnet.trainer import Trainer


def test_cosine_decay_goes_from_the_base_to_the_floor():
    cosine = CosineDecay()
    assert cosine.factor(0, 10) == 1.0
    assert cosine.factor(5, 10) == pytest.approx(0.5)
    assert cosine.factor(9, 10) == pytest.approx((1 + math.cos(0.9 * math.pi)) / 2)
    assert CosineDecay(final=0.1).factor(5, 10) == pytest.approx(0.1 + 0.9 * 0.5)
    factors = [cosine.factor(e, 100) for e in range(100)]
    assert all(a > b > 0 for a, b in zip(factors, factors[1:]))


def test_step_decay_multiplies_every_n_epochs():
    step = StepDecay(every=3, gamma=0.5)
    assert [step.factor(e, 100) for e in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]


def test_specs_round_trip_and_bad_ones_are_refused():
    for schedule in (CosineDecay(0.05), StepDecay(10, 0.3)):
        assert schedule_from_spec(schedule.spec()).spec() == schedule.spec()
    assert schedule_from_spec("cosine").spec() == {"name": "cosine", "final": 0.0}
    assert schedule_from_spec(None) is None
    with pytest.raises(ConfigError, match="unknown learning-rate schedule 'linear'"):
        schedule_from_spec("linear")
    with pytest.raises(ConfigError, match=r"final factor must be in \[0, 1\]"):
        CosineDecay(final=2)
    for every in (0, True, 2.5):
        with pytest.raises(ConfigError, match=f"the step schedule's every must be a whole number of epochs >= 1, "
                                              f"got {every}"):
            StepDecay(every=every)
    with pytest.raises(ConfigError, match=r"the step schedule's gamma must be a factor in \(0, 1\], got '0.5'"):
        StepDecay(gamma="0.5")
    assert StepDecay(every=np.int64(10)).spec() == {"name": "step", "every": 10, "gamma": 0.1}


@pytest.mark.parametrize("schedule", [CosineDecay(), StepDecay(3)], ids=["cosine", "step"])
def test_a_factor_is_of_an_epoch_of_the_run(schedule):
    # factor(0, 0) divided by 0 and past its end a cosine rose again: a fit never asks so.
    assert schedule.factor(9, 10) < 1
    with pytest.raises(ConfigError, match="^a schedule's number of epochs must be a whole number of at least 1, "
                                          "got 0$"):
        schedule.factor(0, 0)
    for epoch in (10, 15, -1, 2.0):
        with pytest.raises(ConfigError, match=re.escape(f"a schedule's epoch must be a whole number from 0 to 9 "
                                                        f"(0-based: one of the run's 10 epochs), got {epoch}")):
            schedule.factor(epoch, 10)


def test_a_schedule_is_taken_as_it_is_and_a_name_that_is_not_a_string_is_unknown():
    schedule = StepDecay(2, 0.5)
    assert schedule_from_spec(schedule) is schedule  # as optimizer_from_spec takes an Optimizer
    with pytest.raises(ConfigError, match=re.escape("learning-rate schedule CosineDecay is a class: pass an "
                                                    "instance, CosineDecay()")):
        schedule_from_spec(CosineDecay)
    with pytest.raises(ConfigError, match=re.escape("unknown learning-rate schedule ['step']; known: cosine, step")):
        schedule_from_spec({"name": ["step"]})


def tiny_network():
    return Network([Dense(10, "relu"), Dense(10, "softmax")], input_size=784, seed=2, cost=None,
                   dtype=np.float64)


def make_trainer(**options):
    return Trainer(tiny_network(), Adam(0.01), batch_size=50, seed=4, **options)


def test_each_epoch_runs_at_its_scheduled_rate(mnist):
    train, validation = mnist.train.subset(slice(0, 500)), mnist.validation.subset(slice(0, 100))
    trainer = make_trainer(schedule=CosineDecay())
    result = trainer.fit(train, validation, epochs=4, eval_every=1, window=10)
    assert [h["learning_rate"] for h in result.history] == pytest.approx(
        [0.01 * CosineDecay().factor(e, 4) for e in range(4)])
    # The base rate is what the run's configuration records.
    assert trainer.config()["optimizer"]["learning_rate"] == 0.01
    assert trainer.config()["schedule"] == {"name": "cosine", "final": 0.0}


def test_a_schedule_changes_the_steps_and_none_keeps_the_rate(mnist):
    train = mnist.train.subset(slice(0, 500))
    constant, scheduled = make_trainer(), make_trainer(schedule=CosineDecay())
    constant.fit(train, None, epochs=3)
    scheduled.fit(train, None, epochs=3)
    assert constant.optimizer.learning_rate == 0.01
    assert not np.allclose(constant.network.params, scheduled.network.params)


def test_one_base_learning_rate_the_optimizer_s_set_either_way_and_recorded_as_trained(mnist, tmp_path):
    train = mnist.train.subset(slice(0, 500))
    by_optimizer, by_trainer = make_trainer(), make_trainer()
    by_optimizer.optimizer.learning_rate = 0.005
    by_trainer.learning_rate = 0.005
    for trainer, run in ((by_optimizer, tmp_path / "a"), (by_trainer, tmp_path / "b")):
        result = trainer.fit(train, epochs=2, eval_every=1, run_dir=run)
        assert [h["learning_rate"] for h in result.history] == [0.005, 0.005]
        assert json.loads((run / "config.json").read_text())["optimizer"]["learning_rate"] == 0.005
    np.testing.assert_array_equal(by_optimizer.network.params, by_trainer.network.params)
    with pytest.raises(ConfigError, match="the learning rate must be"):
        by_trainer.learning_rate = 0
    with pytest.raises(ConfigError, match="the learning rate must be a positive finite number, got -1.0"):
        by_optimizer.optimizer.learning_rate = -1.0  # set on the optimizer: checked there too
    by_optimizer.optimizer.learning_rate = np.float32(2 ** -7)  # recorded as a plain number
    by_optimizer.fit(train, epochs=1, run_dir=tmp_path / "d")
    assert json.loads((tmp_path / "d" / "config.json").read_text())["optimizer"]["learning_rate"] == 2 ** -7


class SetsTheRate(Reporter):
    def __init__(self, trainer):
        self.trainer, self.refusal = trainer, None

    def on_start(self, info):
        try:
            self.trainer.learning_rate = 0.5
        except ConfigError as e:
            self.refusal = str(e)


def test_the_base_rate_cannot_change_during_a_fit(mnist):
    trainer = make_trainer()
    reporter = SetsTheRate(trainer)
    trainer.fit(mnist.train.subset(slice(0, 500)), epochs=1, reporter=reporter)
    assert reporter.refusal.startswith("the base learning rate cannot change during a fit")
    assert trainer.learning_rate == trainer.optimizer.learning_rate == 0.01


def test_a_schedule_scales_the_base_rate_during_a_fit_and_puts_it_back(mnist):
    train = mnist.train.subset(slice(0, 500))
    trainer = make_trainer(schedule=CosineDecay())
    trainer.optimizer.learning_rate = 0.02  # the base, as the trainer was made with another
    first = trainer.fit(train, epochs=2, eval_every=1)
    assert [h["learning_rate"] for h in first.history] == pytest.approx([0.02, 0.02 * CosineDecay().factor(1, 2)])
    assert trainer.optimizer.learning_rate == trainer.learning_rate == 0.02
    again = trainer.fit(train, epochs=2, eval_every=1)  # starts from the base, not from where the last ended
    assert [h["learning_rate"] for h in again.history] == [h["learning_rate"] for h in first.history]


def test_augmentation_trains_on_moved_images(mnist):
    train = mnist.train.subset(slice(0, 500))
    plain, augmented = make_trainer(), make_trainer(augmentation=RandomAffine())
    plain.fit(train, None, epochs=1)
    augmented.fit(train, None, epochs=1)
    assert not np.allclose(plain.network.params, augmented.network.params)
    assert augmented.config()["augmentation"] == RandomAffine().spec()


def test_a_resumed_run_with_schedule_and_augmentation_ends_exactly_where_a_whole_one_does(mnist, tmp_path):
    train, validation = mnist.train.subset(slice(0, 600)), mnist.validation.subset(slice(0, 100))
    options = dict(schedule=CosineDecay(), augmentation=RandomAffine())
    whole = make_trainer(**options)
    whole.fit(train, validation, epochs=4, eval_every=1, window=10)

    interrupted = make_trainer(**options)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(train, validation, epochs=4, eval_every=1, window=10, run_dir=tmp_path,
                        checkpoint_every=4, reporter=InterruptAt(epoch=3, step=5))
    resumed = make_trainer(**options)  # from the checkpoint at step 4 of epoch 3
    resumed.fit(train, validation, epochs=4, eval_every=1, window=10, run_dir=tmp_path, resume=True)
    assert np.array_equal(resumed.network.params, whole.network.params)


class InterruptAt(Reporter):
    """Interrupts the run once it reaches ``step`` of ``epoch`` (1-based)."""

    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def on_steps(self, epoch, step, steps, stats, seconds):
        if (epoch, step) >= (self.epoch, self.step):
            raise KeyboardInterrupt


def test_resuming_with_another_schedule_is_refused(mnist, tmp_path):
    train = mnist.train.subset(slice(0, 200))
    make_trainer(schedule=CosineDecay()).fit(train, None, epochs=1, run_dir=tmp_path)
    with pytest.raises(ConfigError, match="started with another schedule \\("):
        make_trainer().fit(train, None, epochs=2, run_dir=tmp_path, resume=True)


def test_an_evaluation_a_resume_owes_records_the_rate_its_epoch_trained_at(mnist, tmp_path):
    """Stopped after epoch 3 of 6 (evaluated every 2), resumed to end at 3: the evaluation of
    epoch 3 made on resuming recorded the base rate, not the scheduled rate epoch 3 trained at."""
    train, validation = mnist.train.subset(slice(0, 500)), mnist.validation.subset(slice(0, 100))
    options = dict(eval_every=2, window=10)
    whole = make_trainer(schedule=StepDecay(1, 0.5)).fit(train, validation, epochs=3, **options)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(schedule=StepDecay(1, 0.5)).fit(train, validation, epochs=6, run_dir=tmp_path,
                                                     reporter=InterruptAt(epoch=4, step=1), **options)
    resumed = make_trainer(schedule=StepDecay(1, 0.5)).fit(train, validation, epochs=3, run_dir=tmp_path,
                                                           resume=True, **options)
    assert [h["learning_rate"] for h in whole.history] == [0.01 * 0.5, 0.01 * 0.25]
    assert [h["learning_rate"] for h in resumed.history] == [h["learning_rate"] for h in whole.history]


def test_a_schedule_that_takes_the_rate_to_0_is_refused_before_the_fit_not_at_that_epoch(mnist, tmp_path):
    """0.01 · (1e-200)² underflows to 0 in the third epoch: the fit trained two epochs, then failed
    with "the learning rate must be a positive finite number, got 0.0" (and a run resumed to more
    epochs did the same)."""
    train = mnist.train.subset(slice(0, 200))
    trainer = make_trainer(schedule=StepDecay(1, 1e-200))
    before = trainer.network.params.copy()
    refused = (r"^the schedule StepDecay\(every=1, gamma=1e-200\) takes the learning rate 0.01 down to 0 \(it "
               r"underflows\) by the last of the {} epochs; give a schedule that lowers it less, or fewer epochs$")
    with pytest.raises(ConfigError, match=refused.format(3)):
        trainer.fit(train, None, epochs=3, run_dir=tmp_path / "new")
    assert np.array_equal(trainer.network.params, before) and not (tmp_path / "new").exists()
    trainer.fit(train, None, epochs=2, run_dir=tmp_path / "run")  # its rate 1e-202 in the second epoch
    with pytest.raises(ConfigError, match=refused.format(4)):
        make_trainer(schedule=StepDecay(1, 1e-200)).fit(train, None, epochs=4, run_dir=tmp_path / "run", resume=True)
