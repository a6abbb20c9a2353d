"""Shared fixtures: real MNIST (from DISTNET_DATA_DIR, or the shared copy beside the checkout) and
one local Ray instance for the tests that need one."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if "DISTNET_DATA_DIR" not in os.environ and _SHARED.is_dir():
    os.environ["DISTNET_DATA_DIR"] = str(_SHARED)


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST splits (50,000 train / 10,000 validation / 10,000 test)."""
    from distnet.data import load_mnist

    return load_mnist(download=False)


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with 4 logical CPUs (so 3 workers can be placed on a 2-core machine),
    shut down after the session."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR")
    yield ray
    if started:
        ray.shutdown()
