"""What distnet says when a Ray cluster with token authentication does not let it in: which token
it offered (in Ray's order: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, ~/.ray/auth_token)
and how to give it the cluster's; and when what answers at an address is not a cluster's GCS. The
refusals themselves, by a real cluster, are in test_cluster.py."""
import contextlib
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

import pytest

from distnet.address import (WebServerAddressError, check_reachable, check_web_address, join_cluster, parse_address,
                             token_problem)
from distnet.errors import ClusterUnreachableError, ConfigError

CLUSTER = "the Ray cluster at 10.0.0.5:6379"
FIX = ("give this process the cluster's token ('ray get-auth-token' on the head node prints it; for a cluster of "
       "cluster/local_cluster.py, run the exports its env command prints) in "
       "RAY_AUTH_TOKEN, in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token")


@pytest.fixture
def home(monkeypatch, tmp_path):
    """Token authentication on, no token in the environment, and a home without ~/.ray/auth_token."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_a_token_in_the_environment_is_named_as_the_refused_one_even_beside_a_token_file(home, monkeypatch):
    token = home / "token"
    token.write_text("abc")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "wrong")
    assert token_problem(CLUSTER) == (f"{CLUSTER} refused this process's token (the one in RAY_AUTH_TOKEN, which "
                                      f"wins over any token file); {FIX}")


def test_the_token_file_named_by_ray_auth_token_path_is_named_as_the_refused_one(home, monkeypatch):
    token = home / "token"
    token.write_text("abc")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    assert token_problem(CLUSTER) == f"{CLUSTER} refused this process's token (the one in {token}); {FIX}"


def test_the_default_token_file_is_named_when_nothing_else_is_set(home):
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("abc")
    assert token_problem(CLUSTER) == (f"{CLUSTER} refused this process's token (the one in "
                                      f"{home / '.ray' / 'auth_token'}); {FIX}")


def test_no_token_to_send_is_said_as_such(home):
    assert token_problem(CLUSTER) == (f"this process has no token to send to {CLUSTER} (no RAY_AUTH_TOKEN, no "
                                      f"RAY_AUTH_TOKEN_PATH, no ~/.ray/auth_token); {FIX}")


@pytest.mark.parametrize("content", [None, ""])
def test_a_token_path_to_a_missing_or_empty_file_is_named(home, monkeypatch, content):
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("abc")  # Ray does not fall back to it
    token = home / "token"
    if content is not None:
        token.write_text(content)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    assert token_problem(CLUSTER) == (f"this process has no token to send to {CLUSTER} (RAY_AUTH_TOKEN_PATH names "
                                      f"{token}, which is missing or empty); {FIX}")


def test_without_token_mode_the_message_says_to_turn_it_on(home, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert token_problem(CLUSTER) == (f"{CLUSTER} requires a token and this process sent none (RAY_AUTH_MODE is "
                                      f"not 'token'); export RAY_AUTH_MODE=token and {FIX}")


GIVE_THE_GCS = "give the GCS address that 'ray start --head' printed (by default 127.0.0.1:6379)"


def test_a_web_or_ray_client_address_is_refused_with_the_addresses_to_give_instead():
    with pytest.raises(ConfigError, match=f"is a web address, as the dashboard's .*; to join a cluster, "
                                          f"{re.escape(GIVE_THE_GCS.replace('127.0.0.1', '10.0.0.5'))}"):
        parse_address("http://10.0.0.5:8265")
    with pytest.raises(ConfigError, match=re.escape(
            "cluster address 'ray://10.0.0.5:10001' is a Ray Client address, which distnet does not use: train "
            f"on a node of the cluster ({GIVE_THE_GCS.replace('127.0.0.1', '10.0.0.5')}), or submit the training to "
            "it as a job (distnet submit --address http://10.0.0.5:8265)")):
        parse_address("ray://10.0.0.5:10001")


def server_that_answers(answer: bytes | None):
    """A local TCP server for one connection, which reads the client's first bytes and then sends
    ``answer`` (None: says nothing until the client goes). Its address."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        with listener, listener.accept()[0] as connection:
            connection.recv(64)
            if answer is not None:
                connection.sendall(answer)
            with contextlib.suppress(ConnectionResetError):  # the client leaves unread bytes behind
                connection.recv(64)  # until the client closes

    threading.Thread(target=serve, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}"


@contextlib.contextmanager
def silent_server():
    """A local TCP server that accepts every connection and then says nothing, reads nothing and
    closes nothing until it ends; its address."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept():
        with contextlib.suppress(OSError):  # the listener shut down
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for connection in accepted:
            connection.close()


@contextlib.contextmanager
def grpc_server(*services):
    """A real gRPC server on a free local port with ``services`` (generic handlers), as a GCS or
    another of Ray's gRPC servers; its address."""
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=services)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def gcs_service(answer):
    """The call a GCS serves, which check_reachable makes: ``answer(context)`` answers it."""
    import grpc

    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: answer(context))
    return grpc.method_handlers_generic_handler("ray.rpc.NodeInfoGcsService", {"GetClusterId": handler})


