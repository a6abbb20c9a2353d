"""The compiled-graph step protocol on a real local Ray: the same math as the single-process trainer."""
import pytest

from distnet import Nesterov
from distnet.distributed import DistributedTrainer

from test_distributed import fit, relative_difference, single_process, small_network

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers", [1, 2])
def test_compiled_steps_do_not_change_the_math(mnist, ray_local, workers):
    expected, expected_result = single_process(mnist, workers)
    trainer = DistributedTrainer(small_network(), Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=3,
                                 workers=workers, protocol="compiled")
    result = fit(trainer, mnist)
    assert trainer.active_protocol == "compiled"
    assert relative_difference(trainer.network.params, expected) < 1e-9
    assert [h["validation_error"] for h in result.history] == [h["validation_error"] for h in expected_result.history]
    assert result.history[-1]["train_error"] == pytest.approx(expected_result.history[-1]["train_error"])
    assert result.history[-1]["train_cost"] == pytest.approx(expected_result.history[-1]["train_cost"])

