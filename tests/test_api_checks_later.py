"""The Python API refuses bad values where they are set, after construction too, and bad kinds of
input (text, complex numbers, no path) with a ConfigError that says what is wrong: before, such a
setting was taken silently (a momentum of 1.5 trained to 1e26 without a word, `trainer.l2 = 0.5`
did nothing), or failed deep inside with a bare TypeError, some after a run's files were written."""
import copy
import pickle
import re

import numpy as np
import pytest

from distnet import (Adam, ConfigError, CosineDecay, Dense, LeakyReLU, Momentum, Nesterov, Network, RandomAffine,
                     StepDecay, TerminalReporter, Trainer, load_mnist)
from distnet.data import Dataset


def small_network() -> Network:
    return Network([Dense(3, "sigmoid"), Dense(2, "softmax")], input_size=4, seed=0, dtype=np.float64)


def trainer() -> Trainer:
    return Trainer(small_network(), Nesterov(0.1, 0.9), batch_size=8, seed=1)


@pytest.mark.parametrize("make, setting, value, message", [
    (lambda: Nesterov(0.1, 0.9), "momentum", 1.5, "momentum must be a number in [0, 1), got 1.5"),
    (lambda: Momentum(0.1, 0.9), "momentum", 2, "momentum must be a number in [0, 1), got 2"),
    (lambda: Nesterov(0.1), "learning_rate", -1, "the learning rate must be a positive finite number, got -1"),
    (Adam, "beta1", 5, "Adam's beta1 must be a number in [0, 1), got 5"),
    (Adam, "epsilon", -1, "Adam's epsilon must be a positive finite number, got -1"),
    (CosineDecay, "final", -3, "the cosine schedule's final factor must be in [0, 1], got -3"),
    (StepDecay, "gamma", -1, "the step schedule's gamma must be a factor in (0, 1], got -1"),
    (StepDecay, "every", 0, "the step schedule's every must be a whole number of epochs >= 1, got 0"),
    (LeakyReLU, "alpha", 5.0, "LeakyReLU alpha must be a number in [0, 1), got 5.0"),
    (RandomAffine, "scale", 2, "the augmentation's scale must be a fraction in [0, 1), got 2"),
    (trainer, "l2", 1.5, "l2 must be a number in [0, 1), got 1.5"),
    (trainer, "seed", 1.5, "seed must be a whole number >= 0 (or None for a random one), got 1.5"),
    (trainer, "batch_size", 8.0, "the batch size must be a positive integer, got 8.0"),
    (trainer, "schedule", "cosine", "schedule must be a Schedule or None, such as CosineDecay(); got 'cosine'"),
    (trainer, "augmentation", 3, "augmentation must be a RandomAffine or None, such as RandomAffine(); got 3"),
])
def test_a_setting_changed_after_construction_is_checked_as_one_given(make, setting, value, message):
    made = make()
    before = getattr(made, setting)
    with pytest.raises(ConfigError) as refused:
        setattr(made, setting, value)
    assert str(refused.value) == message and getattr(made, setting) == before


def test_a_trainer_s_l2_and_seed_set_after_construction_train_as_given_to_it():
    rng = np.random.default_rng(0)
    data = Dataset(rng.random((64, 4)), rng.integers(0, 2, 64), classes=2)
    given = Trainer(small_network(), Nesterov(0.1, 0.9), l2=0.01, batch_size=8, seed=5)
    given.fit(data, None, epochs=2)
    later = trainer()
    later.l2, later.seed = 0.01, 5  # (l2 did nothing before: the trainer had no such attribute)
    later.fit(data, None, epochs=2)
    np.testing.assert_array_equal(later.network.params, given.network.params)
    assert later.l2 == 0.01 and "l2=0.01" in repr(later)
    later.seed = None  # a new random seed, as the constructor takes it
    assert isinstance(later.seed, int) and later.seed >= 0


def test_a_layer_s_size_is_fixed_once_it_is_in_a_network():
    network = small_network()
    with pytest.raises(ConfigError, match=r"^a layer's size is fixed once it is in a network \(this one has 3 "):
        network.layers[0].size = 7  # its save then wrote a file that load refused
    assert network.sizes == [4, 3, 2]
    layer = Dense(3, "relu")
    layer.size = 7  # a description only, until a network is made from it
    assert Network([layer, Dense(2, "softmax")], input_size=4).sizes == [4, 7, 2]