def refuse_without_a_token(context):
    import grpc

    context.abort(grpc.StatusCode.UNAUTHENTICATED, "InvalidAuthToken: Authentication token is missing or incorrect")


@pytest.mark.parametrize("answer", [lambda context: b"", refuse_without_a_token])
def test_a_grpc_server_that_serves_the_gcs_passes_for_a_cluster(answer):
    """A GCS answers the call, or with token authentication refuses it (check_reachable sends no token)."""
    with grpc_server(gcs_service(answer)) as address:
        check_reachable(address)


RAY_OTHER_GRPC = ("a gRPC server answers there, but it does not serve a Ray cluster's GCS (another of Ray's ports, a "
                  "raylet's or an agent's, say)")


def test_a_grpc_server_that_does_not_serve_the_gcs_is_refused_at_once():
    """Such as a raylet's port: passed before, and Ray then asked it 20 times, a second apart."""
    with grpc_server() as address:
        started = time.monotonic()
        with pytest.raises(ClusterUnreachableError) as refused:
            check_reachable(address)
        assert time.monotonic() - started < 5  # milliseconds, but for a loaded machine
    assert str(refused.value) == f"{address} is not a Ray cluster's address: {RAY_OTHER_GRPC}; {GIVE_THE_GCS}"


@pytest.mark.slow
def test_train_refuses_a_grpc_server_that_is_not_a_gcs_in_seconds(tmp_path):
    """The whole command: 21-22 s before (Ray's 20 attempts), with a message that blamed the dashboard."""
    with grpc_server() as address:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "distnet", "train", "--address", address, "--workers", "1",
                               "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
        seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (f"distnet: error: {address} is not a Ray cluster's address: "
                                            f"{RAY_OTHER_GRPC}; {GIVE_THE_GCS}")
    assert seconds < 10, seconds  # the data loads first: 1.6 s in all on the development machine
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("answer, what", [
    (b"HTTP/1.0 400 Bad Request\r\n\r\n", "a web server answers there (the dashboard's port, which `distnet "
                                            "submit --address` takes as http://HOST:PORT)"),
    (b"SSH-2.0-OpenSSH_9.6\r\n", "something answers there, but not as a Ray cluster's GCS does (gRPC)"),
    (None, "something accepts connections there, but closed the connection or said nothing within 1 s, where a "
           "Ray cluster's GCS answers at once"),
])
def test_what_answers_but_is_not_a_clusters_gcs_is_refused_with_what_it_is(answer, what):
    address = server_that_answers(answer)
    with pytest.raises(ClusterUnreachableError) as refused:  # an answer comes in ms; time for a loaded machine
        check_reachable(address, timeout=1 if answer is None else 5)
    assert str(refused.value) == f"{address} is not a Ray cluster's address: {what}; {GIVE_THE_GCS}"


class NotFound(http.server.BaseHTTPRequestHandler):
    """Python's web server, answering every request with 404 Not Found."""

    def do_GET(self):
        self.send_error(404)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def web_server():
    """Python's web server on a free local port, in a thread, answering 404 to every request; its
    address (HOST:PORT)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_web_server_that_answers_with_its_error_page_alone_is_named_a_web_server():
    """Python's http.server, as an HTTP/1.0 server, answers the HTTP/2 preface's request line with
    its error page and no status line; it was "something ..., but not as a Ray cluster's GCS does"."""
    with web_server() as address, pytest.raises(WebServerAddressError) as refused:
        check_reachable(address, timeout=5)
    assert str(refused.value) == (f"{address} is not a Ray cluster's address: a web server answers there (the "
                                  f"dashboard's port, which `distnet submit --address` takes as http://HOST:PORT); "
                                  f"{GIVE_THE_GCS}")


def test_a_jobs_api_address_where_something_accepts_connections_but_says_nothing_is_refused(monkeypatch):
    """Ray's job client waits on it without end; through a proxy, a direct connection tells nothing."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with silent_server() as address:
        url = f"http://{address}"
        with pytest.raises(ClusterUnreachableError) as refused:
            check_web_address(url, timeout=1)
        assert str(refused.value) == (f"{url}: something accepts connections there, but closed the connection or "
                                      f"said nothing within 1 s, where the Jobs API answers at once")
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
        check_web_address(url, timeout=1)


def test_a_jobs_api_address_where_a_server_answers_is_left_to_ray_s_client():
    """Whatever it says: Ray's client says what is wrong (a 404 is not the Jobs API, say)."""
    with web_server() as address:
        check_web_address(f"http://{address}", timeout=5)


@pytest.mark.parametrize("setting, tls", [("1", True), ("True", True), ("0", False), ("no", False), ("yes", False)])
def test_with_tls_on_as_ray_reads_it_only_the_connection_is_checked(monkeypatch, setting, tls):
    monkeypatch.setenv("RAY_USE_TLS", setting)  # the probe speaks plain HTTP/2, which a TLS server would refuse
    address = server_that_answers(None)
    if tls:
        check_reachable(address, timeout=1)
    else:  # Ray connects without TLS: so does the probe
        with pytest.raises(ClusterUnreachableError, match="said nothing within 1 s"):
            check_reachable(address, timeout=1)


