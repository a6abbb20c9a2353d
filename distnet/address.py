"""Checking a Ray cluster's address before joining it.

``ray.init(address="HOST:PORT")`` on an address where nothing answers does not fail: Ray 2.60
logs "Failed to connect to GCS" every few seconds and keeps trying (for more than 5 minutes when
we measured). So distnet first opens a plain TCP connection with a timeout and, when none is
accepted, fails at once with a message that says what to check.
"""
from __future__ import annotations

import socket

from ..errors import ClusterUnreachableError, ConfigError

CONNECT_TIMEOUT = 10.0


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """ClusterUnreachableError, within ``timeout`` seconds, unless something accepts TCP
    connections at ``address`` ("HOST:PORT" or "ray://HOST:PORT"). "auto" and "local" are left
    to Ray, which finds those clusters itself."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"cluster address {address!r} is not 'auto' or HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        reason = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e)).lower()
        raise ClusterUnreachableError(
            f"cannot reach a Ray cluster at {address} ({reason} within {timeout:g} s); check the address "
            f"that 'ray start --head' printed, that the cluster is running and that its port is open "
            f"to this machine") from None
