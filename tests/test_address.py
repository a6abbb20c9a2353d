"""What distnet says when a Ray cluster with token authentication does not let it in: which token
it offered (in Ray's order: RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, ~/.ray/auth_token)
and how to give it the cluster's. The refusals themselves, by a real cluster, are in test_cluster.py."""
import pytest

from distnet.address import token_problem

CLUSTER = "the Ray cluster at 10.0.0.5:6379"
FIX = ("give this process the cluster's token ('ray get-auth-token' on the head node prints it) in "
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
