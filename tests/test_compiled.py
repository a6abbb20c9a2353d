"""The compiled-graph step protocol on a real local Ray: the same math as the single-process trainer."""
import pytest

from distnet import Nesterov
from distnet.distributed import DistributedTrainer, compiled
from distnet.distributed.compiled import steps_ahead

from test_distributed import fit, relative_difference, single_process, small_network

pytestmark = pytest.mark.slow


# The small network's parameters fit the buffer budget twice over (two steps submitted ahead);
# a budget of one byte makes the driver wait for every step before it submits the next.
@pytest.mark.parametrize("workers,budget", [(1, None), (2, None), (2, 1)])
def test_compiled_steps_do_not_change_the_math(mnist, ray_local, monkeypatch, workers, budget):
    if budget is not None:
        monkeypatch.setattr(compiled, "_BUFFER_BUDGET_BYTES", budget)
    expected, expected_result = single_process(mnist, workers)
    trainer = DistributedTrainer(small_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=3,
                                 workers=workers, protocol="compiled")
    result = fit(trainer, mnist)
    assert trainer.active_protocol == "compiled"
    assert relative_difference(trainer.network.params, expected) < 1e-9
    assert [h["validation_error"] for h in result.history] == [h["validation_error"] for h in expected_result.history]
    assert result.history[-1]["train_error"] == pytest.approx(expected_result.history[-1]["train_error"])
    assert result.history[-1]["train_cost"] == pytest.approx(expected_result.history[-1]["train_cost"])


def test_steps_ahead_shrink_as_the_parameters_grow():
    article, wide = 28_928 * 4, 1_863_690 * 4
    assert steps_ahead(article) == 2
    assert steps_ahead(3 * 2**20) == 1  # two 3 MiB buffers per channel fit 8 MiB, three do not
    assert steps_ahead(wide) == 0  # one buffer per channel: each worker maps 7.5 MB, not 22
    assert steps_ahead(0) == 2
