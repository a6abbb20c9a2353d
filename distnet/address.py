"""Ray cluster addresses: their form, whether anything answers at one, and joining the cluster
there with errors that say what to do.

``ray.init(address="HOST:PORT")`` on an address where nothing answers does not fail: Ray 2.60
logs "Failed to connect to GCS" every few seconds and keeps trying (for more than 5 minutes when
we measured). So distnet first opens a plain TCP connection with a timeout and, when none is
accepted, fails at once with a message that says what to check. A cluster that answers but
refuses this machine's token makes ray.init fail after about 20 s with only "Failed to connect
to Ray cluster"; distnet adds how to give it the token. (Ray is imported only to join: the command
line checks the form of ``--address`` while parsing.)
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


def join_cluster(address: str) -> None:
    """Connect this process to the Ray cluster at ``address`` ("auto", "local" or HOST:PORT);
    ClusterUnreachableError, in bounded time, when nothing answers there or Ray cannot join it."""
    import ray

    check_reachable(address)
    try:
        ray.init(address=address, logging_level="ERROR")
    except ConnectionError as e:
        raise ClusterUnreachableError(
            f"cannot join the Ray cluster at {address} ({e}); if the cluster uses token authentication "
            f"(RAY_AUTH_MODE=token), this machine needs the cluster's token: export RAY_AUTH_MODE=token "
            f"and RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) before running distnet") from None