def ray_s_error_for_no_node_of_the_cluster_here(address: str) -> ConnectionError:
    """What ray.init (Ray 2.60) raises where none of the Ray nodes on this machine belongs to the
    cluster at ``address``: its ConnectionError, from the RuntimeError of Ray's own search, which
    gives up here at once rather than after its 60 s."""
    from ray._private.services import get_node_to_connect_for_driver

    try:
        try:
            get_node_to_connect_for_driver(None, timeout_seconds=0)
        except RuntimeError as e:  # as ray.init passes it on
            raise ConnectionError(f"Failed to connect to Ray cluster at {address}") from e
    except ConnectionError as e:
        return e
    raise AssertionError("Ray found a node to join through")


@pytest.mark.parametrize("nodes_here, why", [
    (set(), "no Ray node runs among the processes this one can see"),  # at once: Ray would look for 60 s
    ({"ab" * 28}, "none of the Ray nodes among the processes this one can see belongs to that cluster"),
])
def test_joining_a_cluster_from_a_machine_that_is_not_its_node_is_said_so(monkeypatch, nodes_here, why):
    """Ray's error named only the address, which distnet blamed (test_cluster.py has both cases on
    a real cluster, from a PID namespace of its own)."""
    import ray
    import ray._private.services

    def init(address, **options):
        assert nodes_here, "ray.init was called on a machine where no Ray node runs"
        raise ray_s_error_for_no_node_of_the_cluster_here(address)

    monkeypatch.setattr(ray._private.services, "find_node_ids", lambda: nodes_here)
    monkeypatch.setattr(ray, "init", init)
    with grpc_server(gcs_service(lambda context: b"")) as address, pytest.raises(ClusterUnreachableError) as refused:
        join_cluster(address)
    assert str(refused.value).startswith(f"this machine is not a node of the Ray cluster at {address} ({why}), and "
                                         f"Ray runs a driver (this process) only on a node of its cluster; run it on "
                                         f"one of the cluster's nodes")


@pytest.mark.parametrize("found, named", [("10.0.0.5:6379", "10.0.0.5:6379 (which address 'auto' found)"),
                                           (None, "auto")])
def test_a_token_refused_for_auto_names_the_cluster_auto_found(monkeypatch, found, named):
    """"the Ray cluster at auto refused this process's token", on a machine where several clusters
    run, left the user to guess which of them refused it."""
    import ray
    import ray._private.services as services
    from ray.exceptions import AuthenticationError

    def init(address, **options):
        raise AuthenticationError("no token")

    monkeypatch.setattr(services, "canonicalize_bootstrap_address", lambda address, temp_dir=None: found)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(ClusterUnreachableError) as refused:
        join_cluster("auto")
    assert str(refused.value).startswith(f"the Ray cluster at {named} requires a token and this process sent none "
                                         f"(RAY_AUTH_MODE is not 'token')")


def test_auto_where_no_cluster_runs_here_says_so_and_what_to_do(monkeypatch):
    """Ray's own search, finding nothing: the message ended "not the dashboard's" before, of an
    address no one gave."""
    import ray
    import ray._private.services as services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])
    monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir: None)
    monkeypatch.setattr(ray, "init", lambda address, **options: services.canonicalize_bootstrap_address_or_die(address))
    with pytest.raises(ClusterUnreachableError) as refused:
        join_cluster("auto")
    assert str(refused.value) == ("no Ray cluster runs on this machine for address 'auto' to find; start one ('ray "
                                  "start --head', or python cluster/local_cluster.py start), give a cluster's "
                                  "HOST:PORT, or leave the address out (--address; address= in Python) to train on "
                                  "a Ray this run starts")


def _native_write(text: str) -> None:
    """As Ray's native code writes: to file descriptor 2, past sys.stderr."""
    os.write(2, text.encode())


def test_what_is_written_to_stderr_while_joining_comes_after_the_join_or_goes_with_a_refused_token(capfd):
    from distnet.address import native_stderr_held

    with native_stderr_held(drop_if=lambda error: True):
        _native_write("a note of Ray's\n")
        assert capfd.readouterr().err == ""  # held back while the join lasts
    assert capfd.readouterr().err == "a note of Ray's\n"
    with pytest.raises(ConnectionError), native_stderr_held(drop_if=lambda error: "token" in str(error)):
        _native_write("a warning of each attempt\n" * 20)
        raise ConnectionError("the token was refused")
    assert capfd.readouterr().err == ""  # the error says it
    with pytest.raises(ConnectionError), native_stderr_held(drop_if=lambda error: "token" in str(error)):
        _native_write("why Ray failed\n")
        raise ConnectionError("something else")
    assert capfd.readouterr().err == "why Ray failed\n"