def test_a_layer_s_activation_is_fixed_once_it_is_in_a_network():
    network = Network([Dense(3, "relu"), Dense(2, "softmax")], input_size=4, cost="cross_entropy", seed=1)
    with pytest.raises(ConfigError, match=r"^a layer's activation is fixed once it is in a network \(this one's is "
                                          r"Softmax\(\)\): to keep the parameters"):
        network.layers[1].activation = "sigmoid"  # cross-entropy's gradient assumed softmax: silently wrong
    assert network.spec()["layers"][1]["activation"] == {"name": "softmax"}
    layer = Dense(3, "relu")
    layer.activation = "tanh"  # a description only, until a network is made from it
    assert repr(Network([layer, Dense(2, "softmax")], input_size=4).layers[0]) == "Dense(3, Tanh())"


@pytest.mark.parametrize("copy_of", [copy.deepcopy, lambda net: pickle.loads(pickle.dumps(net))],
                         ids=["deepcopy", "pickle"])
def test_a_copied_network_s_layers_stay_views_of_its_own_parameters(copy_of):
    network = Network([Dense(3, "relu"), Dense(2, "softmax")], input_size=4, cost="cross_entropy", seed=1)
    copied = copy_of(network)
    assert copied.spec() == network.spec() and np.array_equal(copied.params, network.params)
    copied.params[:] = 0.5  # as training changes them
    X = np.ones((1, 4))
    np.testing.assert_allclose(copied.predict(X), Network.from_spec(copied.spec(), copied.params).predict(X))
    assert copied.layers[0].weights[0, 0] == 0.5 and network.layers[0].weights[0, 0] != 0.5


def test_a_shallow_copy_shares_the_parameters_its_layers_view():
    network = Network([Dense(3, "relu"), Dense(2, "softmax")], input_size=4, cost="cross_entropy", seed=1)
    copied = copy.copy(network)
    copied.params[:] = 0.5
    assert network.layers[0].weights[0, 0] == 0.5 and copied.layers[1].bias[0] == 0.5


class LabelledNetwork(Network):
    """A subclass of a user's: its own constructor, and state the spec does not hold."""

    def __init__(self, classes: tuple, **options):
        super().__init__([Dense(3, "relu"), Dense(2, "softmax")], input_size=4, cost="cross_entropy", **options)
        self.classes = classes


@pytest.mark.parametrize("copy_of", [copy.deepcopy, lambda net: pickle.loads(pickle.dumps(net))],
                         ids=["deepcopy", "pickle"])
def test_a_copied_subclass_keeps_its_own_state(copy_of):
    network = LabelledNetwork(("cat", "dog"), seed=1)
    network.trained_on = "pets"
    copied = copy_of(network)
    assert (type(copied), copied.classes, copied.trained_on) == (LabelledNetwork, ("cat", "dog"), "pets")
    copied.params[:] = 0.5
    assert copied.layers[1].bias[0] == 0.5 and network.layers[1].bias[0] != 0.5


def test_a_network_does_not_share_the_activation_objects_it_was_given():
    leaky = LeakyReLU(0.01)
    network = Network([Dense(3, leaky), Dense(2, "softmax")], input_size=4, cost="cross_entropy")
    leaky.alpha = 0.5  # the caller's description, reused for another network
    assert network.spec()["layers"][0]["activation"] == {"name": "leaky_relu", "alpha": 0.01}


@pytest.mark.parametrize("classes, message", [
    ({"cat", "dog", "bird"}, "classes must be the class names in label order"),  # a set: any order
    (("a", "a", "b"), "the class names must differ from each other, got 'a' twice"),
    (0, "label 0 is outside the classes: there are none (classes=0)"),  # "outside 0..-1" before
])
def test_class_names_must_come_in_label_order_and_differ(classes, message):
    with pytest.raises(ConfigError, match=f"^dataset: .*{message.replace('(', '.').replace(')', '.')}"):
        Dataset(np.zeros((3, 2), np.float32), np.array([0, 1, 2]), classes=classes)


