"""The original's StopEvaluator on scripted error sequences, and the best-network keeper."""
import json
import math

import numpy as np
import pytest

from distnet import ConfigError, Dense, Network
from distnet.stop import EarlyStopping, StopEvaluator


def run(evaluator, errors):
    """The index of the call that said stop, or None."""
    for i, e in enumerate(errors):
        if evaluator.stop(e):
            return i
    return None


def test_never_stops_before_the_window_is_full():
    assert run(StopEvaluator(window=3), [0.5, 0.9]) is None


def test_stops_when_the_moving_average_rises():
    # windows: [.5 .4 .3] avg .4 -> [.4 .3 .2] avg .3 -> [.3 .2 .9] avg .467 > .3: stop at index 4
    assert run(StopEvaluator(window=3), [0.5, 0.4, 0.3, 0.2, 0.9, 0.1]) == 4


def test_the_window_drops_its_oldest_error():
    # windows: [.5 .3] avg .4 -> [.3 .31] avg .305 -> [.31 .32] avg .315 > .305: stop at index 3
    # (dropping the middle one instead, [.5 .31] would stop at index 2)
    assert run(StopEvaluator(window=2), [0.5, 0.3, 0.31, 0.32]) == 3


def test_a_flat_average_does_not_stop():
    assert run(StopEvaluator(window=2), [0.3, 0.3, 0.3, 0.3, 0.3]) is None


def test_the_same_errors_in_another_order_are_the_same_average():
    # [.05 .04 .06] and [.04 .06 .05] hold the same errors; summed left to right they come out
    # 0.049999999999999996 and 0.05000000000000001, which read as a rise and stopped the run.
    assert run(StopEvaluator(window=3), [0.05, 0.04, 0.06, 0.05]) is None
    # A real rise of one part in 10,000 (one more wrong answer of 10,000) still stops.
    assert run(StopEvaluator(window=3), [0.05, 0.04, 0.06, 0.0501]) == 3


def test_first_full_window_never_stops_even_if_bad():
    assert run(StopEvaluator(window=2), [0.9, 0.95]) is None


def test_acceptable_error_stops_once_best_is_below_it():
    assert run(StopEvaluator(window=10, acceptable_error=0.1), [0.3, 0.2, 0.09, 0.5]) == 2


def test_acceptable_error_is_strict():
    assert run(StopEvaluator(window=10, acceptable_error=0.1), [0.3, 0.1, 0.1]) is None


def test_improvement_is_strict_and_lowest_tracked():
    evaluator = StopEvaluator(window=5)
    flags = []
    for e in [0.5, 0.4, 0.4, 0.6, 0.3]:
        evaluator.stop(e)
        flags.append(evaluator.improved)
    assert flags == [True, True, False, False, True]
    assert evaluator.lowest == 0.3


def test_window_and_acceptable_error_are_checked_where_given():
    for window in (0, True, 2.0, "3"):
        with pytest.raises(ConfigError, match=f"the stop window must be a positive number of evaluations, got "
                                              f"{window!r}"):
            StopEvaluator(window=window)
    with pytest.raises(ConfigError, match="acceptable_error must be an error rate, a fraction in \\[0, 1\\)"):
        StopEvaluator(window=3, acceptable_error=2)
    assert StopEvaluator(window=np.int64(3)).state()["window"] == 3


def test_state_round_trip_continues_identically():
    errors = [0.5, 0.45, 0.44, 0.46, 0.43, 0.47, 0.49, 0.5]
    whole = StopEvaluator(window=3)
    verdicts = [whole.stop(e) for e in errors]
    first = StopEvaluator(window=3)
    head = [first.stop(e) for e in errors[:4]]
    resumed = StopEvaluator.from_state(first.state())
    assert head + [resumed.stop(e) for e in errors[4:]] == verdicts
    # and every part of the state carries over, not only what these errors' verdicts depend on
    again = StopEvaluator(window=3)
    for e in errors:
        again.stop(e)
        assert StopEvaluator.from_state(again.state()).state() == again.state()



