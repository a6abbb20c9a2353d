"""Ray cluster addresses: their form, and whether anything answers at one before Ray is asked.

``ray.init(address="HOST:PORT")`` on an address where nothing answers does not fail: Ray 2.60
logs "Failed to connect to GCS" every few seconds and keeps trying (for more than 5 minutes when
we measured). So distnet first opens a plain TCP connection with a timeout and, when none is
accepted, fails at once with a message that says what to check. (No Ray import here: the
command line checks the form of ``--address`` while parsing.)
"""
from __future__ import annotations

import socket

from .errors import ClusterUnreachableError, ConfigError

CONNECT_TIMEOUT = 10.0
# Addresses Ray resolves itself: a running local cluster, or a new local instance.
RAY_RESOLVED = ("auto", "local")


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of "HOST:PORT" or "ray://HOST:PORT"; None for "auto" and "local"; ConfigError
    for anything else."""
    if address in RAY_RESOLVED:
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"cluster address {address!r} is not 'auto' or HOST:PORT (e.g. 10.0.0.5:6379)")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """ClusterUnreachableError, within ``timeout`` seconds, unless something accepts TCP
    connections at ``address`` (see :func:`parse_address`; "auto" and "local" are left to Ray)."""
    target = parse_address(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as e:
        reason = "no answer" if isinstance(e, TimeoutError) else (e.strerror or str(e)).lower()
        raise ClusterUnreachableError(
            f"cannot reach a Ray cluster at {address} ({reason} within {timeout:g} s); check the address "
            f"that 'ray start --head' printed, that the cluster is running and that its port is open "
            f"to this machine") from None