@pytest.mark.parametrize("call, message", [
    (lambda net: net.predict([["1", "2", "x", "4"]]), "the network's inputs must be real numbers, got <U1 values"),
    (lambda net: net.predict(np.array([[1 + 5j, 2, 3, 4]])), "the network's inputs must be real numbers, got "
                                                              "complex128 values"),  # the imaginary part dropped
    (lambda net: net.gradient(np.zeros((2, 4)), np.full((2, 2), "a")), "the targets must be real numbers, got <U1"),
    (lambda net: setattr(net, "params", np.full(23, 1j)), "a network's parameters must be real numbers"),  # zeros
    (lambda net: setattr(net.layers[0], "weights", np.full((4, 3), "a")), "a layer's weights must be real numbers"),
    (lambda net: net.save(None), "the file to write must be a path (a str or pathlib.Path, not empty), got None"),
    (lambda net: Network.load(None), "the saved network must be a path"),
    (lambda net: load_mnist(data_dir=5), "data_dir must be a path (a str or pathlib.Path, not empty), got 5"),
    (lambda net: TerminalReporter(width=None), "the progress bar's width must be a positive integer, got None"),
    (lambda net: Network([Dense(2, "softmax")], input_size=4, dtype=None), "dtype must be float32 or float64, "
                                                                            "got None"),  # float64 silently before
])
def test_inputs_of_the_wrong_kind_are_refused_in_one_message(call, message):
    with pytest.raises(ConfigError) as refused:
        call(small_network())
    assert str(refused.value).startswith(message)


def test_a_trainer_made_with_arguments_it_does_not_take_says_so_in_its_own_name():
    """Python's refusal named TrainerSettings.__init__, which no user calls, and not where the
    argument belongs."""
    from distnet.distributed import DistributedTrainer

    takes = "Trainer takes network, optimizer, l2, batch_size, seed, schedule, augmentation"
    network, optimizer = small_network(), Nesterov(0.1, 0.9)
    for made, message in [
        (lambda: Trainer(network, optimizer, workers=2),
         f"Trainer(): got an unexpected keyword argument 'workers' (DistributedTrainer takes it: it trains on Ray "
         f"workers, a Trainer in this process); {takes}"),
        (lambda: Trainer(network, optimizer, batchsize=8),
         f"Trainer(): got an unexpected keyword argument 'batchsize' (did you mean batch_size?); {takes}"),
        (lambda: Trainer(network, optimizer, lr=0.1), f"Trainer(): got an unexpected keyword argument 'lr'; {takes}"),
        (lambda: Trainer(network), f"Trainer(): missing a required argument: 'optimizer'; {takes}"),
        (lambda: Trainer(), f"Trainer(): missing a required argument: 'network'; {takes}"),
        (lambda: Trainer(network, optimizer, 0.1, l2=0.1), f"Trainer(): multiple values for argument 'l2'; {takes}"),
        (lambda: DistributedTrainer(network, optimizer, worker=2),
         "DistributedTrainer(): got an unexpected keyword argument 'worker' (did you mean workers?); DistributedTrainer "
         "takes network, optimizer, l2, batch_size, workers, address, seed, protocol, placement_timeout, "
         "max_failures, schedule, augmentation, step_timeout"),
    ]:
        with pytest.raises(TypeError) as refused:
            made()
        assert str(refused.value) == message
    made = Trainer(network, optimizer, batch_size=8)
    assert copy.deepcopy(made).batch_size == 8 and pickle.loads(pickle.dumps(made)).batch_size == 8  # (which make one without calling the class)

    class Mine(Trainer):
        def __init__(self, *args, note="", **kwargs):
            super().__init__(*args, **kwargs)
            self._note = note

    assert Mine(network, optimizer, note="mine")._note == "mine"  # a subclass of one's own takes its own arguments
    import inspect

    assert str(inspect.signature(Trainer)).startswith("(network: 'Network', optimizer: 'Optimizer', l2")  # for help()


def test_an_empty_run_dir_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = Dataset(np.zeros((16, 4)), np.zeros(16, int), classes=2)
    with pytest.raises(ConfigError, match=r"^run_dir must be a path \(a str or pathlib.Path, not empty\), got ''$"):
        trainer().fit(data, None, epochs=1, run_dir="")
    assert list(tmp_path.iterdir()) == []  # config.json, best.npz, checkpoint.npz were written here before