def test_a_restored_evaluator_leaves_the_state_it_was_given_alone():
    """from_state copies the window: a checkpoint's state, read once, stays what it was however the
    evaluator made from it goes on (one resumed from it again starts where the first did)."""
    first = StopEvaluator(window=3)
    for e in (0.5, 0.4):
        first.stop(e)
    state = first.state()
    resumed = StopEvaluator.from_state(state)
    for e in (0.3, 0.6, 0.7):
        resumed.stop(e)
    assert state["errors"] == [0.5, 0.4] and StopEvaluator.from_state(state).state() == first.state()


@pytest.mark.parametrize("window, acceptable, errors, verdicts", [
    # the average falls, rises (stop), falls below the remembered one, rises again (stop)
    (3, None, [0.5, 0.4, 0.3, 0.2, 0.6, 0.0, 0.0, 0.9], "FFFFTFFT"),
    (2, None, [0.3, 0.3, 0.3, 0.3], "FFFF"),  # a flat average never stops
    (1, None, [0.5, 0.4, 0.4, 0.41, 0.2], "FFFTF"),
    (4, 0.25, [0.5, 0.3, 0.2, 0.6, 0.7], "FFTTT"),  # below the acceptable error, then always
])
def test_stopped_is_what_the_last_call_said_also_after_a_restore(window, acceptable, errors, verdicts):
    evaluator = StopEvaluator(window, acceptable)
    assert not evaluator.stopped
    said = ""
    for error in errors:
        said += "T" if evaluator.stop(error) else "F"
        assert evaluator.stopped == (said[-1] == "T")
        assert StopEvaluator.from_state(evaluator.state()).stopped == (said[-1] == "T")
    assert said == verdicts


def small_network():
    return Network([Dense(3, "sigmoid"), Dense(2, "softmax")], input_size=4, seed=0, dtype=np.float64)


def test_early_stopping_keeps_a_real_copy_of_the_best(tmp_path):
    net = small_network()
    keeper = EarlyStopping(net.spec(), window=10, best_path=tmp_path / "best.npz")
    params = net.params.copy()
    keeper.evaluate(1, 0.3, params)
    best_before = params.copy()
    params += 1.0  # the caller reuses its array
    verdict = keeper.evaluate(2, 0.4, params)  # worse: not kept
    assert not verdict.improved and verdict.best_error == 0.3 and verdict.best_epoch == 1
    np.testing.assert_array_equal(keeper.best_network().params, best_before)
    on_disk = Network.load(tmp_path / "best.npz")
    np.testing.assert_array_equal(on_disk.params, best_before)
    assert (tmp_path / "best.json").read_text().count('"epoch": 1') == 1


def test_early_stopping_writes_each_improvement(tmp_path):
    net = small_network()
    keeper = EarlyStopping(net.spec(), window=10, best_path=tmp_path / "best.npz")
    for epoch, error in enumerate([0.5, 0.4, 0.45, 0.2], start=1):
        keeper.evaluate(epoch, error, net.params + epoch)
    np.testing.assert_array_equal(Network.load(tmp_path / "best.npz").params, net.params + 4)
    assert keeper.best_epoch == 4 and math.isclose(keeper.evaluator.lowest, 0.2)


def test_a_stop_evaluator_says_where_it_stands_in_one_line():
    evaluator = StopEvaluator(3)
    for error in (0.2, 0.1):
        evaluator.stop(error)
    assert repr(evaluator) == "StopEvaluator(window=3, acceptable_error=None, lowest=0.1000, in_window=2, stopped=False)"


def test_a_refused_evaluation_changes_nothing(tmp_path):
    net = small_network()
    keeper = EarlyStopping(net.spec(), window=2, best_path=tmp_path / "best.npz")
    keeper.evaluate(1, 0.5, net.params)
    before = (keeper.state(), (tmp_path / "best.json").read_bytes())
    with pytest.raises(ConfigError, match=rf"^expected {net.params.size} parameters for layers .*, got an array of "
                                          r"shape \(3,\)$"):
        keeper.evaluate(2, 0.4, np.zeros(3))  # a better error, with parameters of another network
    for error in ("0.4", math.nan):
        with pytest.raises(ConfigError, match=r"^the error rate must be a finite number, got "):
            keeper.evaluate(2, error, net.params)
    assert (keeper.state(), (tmp_path / "best.json").read_bytes()) == before
    np.testing.assert_array_equal(keeper.best_network().params, net.params)


