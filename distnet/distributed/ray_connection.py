"""How a DistributedTrainer's fit reaches Ray: the running Ray of this process, the cluster that
``address`` (or ``RAY_ADDRESS``) names, or a Ray of its own started for the fit and shut down
after it (:class:`RayConnection`).

A process has one Ray: while one trainer's fit runs on a Ray it started, another trainer of the
process is refused rather than have the first shut that Ray down under it.
"""
from __future__ import annotations

import logging
import os
import threading

import ray

from ..address import join_cluster
from ..errors import ConfigError, DistnetError
from ..signals import interruptions_held, sigterm_handler_kept
from . import local_ray

__all__ = ["RayConnection"]

# The command line shows these notes on stderr: Ray takes seconds to start, which should not pass in silence.
_log = logging.getLogger(__name__)


class _RayOfThisProcess:
    """The connection that started the Ray of this process, while its trainer's fit lasts."""

    lock = threading.Lock()
    started_by: "RayConnection | None" = None


class RayConnection:
    """One trainer's hold on Ray: :meth:`connect` as its fit starts, :meth:`close` as it ends,
    which shuts down a Ray that :meth:`connect` started (``started``). ``embedded``: that Ray was
    started on this machine for this trainer, and cannot grow."""

    def __init__(self) -> None:
        self.started = False
        self.embedded = False  # a Ray started here for this trainer, which cannot grow

    def connect(self, address: str | None) -> None:
        """Use the running Ray, join ``address``'s cluster (None: ``RAY_ADDRESS``'s, if set) or
        start a Ray of this process's own (None without ``RAY_ADDRESS``, or ``"local"``)."""
        with _RayOfThisProcess.lock:  # two trainers' fits in threads: one starts Ray, the other is told
            if _RayOfThisProcess.started_by not in (None, self):
                raise ConfigError("another DistributedTrainer of this process is training on the Ray it started, "
                                  "and shuts it down when its fit ends (a process has one Ray); fit one after the "
                                  "other, or call ray.init() first: trainers share a Ray they did not start")
            self._connect_unshared(address)
            if self.started:
                _RayOfThisProcess.started_by = self

    def _connect_unshared(self, given: str | None) -> None:
        if ray.is_initialized():
            running = ray.get_runtime_context().gcs_address
            if given not in (None, "auto", running):
                raise ConfigError(f"this process is already connected to the Ray cluster at {running}, so "
                                  f"address={given!r} cannot be joined; call ray.shutdown() first, or pass "
                                  f"address=None to use the running Ray")
            return
        # Without an address, RAY_ADDRESS names the cluster to join (as for Ray itself: a job's
        # driver has it, and so has a shell that ran `local_cluster.py env`); else, or when told
        # "local", a Ray of our own.
        address = given or os.environ.get("RAY_ADDRESS") or None
        with sigterm_handler_kept():
            if address in (None, "local"):
                _log.info("starting Ray on this machine")
                local_ray.start(configure_logging=True)
                self.embedded = True
            else:
                _log.info("joining the Ray cluster at %s%s", address, "" if given else " (RAY_ADDRESS)")
                try:
                    join_cluster(address)
                except DistnetError as e:
                    if given:
                        raise
                    raise type(e)(f"{e} (the address is RAY_ADDRESS's; to train on a Ray of this process's own "
                                  f"instead, unset RAY_ADDRESS or give the address 'local')") from None
        self.started = True

    def close(self) -> None:
        """Shut down the Ray that :meth:`connect` started, if it did (a Ray this trainer did not
        start keeps running)."""
        if self.started:
            with _RayOfThisProcess.lock, interruptions_held():
                try:
                    ray.shutdown()
                finally:
                    self.started = self.embedded = False
                    _RayOfThisProcess.started_by = None