def test_a_trainer_refuses_a_setting_it_does_not_have_rather_than_keep_it_unread():
    from distnet.distributed import DistributedTrainer

    distributed = DistributedTrainer(small_network(), Nesterov(0.1, 0.9), batch_size=8, workers=2)
    distributed.workers = 3  # was DistributedTrainer.requested_workers: `workers = 3` was kept and never read
    assert distributed.workers == 3 and "workers=3" in repr(distributed)
    settings = ("address, augmentation, batch_size, l2, learning_rate, max_failures, network, placement_timeout, "
                "protocol, schedule, seed, step_timeout, workers")
    for made, name, message in [
        (trainer(), "batchsize", "Trainer: there is no setting 'batchsize' (did you mean batch_size?); the settings "
                                 "are augmentation, batch_size, l2, learning_rate, network, schedule, seed, shards"),
        (trainer(), "workers", "Trainer: there is no setting 'workers' (DistributedTrainer takes it: it trains on "
                               "Ray workers, a Trainer in this process); the settings are augmentation, batch_size, "
                               "l2, learning_rate, network, schedule, seed, shards"),
        (trainer(), "optimizer", "Trainer: optimizer is read-only, given as the trainer is made: for another, make a "
                                 "new Trainer; the settings are augmentation, batch_size, l2, "),
        (distributed, "shards", f"DistributedTrainer: shards is read-only; the settings are {settings}"),
        (trainer(), "distributed", "Trainer: distributed is read-only; the settings are "),
        (trainer(), "fit", "Trainer: fit is read-only; the settings are "),
        (distributed, "protocl", f"DistributedTrainer: there is no setting 'protocl' (did you mean protocol?); "
                                 f"the settings are {settings}"),
    ]:
        with pytest.raises(ConfigError) as refused:
            setattr(made, name, 4)
        assert str(refused.value).startswith(message)
        assert name not in vars(made)
    later = trainer()
    later._own_note = "kept"  # what is not public stays the trainer's own business
    assert later._own_note == "kept"

    class Mine(Trainer):
        noted = False

    mine = Mine(small_network(), Nesterov(0.1, 0.9))
    mine.noted, mine.more = True, 1  # a subclass of one's own keeps what it likes
    assert (mine.noted, mine.more) == (True, 1)
    with pytest.raises(ConfigError, match="^Mine: distributed is read-only; "):
        mine.distributed = True  # but what is distnet's stays checked


def test_a_distributed_trainer_s_step_is_refused_saying_it_trains_through_fit_alone():
    # AttributeError before: 'DistributedTrainer' object has no attribute 'step'.
    from distnet.distributed import DistributedTrainer

    distributed = DistributedTrainer(small_network(), Nesterov(0.1, 0.9), batch_size=8, workers=2)
    with pytest.raises(ConfigError, match=re.escape(
            "a DistributedTrainer trains through fit alone, its workers drawing the mini-batches from the training "
            "set; for steps on mini-batches of your own, use a Trainer (in this process): "
            "Trainer(network, optimizer).step(X, Y)")):
        distributed.step(np.zeros((2, 4)), np.eye(2))


def test_a_validation_set_of_other_classes_is_refused():
    rng = np.random.default_rng(0)
    train = Dataset(rng.random((16, 4)), rng.integers(0, 2, 16), classes=["cat", "dog"])
    other = Dataset(rng.random((8, 4)), rng.integers(0, 2, 8), classes=["dog", "cat"])
    with pytest.raises(ConfigError, match=r"^the validation data's classes \(dog, cat\) are not the training data's "
                                          r"\(cat, dog\): validate on data of the same classes, in the same order$"):
        trainer().fit(train, other, epochs=1)


def test_a_network_s_layout_is_fixed_once_it_is_made_and_its_cost_is_checked_when_changed():
    """Set, they were taken: a layer appended was saved to a file that would not load, and a
    cost that does not fit the output layer gave wrong gradients without a word."""
    net = small_network()
    with pytest.raises(AttributeError):
        net.layers.append(Dense(2, "softmax"))  # a tuple
    for name, value, instead in [("input_size", 3, "build a new Network for another layout"),
                                 ("layers", [Dense(2, "softmax")], "build a new Network for another layout"),
                                 ("dtype", np.float32, "use astype(dtype) for a copy in another float type")]:
        with pytest.raises(ConfigError, match=f"^a network's {name} is fixed once it is made \\(its parameters are "
                                              f"laid out for it\\); {re.escape(instead)}$"):
            setattr(net, name, value)
    sigmoid = Network([Dense(3, "tanh"), Dense(2, "sigmoid")], input_size=4, dtype=np.float64)
    with pytest.raises(ConfigError, match="^cross-entropy is the cost of a probability distribution"):
        sigmoid.cost_function = "cross_entropy"
    sigmoid.cost_function = "mse"
    assert repr(sigmoid.cost_function) == "MSE()" and sigmoid.sizes == [4, 3, 2]
    with pytest.raises(ConfigError, match=r"^a network's cost\(X, Y\) is the mean cost over samples; set the cost "
                                          r"function the network is trained on as network.cost_function$"):
        sigmoid.cost = "cross_entropy"  # would hide the method
    assert sigmoid.cost(np.ones((1, 4)), [[0.0, 1.0]]) > 0 and repr(sigmoid.cost_function) == "MSE()"
    net.name = "mine"  # anything else a user keeps with it


