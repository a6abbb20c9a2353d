"""Ray cluster addresses: their form, whether anything answers at one, and joining the cluster
there with errors that say what to do.

``ray.init(address="HOST:PORT")`` on an address where nothing answers does not fail: Ray 2.60
logs "Failed to connect to GCS" every few seconds and keeps trying (for more than 5 minutes when
we measured), and where something else answers (the dashboard's port, say) it waits for about 10
minutes inside Ray's C++ code, deaf to Ctrl-C; where another gRPC server answers (a raylet's or a
Ray agent's port) it tries 20 times, a second apart. So distnet first opens a plain TCP connection
with a timeout, checks that what answers speaks HTTP/2, as a GCS (a gRPC server) does, and that
the server knows a GCS's call, and fails at once otherwise with a message that says what to check
(after the timeout, 10 s in all, where what answers stays silent). A cluster that answers but
refuses this machine's token makes ray.init fail after about 20 s with only "Failed to connect
to Ray cluster" (the refusal is only in the exception's cause); distnet says instead that the
token was refused, which token this process offered, and how to give it the cluster's (see
:func:`token_problem`, which ``distnet submit`` uses too). Ray's native code also writes a warning
to stderr for each of its 20 attempts, which no setting silences (RAY_BACKEND_LOG_LEVEL does not
reach them); so what it writes there while joining is held back, and shown after the join unless
the join failed on the token, which the one error message then says. (Ray is imported only to join: the
command line checks the form of ``--address`` while parsing.) The Jobs API's address
(``http://HOST:PORT``, for ``distnet submit``) gets a check of its own: Ray's job client sends
its requests without a timeout, and waits without end where a server accepts the connection and
says nothing.

Ray 2.60 runs a driver only on a node of its cluster: ``ray.init(address="HOST:PORT")`` looks among
this machine's processes for a raylet of that cluster and, finding none, keeps looking for 60 s,
then fails with "Failed to connect to Ray cluster at ..." (the reason, "No node info found
matching attributes", is only in the exception's cause). So where no Ray node runs on this machine
at all, distnet says at once that it is not a node of the cluster and how to train on it instead;
where only another cluster's nodes run here, it says the same once Ray gives up.
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ClusterUnreachableError, ConfigError

CONNECT_TIMEOUT = 10.0
# Addresses Ray resolves itself: a running local cluster, or a new local instance.
RAY_RESOLVED = ("auto", "local")


# The start of an HTTP/2 connection: the client's preface and an empty SETTINGS frame, which a
# gRPC server answers with a SETTINGS frame of its own (the byte after a frame's length is its type).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS = 0x04
# How a web server answers that preface: with a status line, or (an HTTP/1.0 server such as
# Python's http.server, refusing the version) with its error page alone.
_WEB_ANSWERS = (b"HTTP/", b"<")
# A call every GCS serves, the first Ray's own client makes when it joins (its 20 attempts are of
# this call); another gRPC server answers it UNIMPLEMENTED.
_GCS_CALL = "/ray.rpc.NodeInfoGcsService/GetClusterId"
# How Ray's reason begins where it found no node of the cluster on this machine to join through.
_NO_NODE_HERE = "No node info found matching attributes"


class WebServerAddressError(ClusterUnreachableError):
    """A web server answers at the address given for a cluster's GCS (the dashboard's port, say)."""


def _give_the_gcs(host: str) -> str:
    return f"give the GCS address that 'ray start --head' printed (by default {host}:6379)"


def parse_address(address: str) -> tuple[str, int] | None:
    """(host, port) of "HOST:PORT"; None for "auto" and "local"; ConfigError for anything else."""
    if address in RAY_RESOLVED:
        return None
    if address.startswith(("http://", "https://")):
        host = urlsplit(address).hostname or "HOST"
        raise ConfigError(f"cluster address {address!r} is a web address, as the dashboard's (which "
                          f"`distnet submit --address` takes); to join a cluster, {_give_the_gcs(host)}")
    if address.startswith("ray://"):
        # Through Ray Client the driver would write the run's files on this machine and the stop
        # evaluator the best network on the cluster's head: a run split over two file systems.
        host = urlsplit(address).hostname or "HOST"
        raise ConfigError(f"cluster address {address!r} is a Ray Client address, which distnet does not "
                          f"use: train on a node of the cluster ({_give_the_gcs(host)}), or submit the "
                          f"training to it as a job (distnet submit --address http://{host}:8265)")
    host, _, port = address.rpartition(":")
    if host and port.isascii() and port.isdigit() and not 0 < int(port) < 65536:
        raise ConfigError(f"cluster address {address!r} has port {int(port)}, where ports go from 1 to 65535 (Ray's "
                          f"default is 6379)")
    if not host or not (port.isascii() and port.isdigit()):  # ("²" is a digit, which int() refuses)
        raise ConfigError(f"cluster address {address!r} is not 'auto', 'local' or HOST:PORT (e.g. 10.0.0.5:6379)")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT, otherwise: str = "") -> None:
    """ClusterUnreachableError, within ``timeout`` seconds, unless a Ray cluster's GCS (a gRPC
    server that knows a GCS's call) answers at ``address`` (see :func:`parse_address`; "auto" and
    "local" are left to Ray); WebServerAddressError where a web server answers. ``otherwise``: what
    else the caller takes, said when nothing answers at all. With RAY_USE_TLS on (as Ray reads it),
    a TCP connection is all that is checked."""
    target = parse_address(address)
    if target is None:
        return
    tls = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")
    # One deadline for connecting and for both answers, so that the whole check keeps to ``timeout``.
    deadline = time.monotonic() + timeout
    try:
        answer = _answer_at(target, timeout, listen=not tls)
    except OSError as e:
        raise ClusterUnreachableError(
            f"cannot reach a Ray cluster at {address} ({_why_not(e, timeout)}); check the address that 'ray start "
            f"--head' printed, that the cluster is running and that its port is open to this machine"
            f"{otherwise}") from None
    what = None if answer is None else _what_answers_instead_of_a_gcs(answer, target, deadline, timeout)
    if what is None:
        return
    error = WebServerAddressError if answer.startswith(_WEB_ANSWERS) else ClusterUnreachableError
    raise error(f"{address} is not a Ray cluster's address: {what}; {_give_the_gcs(target[0])}")


def check_web_address(url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """ClusterUnreachableError, within ``timeout`` seconds, where nothing accepts a connection at
    ``url`` (http:// or https://HOST[:PORT], as the Jobs API's address), or what does stays silent
    (over https://, a TCP connection is all that is checked): Ray's job client would wait on it
    without end. A server that answers, whatever it says, is left to Ray's client, which says what
    is wrong; so is a ``url`` that the environment sends through a proxy."""
    from requests.utils import get_environ_proxies  # as Ray's job client (requests) finds a proxy

    if get_environ_proxies(url):  # a direct connection would tell nothing of the way through it
        return
    parts = urlsplit(url)
    try:
        target = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except ValueError:  # a port that is not one: Ray's client says so
        return
    if not target[0]:
        return
    try:
        answer = _answer_at(target, timeout, listen=parts.scheme == "http")
    except OSError as e:
        raise ClusterUnreachableError(f"cannot connect to {url} ({_why_not(e, timeout)})") from None
    if answer == b"":
        raise ClusterUnreachableError(f"{url}: {_silence(timeout, 'the Jobs API')}")


def _answer_at(target: tuple[str, int], timeout: float, listen: bool) -> bytes | None:
    """What the server at ``target`` answers the start of an HTTP/2 connection (see
    :func:`_first_answer`) within ``timeout`` seconds, connecting included; None where not
    ``listen``. OSError where nothing accepts a connection by then."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(target, timeout=timeout) as connection:
        return _first_answer(connection, deadline) if listen else None


def _why_not(error: OSError, timeout: float) -> str:
    """Why a connection within ``timeout`` seconds failed, in a few words."""
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s"
    return (error.strerror or str(error)).lower()  # at once: a refusal, an unknown host


def _silence(timeout: float, server: str) -> str:
    """What a server says that accepts connections but no more, where ``server`` answers at once."""
    return (f"something accepts connections there, but closed the connection or said nothing within {timeout:g} s, "
            f"where {server} answers at once")


def _what_answers_instead_of_a_gcs(answer: bytes, target: tuple[str, int], deadline: float,
                                   timeout: float) -> str | None:
    """What answers at ``target``, as its ``answer`` (see :func:`_first_answer`) tells, where it is
    not a Ray cluster's GCS; None where it is one."""
    if len(answer) > 3 and answer[3] == _SETTINGS:  # an HTTP/2 server: gRPC, but perhaps not a GCS
        if _serves_the_gcs(target, deadline):
            return None
        return ("a gRPC server answers there, but it does not serve a Ray cluster's GCS (another of Ray's "
                "ports, a raylet's or an agent's, say)")
    if answer.startswith(_WEB_ANSWERS):
        return ("a web server answers there (the dashboard's port, which `distnet submit --address` takes as "
                "http://HOST:PORT)")
    if answer:
        return "something answers there, but not as a Ray cluster's GCS does (gRPC)"
    return _silence(timeout, "a Ray cluster's GCS")


def _serves_the_gcs(target: tuple[str, int], deadline: float) -> bool:
    """Whether the gRPC server at ``target`` may be a GCS, asked by ``deadline``: False only where
    it answers a GCS's call with "no such call", as other gRPC servers do (Ray would ask them 20
    times, a second apart); anything else (a GCS refusing a call without a token, say) is left to Ray."""
    import grpc  # Ray's own dependency

    host, port = target
    with grpc.insecure_channel(f"[{host}]:{port}" if ":" in host else f"{host}:{port}") as channel:
        try:
            channel.unary_unary(_GCS_CALL)(b"", timeout=max(deadline - time.monotonic(), 1e-3))
        except grpc.RpcError as e:
            return e.code() != grpc.StatusCode.UNIMPLEMENTED
    return True


def _first_answer(connection: socket.socket, deadline: float) -> bytes:
    """What the server says to the start of an HTTP/2 connection by ``deadline`` (time.monotonic):
    its first 9 bytes at most (a frame header), fewer where it closes the connection or falls silent."""
    answer = b""
    try:
        connection.sendall(_HTTP2_PREFACE)
        while len(answer) < 9:
            connection.settimeout(max(deadline - time.monotonic(), 1e-3))
            part = connection.recv(9 - len(answer))
            if not part:
                break
            answer += part
    except OSError:  # silent, or reset: not a GCS either way
        pass
    return answer


def join_cluster(address: str) -> None:
    """Connect this process to the Ray cluster at ``address`` ("auto", "local" or HOST:PORT);
    ClusterUnreachableError, in bounded time, when nothing answers there, the cluster refuses this
    process's token, this machine is not one of its nodes (at once where no Ray node runs here), or
    Ray cannot join it for another reason."""
    import ray
    from ray.exceptions import AuthenticationError

    check_reachable(address)
    if parse_address(address) is not None and _no_ray_node_here():
        # Ray would look for one for 60 s before failing with an error that names only the address.
        raise ClusterUnreachableError(_not_a_node(address, "no Ray node runs among the processes this one can see"))
    try:
        with native_stderr_held(drop_if=_token_refused):
            ray.init(address=address, logging_level="ERROR")
    except AuthenticationError:  # token authentication on here, but no token to send
        raise ClusterUnreachableError(token_problem(f"the Ray cluster at {_named(address)}")) from None
    except ConnectionError as e:
        if _token_refused(e):
            raise ClusterUnreachableError(token_problem(f"the Ray cluster at {_named(address)}")) from None
        if _no_node_of_the_cluster_here(e):
            raise ClusterUnreachableError(_not_a_node(address, "none of the Ray nodes among the processes this one "
                                                              "can see belongs to that cluster")) from None
        if parse_address(address) is None:  # "auto": Ray looked for a cluster on this machine
            raise ClusterUnreachableError(_none_found_here(address, e)) from None
        raise ClusterUnreachableError(f"cannot join the Ray cluster at {address} ({e}); "
                                      f"{_give_the_gcs(parse_address(address)[0])}, not the dashboard's") from None


@contextlib.contextmanager
def native_stderr_held(drop_if: Callable[[BaseException], bool]) -> Iterator[None]:
    """Hold back what this process writes to its stderr (file descriptor 2, where Ray's native code
    writes) while the block runs, and write it out after; dropped instead where the block raises an
    error for which ``drop_if(error)`` is true."""
    sys.stderr.flush()
    held, saved = tempfile.TemporaryFile(), os.dup(2)
    os.dup2(held.fileno(), 2)
    dropped = False
    try:
        yield
    except BaseException as e:
        dropped = drop_if(e)
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        with held:
            if not dropped:
                held.seek(0)
                with contextlib.suppress(OSError):  # (a closed stderr: nothing to show them on)
                    while chunk := held.read(1 << 16):
                        os.write(2, chunk)


def _named(address: str) -> str:
    """``address`` as a message names the cluster: for "auto", also the HOST:PORT Ray found for it
    (RAY_ADDRESS's, or the one cluster running on this machine), which "the Ray cluster at auto"
    left to guess on a machine where several run; "auto" alone where Ray finds none, or several."""
    if address != "auto":
        return address
    from ray._private import services

    try:
        found = services.canonicalize_bootstrap_address(address)
    except Exception:  # several clusters here (ConnectionError), or an address Ray cannot read
        return address
    return f"{found} (which address 'auto' found)" if found else address


def _none_found_here(address: str, error: ConnectionError) -> str:
    """The error message for ``address`` "auto" where Ray found no cluster to join (``error``)."""
    if "Could not find any running Ray instance" not in str(error):
        return f"cannot join a Ray cluster with address {address!r} ({error}); give the cluster's HOST:PORT instead"
    return (f"no Ray cluster runs on this machine for address {address!r} to find; start one ('ray start --head', "
            f"or python cluster/local_cluster.py start), give a cluster's HOST:PORT, or leave the address out "
            f"(--address; address= in Python) to train on a Ray this run starts")


def _not_a_node(address: str, why: str) -> str:
    """The error message for a process that cannot join the Ray cluster at ``address`` (HOST:PORT)
    because this machine is not one of its nodes (``why``: what Ray finds here instead), with the
    ways to train on that cluster all the same."""
    host = (parse_address(address) or ("HEAD", 0))[0]
    return (f"this machine is not a node of the Ray cluster at {address} ({why}), and Ray runs a driver (this "
            f"process) only on a node of its cluster; run it on one of the cluster's nodes (the head node, say), make "
            f"this machine a node first (ray start --address {address}, with the cluster's token), or submit the "
            f"training as a job: distnet submit --address http://{host}:8265 (the head node's Jobs API, 8265 by "
            f"default)")


def _no_ray_node_here() -> bool:
    """Whether no Ray node (a raylet, of any cluster) runs on this machine, found as Ray finds the
    node a driver joins through: among the processes this one can see. False where this Ray has
    no such search (pyproject allows Ray before 2.60): Ray then says what it finds itself."""
    from ray._private import services

    find_node_ids = getattr(services, "find_node_ids", None)
    return find_node_ids is not None and not find_node_ids()


def _no_node_of_the_cluster_here(error: BaseException) -> bool:
    # Ray 2.60 keeps why it found no node to join through in the cause of its ConnectionError: a
    # RuntimeError raised after 60 s of looking (ray._private.services.get_node_to_connect_for_driver).
    return any(isinstance(e, RuntimeError) and str(e).startswith(_NO_NODE_HERE) for e in _causes(error))


def _causes(error: BaseException | None):
    """``error``, then the exception it was raised from or while handling, and so on."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def token_problem(cluster: str) -> str:
    """The error message for ``cluster`` (e.g. "the Ray cluster at HOST:PORT"), which uses token
    authentication, not letting this process in: which token this process offered, if any, and
    how to give it the cluster's."""
    fix = ("give this process the cluster's token ('ray get-auth-token' on the head node prints it; for a "
           "cluster of cluster/local_cluster.py, run the exports its env command prints) in RAY_AUTH_TOKEN, "
           "in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_MODE") != "token":
        return (f"{cluster} requires a token and this process sent none (RAY_AUTH_MODE is not 'token'); "
                f"export RAY_AUTH_MODE=token and {fix}")
    offered = _offered_token()
    if offered is None:
        named = os.environ.get("RAY_AUTH_TOKEN_PATH")
        why = (f"RAY_AUTH_TOKEN_PATH names {named}, which is missing or empty" if named else
               "no RAY_AUTH_TOKEN, no RAY_AUTH_TOKEN_PATH, no ~/.ray/auth_token")
        return f"this process has no token to send to {cluster} ({why}); {fix}"
    return f"{cluster} refused this process's token (the one {offered}); {fix}"


def _offered_token() -> str | None:
    # Where the token this process sends comes from, in Ray's order: the variable RAY_AUTH_TOKEN,
    # else the file RAY_AUTH_TOKEN_PATH names (Ray looks nowhere else then), else ~/.ray/auth_token.
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "in RAY_AUTH_TOKEN, which wins over any token file"
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token").expanduser()
    return f"in {path}" if path.is_file() and path.stat().st_size > 0 else None


def _token_refused(error: BaseException) -> bool:
    from ray.exceptions import AuthenticationError

    # Ray 2.60 keeps the refusal in the cause of its ConnectionError: a RuntimeError whose text
    # holds the traceback of the AuthenticationError (InvalidAuthToken) of its last attempt.
    return any(isinstance(e, AuthenticationError) or "InvalidAuthToken" in str(e) for e in _causes(error))
