"""How distnet starts Ray on this machine: for a DistributedTrainer given no cluster address (and
for the benchmarks, which measure what such a run does). Two things differ from Ray's defaults.

Ray registers serializers for Ray Data in every worker process at its first deserialization and,
to do so, imports pyarrow whenever it is installed (``ray/util/serialization_addons.py``), as it is
wherever Ray Train or Ray Data are: 15-25 MB of resident memory per worker, for a library that
distnet's actors never use (they move NumPy arrays only). Each worker marks it absent first.

Ray frees the objects nobody refers to any more in batches, by default once a second. Under the
``plain`` step protocol a second's steps of parameters and gradients (7.5 MB each on the wide
network) pile up meanwhile at ever new places in the object store, and a worker's resident memory
counts every page of the store it has touched: wide ``plain`` workers peaked at 550-580 MB (one
worker) and 680-810 MB (two) instead of about 300 and 224. Here they are freed every 10 ms
(``cluster/`` sets the same for the clusters it starts). A Ray that the user started, or a
cluster's, is left as it is.
"""
from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import ray

from ..errors import RayFailedError, first_line
from ..signals import interruptions_held

# Job-level only: Ray reads ``worker_process_setup_hook`` from the runtime environment given to
# ``ray.init`` (an actor's own runtime environment ignores it).
RUNTIME_ENV = {"worker_process_setup_hook": "distnet.distributed.local_ray.skip_pyarrow"}
SYSTEM_CONFIG = {"free_objects_period_milliseconds": 10}


def start(**options) -> None:
    """``ray.init`` a new Ray of this machine only, with distnet's settings (``options`` go to it
    too): never one that runs already (which RAY_ADDRESS or a ``ray start`` here would name to
    ``ray.init``, and whose settings are its own)."""
    try:
        _init_whole(address="local", include_dashboard=False, logging_level="ERROR", runtime_env=RUNTIME_ENV,
                    _system_config=SYSTEM_CONFIG, **options)
    except (TypeError, ValueError):  # options Ray refuses: distnet's own mistake, to be seen as it is
        raise
    except Exception as e:  # Ray says "timed out during startup" whatever stopped its processes
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        # Ray's object store takes 30 % of the memory unless told otherwise, in one file.
        store = 0.3 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        cause = "" if limit == resource.RLIM_INFINITY or limit >= store else (
            f"; this shell limits the size of the files a process writes to {limit} bytes (ulimit -f), and Ray "
            f"keeps its object store in one file of several GB, which that limit kills it for: raise it (ulimit -f "
            f"unlimited)")
        raise RayFailedError(f"Ray did not start on this machine ({first_line(e)}){cause}; or train in this "
                             f"process (--workers 0, or a Trainer in Python)") from e


def _init_whole(**options) -> None:
    """``ray.init(**options)`` with Ctrl-C and SIGTERM held until it returns (a second one goes
    through at once: the way out of a start that hangs), then Ray shut down again if one came.

    One that cuts ``ray.init`` short while it waits for the processes it started (most of its few
    seconds) leaves Ray's dashboard and runtime-env agents running for a minute or more after the
    process ended: ``ray.init`` had not yet recorded its node, so neither ``ray.shutdown`` nor Ray's
    exit handler stops it."""
    ray_sigterm: list[Callable] = []
    try:
        with interruptions_held(), _ray_sigterm_handler_deferred(ray_sigterm):
            ray.init(**options)
    except BaseException:
        if ray.is_initialized():  # (the held signal, delivered): Ray is up, and goes whole
            with interruptions_held():
                ray.shutdown()
        raise
    if ray_sigterm:  # where ray.init would have left it: the caller's to keep or replace (sigterm_handler_kept)
        ray._private.utils.set_sigterm_handler(ray_sigterm[-1])


@contextmanager
def _ray_sigterm_handler_deferred(handlers: list[Callable]) -> Iterator[None]:
    """The SIGTERM handler that ``ray.init`` sets as it begins (one that exits the process from
    wherever it stands) put in ``handlers`` instead of set: set, it would cut ``ray.init`` short
    past :func:`interruptions_held`."""
    utils = getattr(getattr(ray, "_private", None), "utils", None)
    original = getattr(utils, "set_sigterm_handler", None)
    if original is None:  # a Ray that sets it otherwise: as it does
        yield
        return
    utils.set_sigterm_handler = handlers.append
    try:
        yield
    finally:
        utils.set_sigterm_handler = original


def skip_pyarrow() -> None:
    """Make ``import pyarrow`` fail in this process (Ray then skips its Arrow serializers)."""
    sys.modules.setdefault("pyarrow", None)