def test_evaluate_takes_classes_as_a_dataset_does_and_a_dataset_with_labels_is_said_to_bring_its_own():
    from distnet.metrics import evaluate

    net = Network([Dense(3, "softmax")], input_size=4, seed=0)
    X, y = np.random.default_rng(0).random((9, 4)), np.arange(9) % 3
    assert evaluate(net, X, y, classes=3).classes == ("0", "1", "2")  # a TypeError before
    assert evaluate(net, X, y, classes=["a", "b", "c"]).classes == ("a", "b", "c")
    with pytest.raises(ConfigError, match="^evaluate: classes must be the class names in label order"):
        evaluate(net, X, y, classes="abc")  # three classes a, b and c before
    data = Dataset(X, y, classes=["a", "b", "c"])
    with pytest.raises(ConfigError, match=r"^a Dataset brings its labels: evaluate\(network, dataset\)"):
        evaluate(net, data, y)
    assert evaluate(net, data).classes == ("a", "b", "c")


@pytest.mark.parametrize("options, said", [
    ({"acceptable_error": 0.1}, "acceptable_error=0.1 sets"),
    ({"window": 3, "acceptable_error": 0.1}, "window=3 and acceptable_error=0.1 set"),
])
def test_a_stop_rule_without_a_validation_set_is_refused_not_ignored(options, said):
    """The run trained to its last epoch: nothing scores the validation error it would stop on."""
    data = Dataset(np.zeros((16, 4)), np.zeros(16, int), classes=2)
    empty = data.subset(slice(0, 0))
    for validation in (None, empty):
        with pytest.raises(ConfigError, match=f"^{re.escape(said)} when to stop on the validation error, and there "
                                              f"is no validation set: give one"):
            trainer().fit(data, validation, epochs=5, **options)


def test_ragged_rows_are_refused_in_one_message_not_numpy_s():
    ragged = [[0.0, 1.0], [1.0]]
    net = Network([Dense(2, "softmax")], input_size=2)
    for call, what in [(lambda: Dataset(ragged, [0, 1], classes=2), "dataset: images"),
                       (lambda: net.predict(ragged), "the network's inputs"),
                       (lambda: net.cost([[0.0, 1.0]], [[1.0, 0.0], [1.0]]), "the targets"),
                       (lambda: Trainer(net, Nesterov(0.1)).step(ragged, [[1.0, 0.0], [0.0, 1.0]]),
                        "the mini-batch's inputs"),
                       (lambda: Trainer(net, Nesterov(0.1)).step([[0.0, 1.0]] * 2, [[1.0, 0.0], [1.0]]),
                        "the mini-batch's targets")]:
        with pytest.raises(ConfigError, match=f"^{what} must be rows of one length each \\(an array, or lists of "
                                              f"equal length\\); some rows here are longer than others$"):
            call()


@pytest.mark.parametrize("labels, classes, hint", [
    (np.array(["b", "a", "c", "a"]), ("a", "b", "c"), " (class names? names, labels = np.unique(labels, "
                                                       "return_inverse=True) gives the names and each row's index)"),
    (np.array([0.0, 1.0, 2.0, 1.0]), 3, " (whole numbers as floats? labels.astype(int))"),
    (np.array([1, 2, 3, 1]), 3, "; counted from 1? use labels - 1"),
])
def test_the_common_label_mistakes_of_tabular_data_say_how_to_put_them_right(labels, classes, hint):
    X = np.zeros((4, 2))
    with pytest.raises(ConfigError) as refused:
        Dataset(X, labels, classes=classes)
    assert str(refused.value).endswith(hint)
    with pytest.raises(ConfigError) as refused:  # the network's scoring says the same
        Network([Dense(3, "softmax")], input_size=2).error_rate(X, labels)
    assert str(refused.value).endswith(hint)
