"""Shared fixtures: real MNIST (from DISTNET_DATA_DIR, or the shared copy beside the checkout) and
one local Ray instance for the tests that need one."""
from __future__ import annotations

import faulthandler
import os
import sys
import threading
from pathlib import Path

import pytest

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if "DISTNET_DATA_DIR" not in os.environ and _SHARED.is_dir():
    os.environ["DISTNET_DATA_DIR"] = str(_SHARED)


HANG_SECONDS = float(os.environ.get("DISTNET_TEST_HANG_SECONDS", 600))  # the slowest test takes about a minute


@pytest.fixture(autouse=True)
def _end_a_hung_session(request):
    """A test still running after HANG_SECONDS ends the session, with every thread's traceback on
    stderr: a loop that never ends would otherwise hold CI until its own limit and say nothing."""
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def end() -> None:
        if capture is not None:  # (None under -p no:capture)
            capture.suspend_global_capture(in_=True)  # what follows goes to the real stderr
        print(f"\n{request.node.nodeid} still runs after {HANG_SECONDS:g} s: ending the tests", file=sys.stderr)
        faulthandler.dump_traceback(file=sys.stderr)
        os._exit(1)

    watchdog = threading.Timer(HANG_SECONDS, end)
    watchdog.daemon = True
    watchdog.start()
    yield
    watchdog.cancel()


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