def test_an_acceptable_error_of_0_is_taken_and_never_reached():
    evaluator = StopEvaluator(window=3, acceptable_error=0)
    assert evaluator.acceptable_error == 0.0
    assert [evaluator.stop(e) for e in (0.2, 0.1, 0.0)] == [False, False, False]


def test_the_acceptable_error_stop_leaves_the_window_as_it_was():
    evaluator = StopEvaluator(window=3, acceptable_error=0.1)
    assert [evaluator.stop(e) for e in (0.3, 0.2, 0.05)] == [False, False, True]
    assert evaluator.state()["errors"] == [0.3, 0.2]
    assert evaluator.state()["last_average"] is None  # no average yet (infinite inside)


def test_the_state_is_strict_json_and_comes_back_with_its_infinities():
    """A checkpoint's metadata held "last_average": Infinity, which jq and JavaScript refuse (an
    audit of the run files); checkpoints written so still load."""
    fresh, started = StopEvaluator(window=2), StopEvaluator(window=2)
    started.stop(0.3)
    for evaluator in (fresh, started):
        text = json.dumps(evaluator.state(), allow_nan=False)
        back = StopEvaluator.from_state(json.loads(text))
        assert (back.lowest, back.last_average) == (evaluator.lowest, evaluator.last_average)
        assert back.state() == evaluator.state()
    older = {**fresh.state(), "lowest": float("inf"), "last_average": float("inf")}  # as written before
    assert StopEvaluator.from_state(json.loads(json.dumps(older))).state() == fresh.state()
    assert math.isinf(fresh.lowest) and math.isinf(StopEvaluator.from_state(fresh.state()).last_average)


def _small_network() -> Network:
    return Network([Dense(3, "softmax")], input_size=4, seed=0)


def test_a_best_network_of_epoch_0_is_written_too(tmp_path):
    """Epoch 0 (the network before training, as a resume's first evaluation may score it) is an
    epoch like any other, not "none"."""
    network = _small_network()
    EarlyStopping(network.spec(), 3, best_path=tmp_path / "best.npz").evaluate(0, 0.5, network.params)
    assert np.array_equal(Network.load(tmp_path / "best.npz").params, network.params)
    assert json.loads((tmp_path / "best.json").read_text()) == {"epoch": 0, "validation_error": 0.5}


def test_a_restored_best_network_is_a_copy_of_the_parameters_given(tmp_path):
    network = _small_network()
    stopping = EarlyStopping(network.spec(), 3)
    stopping.evaluate(1, 0.5, network.params)
    given = network.params.copy()
    stopping.load_state(stopping.state(), given)
    given[:] = 0  # the caller's array, reused for the next steps
    assert np.array_equal(stopping.best_network().params, network.params)


def test_best_json_records_the_lowest_error_when_the_acceptable_error_stops_the_run(tmp_path):
    network = _small_network()
    stopping = EarlyStopping(network.spec(), 3, acceptable_error=0.2, best_path=tmp_path / "best.npz")
    stopping.evaluate(1, 0.5, network.params)
    assert stopping.evaluate(2, 0.1, network.params + 1).stop
    assert json.loads((tmp_path / "best.json").read_text()) == {"epoch": 2, "validation_error": 0.1}
    assert np.array_equal(Network.load(tmp_path / "best.npz").params, network.params + 1)


def test_early_stopping_refuses_a_best_path_in_a_folder_that_does_not_exist_at_once(tmp_path):
    """Found at the first improvement, it was said as a run directory "gone (moved or removed)", the
    stop rule's state changed all the same."""
    net = Network([Dense(2, "softmax")], input_size=3, seed=0)
    with pytest.raises(ConfigError, match=r"^best_path .*never/best.npz: the folder .*never does not exist; create it"):
        EarlyStopping(net.spec(), window=2, best_path=tmp_path / "never" / "best.npz")
    assert not (tmp_path / "never").exists()
