"""What distnet says when a Ray cluster with token authentication does not let it in: which token
it offered (in Ray's order: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, ~/.ray/auth_token)
and how to give it the cluster's; and when what answers at an address is not a cluster's GCS. The
refusals themselves, by a real cluster, are in test_cluster.py."""
import contextlib
import re
import socket
import threading

import pytest

from distnet.address import check_reachable, parse_address, token_problem
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


# A gRPC server's reply to the HTTP/2 preface starts with a SETTINGS frame (type 4), as a GCS's does.
GCS_SETTINGS = b"\x00\x00\x18\x04\x00\x00\x00\x00\x00" + bytes(24)


def test_a_grpc_server_passes_for_a_cluster():
    check_reachable(server_that_answers(GCS_SETTINGS))


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


@pytest.mark.parametrize("setting, tls", [("1", True), ("True", True), ("0", False), ("no", False), ("yes", False)])
def test_with_tls_on_as_ray_reads_it_only_the_connection_is_checked(monkeypatch, setting, tls):
    monkeypatch.setenv("RAY_USE_TLS", setting)  # the probe speaks plain HTTP/2, which a TLS server would refuse
    address = server_that_answers(None)
    if tls:
        check_reachable(address, timeout=1)
    else:  # Ray connects without TLS: so does the probe
        with pytest.raises(ClusterUnreachableError, match="said nothing within 1 s"):
            check_reachable(address, timeout=1)
