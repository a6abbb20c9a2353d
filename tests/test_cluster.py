"""Training as a job on a real multi-node Ray cluster: a head and a worker node on 127.0.0.1 with
token authentication, started by cluster/local_cluster.py; jobs submitted with `distnet submit`
and with `ray job submit`. Also the cluster-launcher config and how submit builds its job."""
import asyncio
import json
import os
import re
import runpy
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from distnet import Network
from distnet.cli import build_parser
from distnet.commands.submit import _resume_command, job_request
from distnet.errors import ConfigError
from distnet.rundir import RunDir
from test_address import silent_server, web_server

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "cluster" / "local_cluster.py"
# The seed preset reaches a test error below 5 % after 3 epochs with 2 workers.
TRAIN = ["--workers", "2", "--epochs", "3", "--eval-every", "1", "--quiet"]


@dataclass
class Cluster:
    folder: Path
    dashboard: str
    env: dict  # what a client of the cluster needs: token authentication and the addresses


# What a stand-in distnet says where it is imported: from the folder the cluster's Ray was started in.
STAND_IN = "the stand-in distnet in the folder the cluster's nodes were started in was imported"


def local_cluster(worker_nodes: int):
    """A head and ``worker_nodes`` worker nodes, one CPU each, from cluster/local_cluster.py;
    always stopped. Their Ray is started in a folder that holds a stand-in distnet package, as a
    head started where a distnet checkout lies: a job must import the distnet it was given, never
    the one in the folder its command runs in (Ray's), nor may its actors."""
    folder = Path(tempfile.mkdtemp(prefix="dnc-", dir="/tmp"))  # short: Ray's socket paths
    started_in = folder / "started-in"
    (started_in / "distnet").mkdir(parents=True)
    (started_in / "distnet" / "__init__.py").write_text(f"raise ImportError({STAND_IN!r})\n")
    base = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_ADDRESS")}
    # As from a virtual environment that is not activated: the cluster must still run jobs with
    # this Python (which has distnet), not whichever python comes first on PATH.
    here = str(Path(sys.executable).parent)
    base["PATH"] = os.pathsep.join(d for d in base.get("PATH", "").split(os.pathsep) if d != here)
    try:
        subprocess.run([sys.executable, SCRIPT, "start", "--dir", folder, "--workers", str(worker_nodes),
                        "--cpus", "1"], env=base, cwd=started_in, check=True, timeout=900)
        exports = subprocess.run([sys.executable, SCRIPT, "env", "--dir", folder], env=base, check=True,
                                 capture_output=True, text=True).stdout
        env = {**base, **dict(line.removeprefix("export ").split("=", 1) for line in exports.splitlines())}
        yield Cluster(folder, env["RAY_API_SERVER_ADDRESS"], env)
    finally:
        if (folder / "cluster.json").exists():
            subprocess.run([sys.executable, SCRIPT, "stop", "--dir", folder], env=base, timeout=300)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    """One head and one worker node for the whole module."""
    yield from local_cluster(1)


def job_info(cluster, job_id, env=None) -> dict:
    """The job's status, runtime environment and exit code, asked of the Jobs API from a fresh
    process (Ray caches the first token a process loads)."""
    script = ("import json, sys; from ray.job_submission import JobSubmissionClient as C; "
              "i = C(sys.argv[1]).get_job_info(sys.argv[2]); "
              "print(json.dumps({'status': i.status.value, 'runtime_env': i.runtime_env, "
              "'exit_code': i.driver_exit_code}))")
    done = subprocess.run([sys.executable, "-c", script, cluster.dashboard, job_id], env=env or cluster.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def assert_trained_on_two_nodes(run: Path, mnist):
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_error"] < 0.05
    best = Network.load(run / "best.npz")
    assert best.error_rate(mnist.test.images, mnist.test.labels) == pytest.approx(summary["test_error"])
    nodes = {worker["node_id"] for worker in summary["placement"]}
    assert len(summary["placement"]) == 2 and len(nodes) == 2


@pytest.mark.slow
def test_distnet_submit_runs_the_training_as_a_job_on_two_nodes(cluster, mnist):
    """With the submitted distnet, in the job's driver and its actors, where the head node's Ray
    was started in a folder that holds another (a stand-in: the job failed importing it before)."""
    run = cluster.folder / "runs" / "submitted"
    env = {**cluster.env, "DISTNET_DATA_DIR": os.environ["DISTNET_DATA_DIR"]}
    done = subprocess.run([sys.executable, "-m", "distnet", "submit", "--job-id", "distnet-submit-test",
                           "--run-dir", str(run), *TRAIN], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "test error" in done.stdout  # the job's output, followed to the end
    assert "INFO" not in done.stderr  # Ray's client does not narrate the upload of the package
    assert (f"environment passed to the job: DISTNET_DATA_DIR={env['DISTNET_DATA_DIR']} (from this shell's "
            f"environment: the job looks there on the head node") in done.stderr  # passed on unsaid before
    info = job_info(cluster, "distnet-submit-test")
    assert info["status"] == "SUCCEEDED" and info["exit_code"] == 0
    assert len(info["runtime_env"]["py_modules"]) == 1  # the project travelled with the job
    assert info["runtime_env"]["env_vars"]["DISTNET_DATA_DIR"] == os.environ["DISTNET_DATA_DIR"]
    assert_trained_on_two_nodes(run, mnist)


@pytest.mark.slow
def test_ray_job_submit_runs_distnet_train_on_two_nodes(cluster, mnist):
    """As cluster/README.md gives the command: in the root folder, since Ray puts the folder the
    job's command runs in (the head node's, a stand-in distnet's here) first on every actor's path
    (without the cd, the actors failed to import the stand-in)."""
    run = cluster.folder / "runs" / "ray-submitted"
    runtime_env = {"py_modules": [str(REPO / "distnet")],
                   "env_vars": {"DISTNET_DATA_DIR": os.environ["DISTNET_DATA_DIR"]}}
    ray = str(Path(sys.executable).parent / "ray")  # this environment's, as from an unactivated one
    train = shlex.join(["distnet", "train", "--address", "auto", "--run-dir", str(run), *TRAIN])
    done = subprocess.run([ray, "job", "submit", "--address", cluster.dashboard, "--submission-id",
                           "ray-submit-test", "--runtime-env-json", json.dumps(runtime_env), "--",
                           "bash", "-c", f"cd / && exec {train}"], env=cluster.env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert job_info(cluster, "ray-submit-test")["status"] == "SUCCEEDED"
    assert_trained_on_two_nodes(run, mnist)


@pytest.mark.slow
def test_distnet_submit_exits_with_the_status_of_a_failed_job(cluster):
    missing = cluster.folder / "no-such-run"
    done = subprocess.run([sys.executable, "-m", "distnet", "submit", "--job-id", "distnet-failing-test",
                           "--resume", str(missing)], env=cluster.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stdout + done.stderr  # distnet's own exit status for a user error
    assert f"distnet: error: {missing} does not exist" in done.stdout  # the job's, from its logs
    assert "distnet: job distnet-failing-test failed" in done.stderr
    assert job_info(cluster, "distnet-failing-test")["status"] == "FAILED"


@pytest.mark.slow
def test_a_stopped_job_is_resumed_with_the_command_submit_prints(cluster, mnist):
    run = cluster.folder / "runs" / "stopped"
    env = {**cluster.env, "DISTNET_DATA_DIR": os.environ["DISTNET_DATA_DIR"]}
    submit = subprocess.Popen([sys.executable, "-m", "distnet", "submit", "--job-id", "distnet-stopped-test",
                               "--run-dir", str(run), "--workers", "2", "--epochs", "100", "--quiet"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (run / "checkpoint.npz").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (run / "checkpoint.npz").exists(), "the job wrote no checkpoint"
        ray = str(Path(sys.executable).parent / "ray")
        subprocess.run([ray, "job", "stop", "--address", cluster.dashboard, "distnet-stopped-test"], env=cluster.env,
                       check=True, capture_output=True, timeout=300)
        out, err = submit.communicate(timeout=300)
    finally:
        submit.kill()
    assert submit.returncode == 143  # as a terminated distnet train (Ray records no exit code; 1 before)
    resume = (f"distnet submit --resume {shlex.quote(str(run))} --address {cluster.dashboard} "
              f"--env DISTNET_DATA_DIR={env['DISTNET_DATA_DIR']}")  # the address from this shell's variables
    assert f"distnet: terminated; resume with: {resume}\n" in out  # the job's own advice, in its log
    # submit's advice is the same command (it lacked the --env), after Ray's reason without its full stop
    assert re.fullmatch(rf"distnet: job distnet-stopped-test stopped: [^;]*[^.]; if it saved a checkpoint, train "
                        rf"on with: {re.escape(resume)}; if it saved none, submit it again as it was first submitted",
                        err.splitlines()[-1])
    # As the resume reads it: a stop that lands as a checkpoint is written (once checkpoint.npz has
    # become checkpoint.prev.npz) leaves the previous one, which the resume takes.
    checkpoint = RunDir(run).load_checkpoint()
    epochs = checkpoint.epoch + 1  # one more epoch (or the rest of the one it was in)
    done = subprocess.run([sys.executable, "-m", *resume.split(), "--epochs", str(epochs), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert json.loads((run / "summary.json").read_text())["epochs"] == epochs


# What submit says last of a job whose supervisor was lost, after "distnet: job JOB_ID ".
SUPERVISOR_LOST = ("failed: Ray lost the job's supervisor (the actor that ran the job's command; its process died or "
                   "was killed), which ends the training with it and records no exit status; the run directory {run} "
                   "(on the head node) keeps what the run saved; if it saved a checkpoint, train on with: {resume}; if it "
                   "saved none, submit it again as it was first submitted")


def supervisor_pid(cluster, job_id) -> int:
    """The process id of the live supervisor actor of job ``job_id`` (the actor that runs the job's
    command), asked of the cluster from a fresh process, as :func:`job_info` asks."""
    script = ("import sys; from ray.util.state import list_actors; "
              "print(*[a.pid for a in list_actors(address=sys.argv[1], detail=True, filters=[('state', '=', 'ALIVE'), "
              "('name', '=', '_ray_internal_job_actor_' + sys.argv[2])])])")
    done = subprocess.run([sys.executable, "-c", script, cluster.env["RAY_ADDRESS"], job_id], env=cluster.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split(), done.stdout + done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.slow
def test_a_job_s_lost_supervisor_ends_submit_with_the_command_that_trains_on(cluster):
    """Ray's first line of its account, and exit status 1, before; the command it gives trains on."""
    run = cluster.folder / "runs" / "supervisor-lost"
    env = {**cluster.env, "DISTNET_DATA_DIR": os.environ["DISTNET_DATA_DIR"]}
    # A PATH of the job's own, as submit's refusal of a PATH without the node's advises: the job runs.
    submit = subprocess.Popen([sys.executable, "-m", "distnet", "submit", "--job-id", "distnet-supervisor-test",
                               "--run-dir", str(run), "--env", "PATH=/opt/none:${PATH}", "--workers", "1",
                               "--epochs", "100", "--eval-every", "1", "--quiet"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (run / "checkpoint.npz").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (run / "checkpoint.npz").exists(), "the job wrote no checkpoint"
        os.kill(supervisor_pid(cluster, "distnet-supervisor-test"), signal.SIGKILL)
        out, err = submit.communicate(timeout=300)
    finally:
        submit.kill()
    assert submit.returncode == 1, err
    resume = (f"distnet submit --resume {shlex.quote(str(run))} --address {cluster.dashboard} --env "
              f"DISTNET_DATA_DIR={env['DISTNET_DATA_DIR']} --env 'PATH=/opt/none:${{PATH}}'")
    assert err.splitlines()[-1] == "distnet: job distnet-supervisor-test " + SUPERVISOR_LOST.format(run=run,
                                                                                                    resume=resume)
    assert "Traceback" not in err
    # The training ended with its supervisor (Ray's watchdog kills it): the run is free to go on.
    epochs = json.loads((run / "history.jsonl").read_text().splitlines()[-1])["epoch"] + 1
    done = subprocess.run([sys.executable, "-m", *shlex.split(resume), "--epochs", str(epochs), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((run / "summary.json").read_text())["epochs"] == epochs


WRONG_TOKEN_FIX = ("(the one in RAY_AUTH_TOKEN, which wins over any token file); give this process the cluster's "
                   "token ('ray get-auth-token' on the head node prints it; for a cluster of "
                   "cluster/local_cluster.py, run the exports its env command prints) in RAY_AUTH_TOKEN, in a file "
                   "named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token")


@pytest.mark.slow
def test_the_jobs_api_refuses_a_wrong_token_and_submit_says_how_to_give_the_right_one(cluster):
    wrong = {**cluster.env, "RAY_AUTH_TOKEN": "not-the-token"}  # takes precedence over the token file
    done = subprocess.run([sys.executable, "-m", "distnet", "submit", "--job-id", "never", "--no-wait"],
                          env=wrong, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"distnet: error: the Ray Jobs API refused this process's token {WRONG_TOKEN_FIX}\n"


@pytest.mark.slow
def test_submit_to_the_cluster_it_finds_here_without_a_token_says_so_in_one_line(cluster):
    """With no address, Ray's native client asks the cluster it finds on this machine, and its
    warning of the refused token (gcs_client.cc) came before distnet's line (a cluster audit)."""
    env = {name: value for name, value in cluster.env.items() if not name.startswith("RAY_")}
    done = subprocess.run([sys.executable, "-m", "distnet", "submit", "--job-id", "distnet-no-token-test", "--resume",
                           str(cluster.folder / "never-run"), "--no-wait"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.startswith("distnet: error: the Ray Jobs API requires a token and this process sent none "
                                  "(RAY_AUTH_MODE is not 'token'); export RAY_AUTH_MODE=token and give this process "
                                  "the cluster's token"), done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.slow
def test_submit_says_why_the_jobs_api_refused_a_job_id_in_use(cluster):
    missing = cluster.folder / "never-run"  # the job fails at once: only its id matters here
    submit = [sys.executable, "-m", "distnet", "submit", "--job-id", "distnet-twice-test", "--resume", str(missing),
              "--no-wait"]
    first = subprocess.run(submit, env=cluster.env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(submit, env=cluster.env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2
    assert again.stderr == ("distnet: error: the Ray Jobs API refused the request: Job with submission_id "
                            "distnet-twice-test already exists. Please use a different submission_id\n")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "submit"])
def test_the_dashboards_port_given_as_a_cluster_address_is_refused_at_once(cluster, command, tmp_path):
    """Ray would wait on it for 40 s (submit) or 10 minutes, deaf to Ctrl-C (train). Submit, which
    takes the dashboard's address, says to give it as such (it was given the GCS advice too)."""
    address = cluster.dashboard.removeprefix("http://")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "distnet", command, "--address", address, "--workers", "1",
                           "--run-dir", str(tmp_path / "run")], env=cluster.env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and time.monotonic() - started < 30, done.stderr
    if command == "train":
        assert done.stderr.splitlines()[-1] == (
            f"distnet: error: {address} is not a Ray cluster's address: a web server answers there (the dashboard's "
            f"port, which `distnet submit --address` takes as http://HOST:PORT); give the GCS address that "
            f"'ray start --head' printed (by default 127.0.0.1:6379)")
    else:
        assert done.stderr == f"distnet: error: {web_server_refused('--address', address)}\n"
    assert not (tmp_path / "run").exists()


def web_server_refused(origin: str, address: str) -> str:
    """What submit says of a web server's HOST:PORT (from ``origin``), given as a cluster's."""
    return (f"{origin} {address} is the address of a web server, as the Jobs API's (the dashboard's) is; give it "
            f"as http://{address}")


@pytest.mark.slow
def test_distnet_train_without_an_address_joins_the_cluster_that_ray_address_names(cluster, mnist):
    """As `eval "$(python cluster/local_cluster.py env)"` leaves a shell (a job's driver has it too)."""
    run = cluster.folder / "runs" / "by-ray-address"
    env = {**cluster.env, "DISTNET_DATA_DIR": os.environ["DISTNET_DATA_DIR"]}
    not_quiet = [word for word in TRAIN if word != "--quiet"]  # the notes go to stderr
    done = subprocess.run([sys.executable, "-m", "distnet", "train", "--run-dir", str(run), *not_quiet], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert f"distnet: joining the Ray cluster at {cluster.env['RAY_ADDRESS']} (RAY_ADDRESS)" in done.stderr
    assert_trained_on_two_nodes(run, mnist)


@pytest.mark.slow
def test_compiled_steps_across_two_nodes_train_without_a_hang(cluster, mnist):
    """With steps submitted ahead, a compiled graph across nodes hung now and then (a step timed
    out after 60 s, "no actor lost", and the teardown crashed the worker node's raylet; an audit
    found it): across nodes the steps go one at a time."""
    run = cluster.folder / "runs" / "compiled"
    env = {**cluster.env, "DISTNET_DATA_DIR": os.environ["DISTNET_DATA_DIR"]}
    options = ["--workers", "2", "--epochs", "1", "--eval-every", "1", "--protocol", "compiled"]
    done = subprocess.run([sys.executable, "-m", "distnet", "train", "--run-dir", str(run), *options], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "recovered" not in done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["protocol"], summary["failures"], summary["epochs"]) == ("compiled", [], 1)
    assert len({worker["node_id"] for worker in summary["placement"]}) == 2 and summary["test_error"] < 0.1


@pytest.mark.slow
def test_a_training_that_joined_a_cluster_by_its_address_is_told_to_resume_with_that_address(cluster, mnist):
    """Interrupted, a run of `distnet train --address HOST:PORT` was told `distnet train --resume RUN`,
    which (RAY_ADDRESS unset) trains on a Ray of its own, not on the cluster."""
    run = cluster.folder / "runs" / "by-address"
    address = cluster.env["RAY_ADDRESS"]
    env = {name: value for name, value in cluster.env.items() if name != "RAY_ADDRESS"}
    env["DISTNET_DATA_DIR"] = os.environ["DISTNET_DATA_DIR"]
    train = subprocess.Popen([sys.executable, "-m", "distnet", "train", "--address", address, "--run-dir", str(run),
                              "--workers", "2", "--epochs", "100", "--quiet"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (run / "checkpoint.npz").exists() and time.monotonic() < deadline and train.poll() is None:
            time.sleep(0.5)
        assert (run / "checkpoint.npz").exists(), "the run wrote no checkpoint"
        train.send_signal(signal.SIGINT)
        _, err = train.communicate(timeout=300)
    finally:
        train.kill()
    assert train.returncode == 130, err
    assert err.endswith(f"distnet: interrupted; resume with: distnet train --resume {run} --address {address}\n"), err


@pytest.mark.slow
def test_the_cluster_refuses_a_driver_with_a_wrong_token_and_train_says_how_to_give_the_right_one(cluster, mnist):
    wrong = {**cluster.env, "RAY_AUTH_TOKEN": "not-the-token"}
    address = cluster.env["RAY_ADDRESS"]
    done = subprocess.run([sys.executable, "-m", "distnet", "train", "--address", address, "--workers", "1",
                           "--run-dir", str(cluster.folder / "runs" / "refused")], env=wrong, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    # Not Ray's own warnings, one per attempt (its native code's, on stderr): the error says it.
    assert done.stderr == (f"distnet: joining the Ray cluster at {address}\n"
                           f"distnet: error: the Ray cluster at {address} refused this process's token "
                           f"{WRONG_TOKEN_FIX}\n")


# A PID namespace of its own, as a container has, sees none of this machine's Ray nodes: a machine
# that is not a node of the cluster, as Ray tells one (it looks for a raylet among the processes).
UNSHARED = ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]


def unshared_or_skip() -> list[str]:
    """The command prefix that runs a command in a PID namespace of its own; the test is skipped
    where this machine does not let this user make one (no unshare, or no unprivileged namespaces)."""
    try:
        done = subprocess.run([*UNSHARED, "true"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("no unshare on this machine")
    if done.returncode != 0:
        pytest.skip(f"unshare is not permitted here: {done.stderr.strip()}")
    return UNSHARED


def not_a_node(address: str, why: str) -> str:
    """What distnet says of joining the cluster at ``address`` from a machine that is not its node."""
    return (f"this machine is not a node of the Ray cluster at {address} ({why}), and Ray runs a driver (this "
            f"process) only on a node of its cluster; run it on one of the cluster's nodes (the head node, say), make "
            f"this machine a node first (ray start --address {address}, with the cluster's token), or submit the "
            f"training as a job: distnet submit --address http://127.0.0.1:8265 (the head node's Jobs API, 8265 by "
            f"default)")


@pytest.mark.slow
def test_train_on_a_machine_where_no_ray_node_runs_is_told_at_once_it_is_not_a_node(cluster, tmp_path):
    """62 s before (Ray looked for a node here for 60 s), with a message that blamed the address."""
    unshared = unshared_or_skip()
    address = cluster.env["RAY_ADDRESS"]
    started = time.monotonic()
    done = subprocess.run([*unshared, sys.executable, "-m", "distnet", "train", "--address", address, "--workers", "1",
                           "--run-dir", str(tmp_path / "run")], env=cluster.env, capture_output=True, text=True,
                          timeout=300)
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == "distnet: error: " + not_a_node(
        address, "no Ray node runs among the processes this one can see")
    assert seconds < 30, seconds  # the data loads first: 3.5 s in all on the development machine
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_where_only_another_clusters_node_runs_is_told_it_is_not_a_node(cluster, tmp_path):
    """Ray itself looks for a node of the cluster here and gives up (after 60 s; 5 s here): its
    reason, in the cause of its error, was left out and the address blamed."""
    unshared = unshared_or_skip()
    address = cluster.env["RAY_ADDRESS"]
    # A stand-in for another cluster's raylet, as Ray finds one: a process named raylet with a node id.
    another_node = f'(exec -a raylet "$0" -c "import time; time.sleep(600)" --node_id={"ab" * 28}) & '
    train = 'exec "$0" -m distnet train "$@"'  # the namespace ends with it, and the stand-in with it
    env = {**cluster.env, "RAY_gcs_server_request_timeout_seconds": "5"}
    done = subprocess.run([*unshared, "bash", "-c", another_node + train, sys.executable, "--address", address,
                           "--workers", "1", "--run-dir", str(tmp_path / "run")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == "distnet: error: " + not_a_node(
        address, "none of the Ray nodes among the processes this one can see belongs to that cluster")


# -- what does not need a running cluster ---------------------------------------------------------

def test_train_with_address_local_starts_its_own_ray_even_where_ray_address_names_a_cluster(tmp_path):
    """The way out of a shell whose RAY_ADDRESS names a cluster that was stopped."""
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9"}  # nothing answers there
    done = subprocess.run([sys.executable, "-m", "distnet", "train", "--address", "local", "--workers", "1",
                           "--epochs", "1", "--run-dir", str(tmp_path / "run")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "distnet: starting Ray on this machine" in done.stderr and "joining" not in done.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["workers"] == 1

def test_a_bad_ray_address_from_the_environment_is_named_as_such(tmp_path):
    env = {**os.environ, "RAY_ADDRESS": "http://127.0.0.1:8265"}  # the form Ray's job docs use for their client
    done = subprocess.run([sys.executable, "-m", "distnet", "train", "--workers", "1", "--run-dir",
                           str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "distnet: error: cluster address 'http://127.0.0.1:8265' is a web address, as the dashboard's (which "
        "`distnet submit --address` takes); to join a cluster, give the GCS address that 'ray start --head' printed "
        "(by default 127.0.0.1:6379) (the address is RAY_ADDRESS's; to train on a Ray of this process's own "
        "instead, unset RAY_ADDRESS or give the address 'local')")
    assert not (tmp_path / "run").exists()


def test_submit_forwards_the_train_options_and_carries_the_project(monkeypatch):
    monkeypatch.setenv("DISTNET_DATA_DIR", "/data")
    args = build_parser().parse_args(["submit", "--job-id", "j1", "--workers", "4", "--augment", "--no-download",
                                      "--address", "http://head:8265", "--env", "A=b=c", "--quiet",
                                      "--hidden", "128,64", "--l2", "0"])
    request = job_request(args)
    assert request["submission_id"] == "j1"
    assert request["entrypoint"] == ("cd / && exec python -m distnet train --address auto --no-download --workers 4 "
                                     "--hidden 128,64 --l2 0.0 --augment --quiet --run-dir ~/distnet-runs/j1")
    no_hidden = job_request(build_parser().parse_args(["submit", "--job-id", "j3", "--hidden", "none"]))
    assert " --hidden none " in no_hidden["entrypoint"]
    assert request["runtime_env"]["py_modules"] == [str(REPO / "distnet")]
    assert request["runtime_env"]["env_vars"] == {"DISTNET_DATA_DIR": "/data", "A": "b=c"}
    resumed = job_request(build_parser().parse_args(["submit", "--job-id", "j2", "--resume", "~/runs/a b"]))
    assert resumed["entrypoint"] == "cd / && exec python -m distnet train --address auto --resume ~/'runs/a b'"
    # given, even as the default's number, it becomes the run's (left out, the run's own is kept)
    failures = job_request(build_parser().parse_args(["submit", "--job-id", "j4", "--resume", "/r", "--max-failures",
                                                      "3"]))
    assert failures["entrypoint"] == "cd / && exec python -m distnet train --address auto --max-failures 3 --resume /r"


@pytest.mark.parametrize("options, env, refused", [
    (["--run-dir", "runs/a"], {}, "--run-dir is 'runs/a'"),
    (["--resume", "runs/a"], {}, "--resume is 'runs/a'"),
    (["--run-dir", "~bob/runs"], {}, "--run-dir is '~bob/runs'"),  # would reach the job quoted, unexpanded
    (["--data-dir", "data"], {}, "--data-dir is 'data'"),
    ([], {"DISTNET_DATA_DIR": "data"}, "DISTNET_DATA_DIR (from this shell's environment) is 'data'"),
    (["--env", "DISTNET_DATA_DIR=../data"], {"DISTNET_DATA_DIR": "/data"}, "--env DISTNET_DATA_DIR is '../data'"),
])
def test_submit_refuses_relative_paths_which_the_job_would_take_from_the_heads_folder(monkeypatch, options, env,
                                                                                      refused):
    monkeypatch.delenv("DISTNET_DATA_DIR", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(
            f"{refused}: the job would take this relative path from the folder the cluster's head node was "
            f"started in; give an absolute path on the head node (or one in its home, ~/...)")):
        job_request(build_parser().parse_args(["submit", *options]))


def test_a_relative_data_folder_from_this_shell_is_refused_with_how_to_pass_none(monkeypatch):
    """The shell's DISTNET_DATA_DIR goes to the job unasked: the refusal of a relative one named
    only an absolute path as the way out, not leaving it behind (--env DISTNET_DATA_DIR=)."""
    monkeypatch.setenv("DISTNET_DATA_DIR", "data")
    with pytest.raises(ConfigError) as refused:
        job_request(build_parser().parse_args(["submit"]))
    assert str(refused.value) == (
        "DISTNET_DATA_DIR (from this shell's environment) is 'data': the job would take this relative path from the "
        "folder the cluster's head node was started in; give an absolute path on the head node (or one in its home, "
        "~/...), or pass none: --env DISTNET_DATA_DIR=")
    monkeypatch.delenv("DISTNET_DATA_DIR")
    with pytest.raises(ConfigError) as refused:  # one given with --env is the user's choice: no such advice
        job_request(build_parser().parse_args(["submit", "--env", "DISTNET_DATA_DIR=data"]))
    assert str(refused.value).endswith("(or one in its home, ~/...)")


@pytest.mark.parametrize("options, refused", [
    (["--env", "1X=2"], "--env '1X=2': '1X' is not a variable name (letters, digits and '_', not starting with a "
                        "digit)"),  # submitted silently before
    (["--env", "A B=c"], "--env 'A B=c': 'A B' is not a variable name"),
    (["--job-id", ".."], "--job-id '..': use letters, digits, '.', '_' and '-' only, starting with a letter or digit"),
])
def test_submit_refuses_environment_variables_and_job_ids_the_job_could_not_have(options, refused):
    with pytest.raises(ConfigError) as caught:
        job_request(build_parser().parse_args(["submit", *options]))
    assert str(caught.value).startswith(refused)


def test_submit_to_a_host_port_nothing_answers_says_both_addresses_it_takes(monkeypatch):
    import socket

    from distnet.commands.submit import _JobsAPI
    from distnet.errors import ClusterUnreachableError

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClusterUnreachableError, match=re.escape(
            f"cannot reach a Ray cluster at 127.0.0.1:{port} (connection refused") + ".*" + re.escape(
            f"; or, for the Jobs API (the dashboard's port, 8265 by default), give it as http://127.0.0.1:{port}")
            + "$"):
        _JobsAPI(f"127.0.0.1:{port}")


def test_submit_tells_a_web_servers_host_port_to_be_given_as_http(monkeypatch):
    """As the Jobs API's address without its http://, from --address or the environment."""
    from distnet.commands.submit import _JobsAPI

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    with web_server() as address:
        with pytest.raises(ConfigError) as refused:
            _JobsAPI(address)
        assert str(refused.value) == web_server_refused("--address", address)
        monkeypatch.setenv("RAY_API_SERVER_ADDRESS", address)
        with pytest.raises(ConfigError) as refused:
            _JobsAPI(None)
        assert str(refused.value) == web_server_refused("RAY_API_SERVER_ADDRESS", address)


def test_submit_to_a_jobs_api_address_where_nothing_is_said_gives_up_within_10_s():
    """Ray's job client waited on it without end."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "all_proxy")}
    with silent_server() as server:
        address = f"http://{server}"
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "distnet", "submit", "--address", address, "--no-wait"],
                              env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and time.monotonic() - started < 30, done.stderr
    assert done.stderr == (f"distnet: error: the Ray Jobs API refused or could not be reached: {address}: something "
                           f"accepts connections there, but closed the connection or said nothing within 10 s, where "
                           f"the Jobs API answers at once. Is the cluster running? If it is, check --address: the "
                           f"dashboard's http://HOST:PORT, 8265 by default\n")


def test_submit_refuses_a_path_for_the_job_without_the_head_node_s_own():
    """Ray could not start the job (it looks for bash on PATH): it stayed PENDING for minutes."""
    with pytest.raises(ConfigError) as refused:
        job_request(build_parser().parse_args(["submit", "--env", "PATH=/opt/tools/bin"]))
    assert str(refused.value) == (
        "--env 'PATH=/opt/tools/bin': Ray starts the job's own processes with the job's variables and looks for bash "
        "on PATH, so a PATH without the head node's own (${PATH}) leaves it unable to start the job, which would stay "
        "PENDING for minutes and then fail; to put folders first, keep the node's PATH after them: --env "
        "'PATH=/opt/tools/bin:${PATH}' (in single quotes: Ray expands ${PATH} on the head node)")
    # As the advice has it, the node's PATH is kept (the job that loses its supervisor above runs so).
    for kept in ("/opt/tools/bin:${PATH}", "$PATH:/opt/tools/bin"):
        request = job_request(build_parser().parse_args(["submit", "--env", f"PATH={kept}"]))
        assert request["runtime_env"]["env_vars"]["PATH"] == kept


def test_a_log_stream_that_breaks_is_said_in_a_line_and_submit_waits_for_the_job_s_end(capsys):
    import asyncio

    from distnet.commands.submit import _print_logs

    class StreamThatBreaks:
        async def tail_job_logs(self, job_id):
            yield "epoch   1  train error ...\n"
            raise ConnectionResetError("Connection lost\nand a long traceback")  # aiohttp's, say

    asyncio.run(_print_logs(StreamThatBreaks(), "j1"))  # a traceback before
    out, err = capsys.readouterr()
    assert out == "epoch   1  train error ...\n"
    assert err == ("distnet: the job's log stream broke (ConnectionResetError: Connection lost); waiting for the "
                   "job to end (`ray job logs j1` shows its log)\n")


class _FakeJobs:
    """A Jobs API client whose job ends with ``status`` (or whose head goes away while it runs)."""

    def __init__(self, status=None, message=None, exit_code=None, error_type=None):
        self.status, self.message, self.exit_code, self.error_type = status, message, exit_code, error_type

    def submit_job(self, submission_id, **request):
        return submission_id

    def get_address(self):
        return "http://head:8265"

    async def tail_job_logs(self, job_id):
        yield "epoch   1  train error ...\n"

    def get_job_status(self, job_id):
        from ray.job_submission import JobStatus
        import requests

        if self.status is None:
            raise requests.exceptions.ConnectionError("HTTPConnectionPool(host='head', port=8265): Max retries "
                                                      "exceeded with url: /api/jobs/j (Caused by ...)")
        return JobStatus(self.status)

    def get_job_info(self, job_id):
        from types import SimpleNamespace
        return SimpleNamespace(message=self.message, driver_exit_code=self.exit_code, error_type=self.error_type)


def _submitted_to(monkeypatch, capsys, client, *options) -> tuple[int, str]:
    """Submit's exit status and what it wrote on stderr, submitting to ``client`` (see _FakeJobs)
    from a shell where DISTNET_DATA_DIR is /data."""
    from distnet.cli import main
    from distnet.commands import submit

    class Jobs(submit._JobsAPI):
        def __init__(self, address):
            self._source, self.client = "--address", client

    monkeypatch.setattr(submit, "_JobsAPI", Jobs)
    monkeypatch.setenv("DISTNET_DATA_DIR", "/data")
    status = main(["submit", "--job-id", "j", "--run-dir", "/runs/a", *options])
    return status, capsys.readouterr().err


def _submit_to(monkeypatch, capsys, client, *options) -> tuple[int, str]:
    """As :func:`_submitted_to`, with the last line submit wrote on stderr."""
    status, err = _submitted_to(monkeypatch, capsys, client, *options)
    return status, err.splitlines()[-1]


def test_submit_names_each_variable_it_passes_to_the_job_and_where_it_was_given(monkeypatch, capsys):
    """DISTNET_DATA_DIR went from this shell to the job unsaid: a path of this machine's, which the
    job looks for on the head node."""
    status, err = _submitted_to(monkeypatch, capsys, _FakeJobs("SUCCEEDED"), "--env", "A=b c")
    assert status == 0
    assert err.splitlines() == [
        "submitted job j to http://head:8265",
        "  cd / && exec python -m distnet train --address auto --run-dir /runs/a",
        "run directory (on the head node): /runs/a",
        "environment passed to the job: DISTNET_DATA_DIR=/data (from this shell's environment: the job looks there on "
        "the head node; --env DISTNET_DATA_DIR= passes none), 'A=b c' (--env)"]


def test_submit_no_wait_says_how_to_follow_see_and_stop_the_job(monkeypatch, capsys):
    """--no-wait printed the job id alone: how to follow or stop the job was left to find out."""
    from distnet.cli import main
    from distnet.commands import submit

    class Jobs(submit._JobsAPI):
        def __init__(self, address):
            self._source, self.client = "--address", _FakeJobs("RUNNING")

    monkeypatch.setattr(submit, "_JobsAPI", Jobs)
    monkeypatch.delenv("DISTNET_DATA_DIR", raising=False)
    assert main(["submit", "--job-id", "j", "--run-dir", "/runs/a", "--no-wait"]) == 0
    out, err = capsys.readouterr()
    assert out == "j\n"  # stdout: the job id alone, for a script
    assert err.splitlines()[-1] == (
        "job j runs on without this command: follow it with `ray job logs --follow j`, see its status with "
        "`ray job status j`, stop it with `ray job stop j` (each with --address http://head:8265)")


def test_submit_help_gives_every_exit_status_submit_gives(capsys):
    """The help named 0, the job's own status (2, 143) and 1; not 137 (a killed training), 130
    (Ctrl-C), 141 (a closed output) nor 2 for a job that was not submitted."""
    from distnet.cli import main

    with pytest.raises(SystemExit):
        main(["submit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("Exit status: 0 when the job succeeded, otherwise the job's own exit status (2 for a distnet error; "
            "128 + N for a training killed by signal N, 137 for SIGKILL; 143 for a job that `ray job stop` stopped), "
            "or 1; while the job runs on, 130 for Ctrl-C, 143 for SIGTERM and 141 for a closed output (this command "
            "stopped following; it names the ray job commands that follow and stop the job); 2 where it was not "
            "submitted, or contact with the cluster was lost.") in text
    # `--run-dir ~/runs/a` reached submit as this machine's home (the shell's), not the head node's
    assert ("Paths (--data-dir, --run-dir, --resume) are paths on the cluster's head node; one in its home is given "
            "quoted, '~/runs/a' (unquoted, this shell puts this machine's home there).") in text


class _InterruptedJobs(_FakeJobs):
    async def tail_job_logs(self, job_id):
        raise KeyboardInterrupt  # Ctrl-C as submit follows the job's log
        yield


def test_ctrl_c_while_submit_follows_says_the_job_goes_on_and_how_to_follow_see_and_stop_it(monkeypatch, capsys):
    status, last = _submit_to(monkeypatch, capsys, _InterruptedJobs("RUNNING"))
    assert status == 130
    assert last == ("distnet: stopped following; job j goes on. Follow it again with `ray job logs --follow j`, see "
                    "its status with `ray job status j`, stop it with `ray job stop j` (each with --address "
                    "http://head:8265)")


class _TerminatedJobs(_FakeJobs):
    async def tail_job_logs(self, job_id):
        os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler's time limit ends submit as it follows the job's log
        await asyncio.sleep(10)
        yield


def test_sigterm_while_submit_follows_ends_it_as_terminated_not_as_ctrl_c(monkeypatch, capsys):
    """That was exit status 130, Ctrl-C's, against every other distnet command's 143."""
    status, last = _submit_to(monkeypatch, capsys, _TerminatedJobs("RUNNING"))
    assert status == 143 and last.startswith("distnet: stopped following; job j goes on. Follow it again with ")
    status, _ = _submit_to(monkeypatch, capsys, _InterruptedJobs("RUNNING"))  # no SIGTERM remembered
    assert status == 130


class _GoneReader:
    """A stdout whose reader went away (`distnet submit --json | head -1`, after the first line)."""

    def write(self, text):
        raise BrokenPipeError

    def flush(self):
        pass


@pytest.mark.parametrize("job, status, said", [
    ("RUNNING", 141, "distnet: error: the output was closed (its reader went away), so this command stopped "
                     "following; job j goes on. Follow it with `ray job logs --follow j`, see its status with "
                     "`ray job status j`, stop it with `ray job stop j` (each with --address http://head:8265)"),
    ("SUCCEEDED", 0, "environment passed to the job: DISTNET_DATA_DIR=/data (from this shell's environment: the job "
                     "looks there on the head node; --env DISTNET_DATA_DIR= passes none)")])
def test_submit_whose_reader_went_away_says_the_job_goes_on_unless_it_ended(monkeypatch, capsys, job, status, said):
    """A closed output ended submit with exit status 0, nothing said, the job running on: as if it
    had succeeded. A job that has ended by then ends submit as it would have anyway."""
    from distnet.commands import submit

    dropped = []
    monkeypatch.setattr(submit, "drop_output", dropped.append)  # pytest's own stdout stays
    monkeypatch.setattr(sys, "stdout", _GoneReader())
    assert _submit_to(monkeypatch, capsys, _FakeJobs(job)) == (status, said)
    assert dropped == [sys.stdout]


def test_submit_passes_no_data_folder_from_this_shell_where_told_so(monkeypatch):
    monkeypatch.setenv("DISTNET_DATA_DIR", "/home/alice/data")
    args = build_parser().parse_args(["submit", "--env", "DISTNET_DATA_DIR=", "--address", "http://head:8265"])
    request = job_request(args)  # an empty value was refused as a relative path
    assert request["runtime_env"]["env_vars"] == {"DISTNET_DATA_DIR": ""}  # which distnet reads as none
    assert request["variables"] == {"DISTNET_DATA_DIR": ("", "--env")}
    assert _resume_command(args.address, "/runs/a", request["runtime_env"]["env_vars"]) == (
        "distnet submit --resume /runs/a --address http://head:8265 --env DISTNET_DATA_DIR=")  # so does a resume


def test_a_stopped_job_ends_submit_as_a_terminated_train_with_the_job_s_own_resume_command(monkeypatch, capsys):
    status, last = _submit_to(monkeypatch, capsys, _FakeJobs("STOPPED", "Job was intentionally stopped."))
    assert status == 143  # 1 before: Ray records no exit code for a job it stopped
    assert last == ("distnet: job j stopped: Job was intentionally stopped; if it saved a checkpoint, train on with: "
                    "distnet submit --resume /runs/a --address http://head:8265 --env DISTNET_DATA_DIR=/data; if it saved "
                    "none, submit it again as it was first submitted")
    # ".;" and no --env before; no --address where the shell's variables gave it


@pytest.mark.parametrize("exit_code", [-9, 137])
def test_a_job_whose_training_was_killed_ends_submit_with_how_to_train_on(monkeypatch, capsys, exit_code):
    """A killed driver is a failure that may have saved a checkpoint: no advice was given. Ray
    records the signal as Popen gives it (-9, whose exit status was 247) for the driver submit
    starts with exec, a shell's 128 + 9 for a driver a shell ran."""
    status, last = _submit_to(monkeypatch, capsys, _FakeJobs("FAILED", "Job entrypoint command failed with exit "
                                                                       f"code {exit_code}", exit_code=exit_code))
    assert status == 137
    assert last == (f"distnet: job j failed: Job entrypoint command failed with exit code {exit_code}; if it saved a "
                    "checkpoint, train on with: distnet submit --resume /runs/a --address http://head:8265 --env "
                    "DISTNET_DATA_DIR=/data; if it saved none, submit it again as it was first submitted")
    status, last = _submit_to(monkeypatch, capsys, _FakeJobs("FAILED", "Job entrypoint command failed with exit "
                                                                       "code 2", exit_code=2))
    assert status == 2 and last == "distnet: job j failed: Job entrypoint command failed with exit code 2"


def test_a_job_whose_supervisor_was_lost_ends_submit_with_what_is_kept_and_how_to_go_on(monkeypatch, capsys):
    """As Ray 2.60 records it (test_a_job_s_lost_supervisor_... below has a real one killed)."""
    died = ("Job supervisor actor died: The actor died unexpectedly before finishing this task.\n\tclass_name: "
            "JobSupervisor\n\tpid: 17724\nThe actor is dead because its worker process has died. ...")
    status, last = _submit_to(monkeypatch, capsys, _FakeJobs("FAILED", died, error_type="JOB_SUPERVISOR_ACTOR_DIED"))
    assert status == 1  # Ray records no exit status
    assert last == "distnet: job j " + SUPERVISOR_LOST.format(  # Ray's first line before, and no advice
        run="/runs/a", resume="distnet submit --resume /runs/a --address http://head:8265 --env DISTNET_DATA_DIR=/data")


def test_a_cluster_gone_while_submit_follows_its_job_is_said_with_how_to_go_on(monkeypatch, capsys):
    status, last = _submit_to(monkeypatch, capsys, _FakeJobs(), "--address", "http://head:8265")
    assert status == 2  # before: the command line's line for any OSError (requests' ConnectionError), no advice
    # before: the address advice came first, as if the address were wrong, which it was not
    assert last == ("distnet: error: lost contact with the cluster's Jobs API at http://head:8265 while following job "
                    "j (HTTPConnectionPool(host='head', port=8265): Max retries exceeded with url: /api/jobs/j (Caused "
                    "by ...)); the job may have ended with the cluster: once the cluster is back, a checkpoint it "
                    "saved in /runs/a (on the head node) trains on with: distnet submit --resume /runs/a --address "
                    "http://head:8265 --env DISTNET_DATA_DIR=/data (a cluster started again may have another "
                    "address: give --address its address then)")


def test_a_head_node_gone_while_submit_follows_is_said_in_the_system_s_words(monkeypatch, capsys):
    """The head node killed as submit followed its job: the reason was requests' whole account,
    HTTPConnectionPool(...): Max retries exceeded with url: ... (Caused by NewConnectionError(...
    [Errno 111] Connection refused"))."""
    import requests

    class HeadGone(_FakeJobs):
        def get_job_status(self, job_id):
            raise requests.exceptions.ConnectionError(
                "HTTPConnectionPool(host='127.0.0.1', port=36357): Max retries exceeded with url: /api/jobs/j (Caused "
                "by NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=36357): Failed to establish a new "
                "connection: [Errno 111] Connection refused\"))")

    status, last = _submit_to(monkeypatch, capsys, HeadGone(), "--address", "http://head:8265")
    assert status == 2
    assert last.startswith("distnet: error: lost contact with the cluster's Jobs API at http://head:8265 while "
                           "following job j (Connection refused); the job may have ended with the cluster")


def test_submit_json_keeps_stdout_to_the_training_s_json_lines(monkeypatch, capsys):
    """The job's log has Ray's lines and distnet's messages too; they went to stdout, which --json
    promises holds one JSON object per line."""
    from distnet.cli import main
    from distnet.commands import submit

    class Logs(_FakeJobs):
        async def tail_job_logs(self, job_id):
            yield "2026-12-02 10:26:50,992 INFO job_manager.py:581 -- Runtime env is setting up.\n"
            yield 'distnet: joining the Ray cluster at auto\n{"event": "epoch", "ep'
            yield 'och": 1}\n["not", "an", "object"]\n{"event": "end"}'

    class Jobs(submit._JobsAPI):
        def __init__(self, address):
            self._source, self.client = "--address", Logs("SUCCEEDED")

    monkeypatch.setattr(submit, "_JobsAPI", Jobs)
    assert main(["submit", "--job-id", "j", "--run-dir", "/runs/a", "--json"]) == 0
    out, err = capsys.readouterr()
    assert out == '{"event": "epoch", "epoch": 1}\n{"event": "end"}\n'
    assert err.splitlines()[-3:] == ["2026-12-02 10:26:50,992 INFO job_manager.py:581 -- Runtime env is setting up.",
                                     "distnet: joining the Ray cluster at auto", '["not", "an", "object"]']


def test_submit_names_the_variable_its_jobs_api_address_came_from(monkeypatch):
    from distnet.commands.submit import _JobsAPI
    from distnet.errors import DistnetError

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(DistnetError, match=re.escape("Is the cluster running? If it is, check RAY_API_SERVER_ADDRESS "
                                                     "(set in this shell; --address wins over it): the dashboard's "
                                                     "http://HOST:PORT")):
        _JobsAPI(None)  # "Check --address" before, which was not given


def test_a_jobs_api_without_its_head_agent_is_said_with_what_to_check(monkeypatch, capsys):
    """A head node started by hand where another Ray held port 52365 had no dashboard agent: Ray's
    "No available agent to submit job, please try again later" was all submit said, and trying
    again later failed the same way."""
    class NoAgent(_FakeJobs):
        def submit_job(self, submission_id, **request):
            raise RuntimeError("Request failed with status code 500: No available agent to submit job, please try "
                               "again later..")  # as Ray's client words it (its text, then ".")

    status, last = _submit_to(monkeypatch, capsys, NoAgent())
    assert status == 2
    assert last == (
        "distnet: error: the Ray Jobs API refused the request: No available agent to submit job, please try again "
        "later; the head node's dashboard agent, which starts every job, has not made itself known to the Jobs API: "
        "where the cluster has just started, try again in a few seconds; otherwise the head node's "
        "dashboard_agent.log (in its Ray logs, such as /tmp/ray/session_latest/logs) says why, for instance 'address "
        "already in use' where another Ray on that machine holds the agent's port (52365 by default): start the head "
        "node with --dashboard-agent-listen-port set to a free port")


def test_submit_takes_paths_in_the_head_nodes_home(monkeypatch):
    monkeypatch.setenv("DISTNET_DATA_DIR", "~/data")  # distnet expands it there
    request = job_request(build_parser().parse_args(["submit", "--job-id", "j", "--run-dir", "~/runs/a"]))
    assert request["entrypoint"].endswith("--run-dir ~/runs/a")
    assert request["runtime_env"]["env_vars"]["DISTNET_DATA_DIR"] == "~/data"


def test_the_command_that_resumes_a_stopped_job_submits_the_same_run_with_the_same_options(monkeypatch):
    monkeypatch.setenv("DISTNET_DATA_DIR", "/data")  # taken from this shell: named, for any other shell
    args = build_parser().parse_args(["submit", "--address", "http://head:8265", "--env", "A=b c"])
    env_vars = job_request(args)["runtime_env"]["env_vars"]
    command = _resume_command(args.address, "~/distnet-runs/j", env_vars)
    assert command == ("distnet submit --resume '~/distnet-runs/j' --address http://head:8265 --env "
                       "DISTNET_DATA_DIR=/data --env 'A=b c'")
    monkeypatch.delenv("DISTNET_DATA_DIR")
    again = build_parser().parse_args(shlex.split(command)[1:])  # as a shell passes it on
    request = job_request(again)
    assert request["entrypoint"] == "cd / && exec python -m distnet train --address auto --resume ~/distnet-runs/j"
    assert request["runtime_env"]["env_vars"] == env_vars
    assert request["runtime_env"]["env_vars"]["A"] == "b c" and again.address == "http://head:8265"


def test_inside_a_job_that_submit_started_the_advice_is_to_resume_with_submit(monkeypatch, tmp_path):
    from distnet.rundir import RunDir

    run = RunDir(tmp_path / "a b")
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert run.resume_command() == f"distnet train --resume '{tmp_path}/a b'"
    job = {"runtime_env": {"env_vars": {"DISTNET_DATA_DIR": "/d", "A": "b c"}}, "metadata": {"distnet": "train"}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))  # what Ray gives the driver of submit's job
    assert run.resume_command() == (f"distnet submit --resume '{tmp_path}/a b' --env DISTNET_DATA_DIR=/d "
                                    f"--env 'A=b c'")
    job["metadata"]["address"] = "http://head:8265"  # submit's --address (left out before)
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    assert run.resume_command() == (f"distnet submit --resume '{tmp_path}/a b' --address http://head:8265 --env "
                                    f"DISTNET_DATA_DIR=/d --env 'A=b c'")
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({**job, "metadata": {}}))  # by ray job submit
    assert run.resume_command() == f"distnet train --resume '{tmp_path}/a b'"


def test_inside_a_job_that_submit_started_a_run_without_checkpoint_is_started_again_with_submit(monkeypatch,
                                                                                                   tmp_path):
    """A job stopped before its first checkpoint was told, when resumed, to start again with
    `distnet train`, which inside a job trains on the head node outside any job."""
    from distnet.rundir import RunDir

    run = RunDir(tmp_path / "a b")
    run.path.mkdir()
    job = {"runtime_env": {"env_vars": {"DISTNET_DATA_DIR": "/d"}},
           "metadata": {"distnet": "train", "address": "http://head:8265"}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    command = f"distnet submit --run-dir '{tmp_path}/a b' --address http://head:8265 --env DISTNET_DATA_DIR=/d ..."
    assert run.start_again_command() == command
    with pytest.raises(ConfigError) as refused:
        run.check_has_checkpoint()
    assert str(refused.value).endswith(f"start the run again: {command}")
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR")
    assert run.start_again_command() == f"distnet train --run-dir '{tmp_path}/a b' ..."


def test_submit_refuses_with_resume_what_the_run_fixes_before_submitting():
    args = build_parser().parse_args(["submit", "--resume", "/runs/a", "--batch-size", "64", "--run-dir", "/runs/b"])
    with pytest.raises(ConfigError, match=r"so --batch-size cannot be given with it; .*; --run-dir cannot be given "
                                          r"with --resume, which names the run directory itself: the run goes on in "
                                          r"/runs/a; "):
        job_request(args)


@pytest.mark.slow
def test_an_interrupted_local_cluster_start_leaves_no_node_running():
    folder = Path(tempfile.mkdtemp(prefix="dnc-", dir="/tmp"))
    try:
        start = subprocess.Popen([sys.executable, SCRIPT, "start", "--dir", folder], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as at a terminal
        deadline = time.monotonic() + 60
        while not (folder / "head.log").exists() and time.monotonic() < deadline:  # the head is starting
            time.sleep(0.05)
        time.sleep(0.5)  # well into its start, which takes seconds
        start.send_signal(signal.SIGINT)
        out, err = start.communicate(timeout=120)
        assert start.returncode == 130, err
        assert err.endswith("local_cluster: start interrupted; no node is left running\n") and "Traceback" not in err
        left = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True).stdout
        assert left == "" and not (folder / "cluster.json").exists()
    finally:
        subprocess.run(["pkill", "-9", "-f", str(folder)])
        shutil.rmtree(folder, ignore_errors=True)


def test_a_ctrl_c_as_local_cluster_starts_a_node_s_process_stops_that_node(monkeypatch):
    """A Ctrl-C that landed as the head's `ray start` was being started (before the node was
    known to the code that stops an interrupted start's nodes) left that node running, recorded
    nowhere. Here it lands just as the process is started (a `sleep` standing in for the node)."""
    script = runpy.run_path(str(SCRIPT))
    popen, started = subprocess.Popen, []

    def started_then_ctrl_c(command, **options):
        started.append(popen(["sleep", "300"], **options))
        os.kill(os.getpid(), signal.SIGINT)  # lands at Python's next instruction
        return started[-1]

    folder = Path(tempfile.mkdtemp(prefix="dnc-", dir="/tmp"))  # short: start checks Ray's socket paths
    monkeypatch.setattr(subprocess, "Popen", started_then_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            script["start"](folder, workers=1, cpus=1, timeout=60)
        monkeypatch.undo()
        assert len(started) == 1 and started[0].wait(timeout=30) == -signal.SIGTERM  # stopped, not left running
        assert not (folder / "cluster.json").exists()
    finally:
        monkeypatch.undo()
        for process in started:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def dashboard_ports_taken(monkeypatch, heads: int):
    """Within the block, the dashboard port of each of the first ``heads`` head nodes that
    local_cluster starts is taken as the node's process is started (as by another process, after
    free_ports chose it): this process listens on it and answers nothing. Yields the list of the
    head nodes started, each as its process and its dashboard port."""
    popen, started, held = subprocess.Popen, [], []

    def popen_with_port_taken(command, **options):
        if "--dashboard-port" in command:
            port = int(command[command.index("--dashboard-port") + 1])
            if len(held) < heads:
                held.append(socket.create_server(("127.0.0.1", port)))
            started.append((popen(command, **options), port))
            return started[-1][0]
        return popen(command, **options)

    monkeypatch.setattr(subprocess, "Popen", popen_with_port_taken)
    try:
        yield started
    finally:
        monkeypatch.undo()
        for s in held:
            s.close()


def gone(script, process) -> bool:
    """Whether a head node's `ray start` has exited (collected here: no zombie is left) and no
    process of its node runs."""
    return process.poll() is not None and not script["_group_running"](process.pid)


def end_heads(script, folder, heads):
    """End what a test of start left: the cluster recorded in ``folder``, and any head still running."""
    if (folder / "cluster.json").exists():
        script["stop"](folder)
    script["stop_nodes"]([{"name": "head", "pid": process.pid} for process, port in heads if process.poll() is None])


@pytest.mark.slow
def test_a_head_node_started_without_its_dashboard_is_started_again_with_other_ports(monkeypatch, capsys):
    """Ray 2.60 starts a head whose dashboard port was taken meanwhile without a dashboard, and
    still says "Ray runtime started": start recorded a cluster whose dashboard_url, where `distnet
    submit` and `ray job submit` find its Jobs API, nothing answered."""
    script = runpy.run_path(str(SCRIPT))
    folder = Path(tempfile.mkdtemp(prefix="dnc-", dir="/tmp"))  # short: Ray's socket paths
    heads = []
    try:
        with dashboard_ports_taken(monkeypatch, heads=1) as heads:
            state = script["start"](folder, workers=0, cpus=1, timeout=30)
        assert len(heads) == 2
        (first, taken), (second, port) = heads
        assert gone(script, first)  # stopped by start, before it started the second
        assert state["dashboard_url"] == f"http://127.0.0.1:{port}" and port != taken
        assert [node["pid"] for node in state["nodes"]] == [second.pid]
        assert capsys.readouterr().err == ("local_cluster: Ray node head started without a dashboard that answers; "
                                           "starting it again\n")
        client = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": state["auth_token_path"]}
        client.pop("RAY_AUTH_TOKEN", None)
        list_jobs = ("import sys; from ray.job_submission import JobSubmissionClient as C; "
                     "print(C(sys.argv[1]).list_jobs())")
        jobs = subprocess.run([sys.executable, "-c", list_jobs, state["dashboard_url"]], env=client,
                              capture_output=True, text=True, timeout=120)
        assert jobs.returncode == 0 and jobs.stdout == "[]\n", jobs.stderr  # the Jobs API answers, with no job
    finally:
        end_heads(script, folder, heads)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_head_node_whose_dashboard_never_answers_fails_the_start_and_is_stopped(monkeypatch):
    script = runpy.run_path(str(SCRIPT))
    folder = Path(tempfile.mkdtemp(prefix="dnc-", dir="/tmp"))  # short: Ray's socket paths
    heads = []
    try:
        with dashboard_ports_taken(monkeypatch, heads=3) as heads:
            with pytest.raises(script["ClusterError"]) as caught:
                script["start"](folder, workers=0, cpus=1, timeout=20)
        assert len(heads) == 3  # as many as start tries
        assert all(gone(script, process) for process, port in heads)
        assert not (folder / "cluster.json").exists()
        port = heads[-1][1]
        assert str(caught.value) == (
            f"Ray node head started without a dashboard: another process took its port {port} as it started (its "
            f"log {folder / 'head.log'}: Failed to bind to 127.0.0.1:{port} because it's already occupied); start "
            f"again, which chooses other ports")
    finally:
        end_heads(script, folder, heads)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("head", ["running", "exited"])
def test_a_dashboard_that_does_not_answer_is_waited_for_until_the_timeout_unless_its_head_exits(tmp_path, head):
    """Where the head's log does not say why (no port taken), the wait ends at the timeout, or as
    soon as the head's process has exited."""
    script = runpy.run_path(str(SCRIPT))
    log = tmp_path / "head.log"
    log.write_text("Ray runtime started.\n")
    node = {"name": "head", "log": str(log)}
    token = {"RAY_AUTH_TOKEN": "t"}
    process = subprocess.Popen(["sleep", "60" if head == "running" else "0"])
    try:
        if head == "exited":
            process.wait(timeout=10)
        with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, answers nothing
            url = f"http://127.0.0.1:{silent.getsockname()[1]}"
            started = time.monotonic()
            with pytest.raises(script["ClusterError"]) as caught:
                script["_wait_dashboard"](url, token, node, process, timeout=3)
            waited = time.monotonic() - started
    finally:
        process.kill()
        process.wait()
    if head == "running":
        assert isinstance(caught.value, script["_NoDashboard"]) and 3 <= waited < 30
        assert str(caught.value) == (f"Ray node head started without a dashboard: nothing answered at {url}/api/version "
                                     f"within 3 s (timed out); see its log {log} (on a busy machine, a dashboard that "
                                     f"is slow to start needs a longer --timeout)")
    else:
        assert not isinstance(caught.value, script["_NoDashboard"]) and waited < 3
        assert str(caught.value) == f"Ray node head exited as its dashboard started; see {log}"


def test_ctrl_c_while_local_cluster_stops_nodes_waits_until_they_are_ended():
    deferred = runpy.run_path(str(SCRIPT))["_ctrl_c_deferred"]
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with deferred():
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C, as the nodes of an interrupted start stop
            time.sleep(0.1)
            finished.append(True)
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_local_cluster_stop_leaves_alone_a_process_that_got_a_recorded_node_s_id(tmp_path):
    """Process ids come round again: a node whose process ended may have its id taken by another's
    process, which stop must not signal (it did: SIGTERM, then SIGKILL to its process group)."""
    script = runpy.run_path(str(SCRIPT))
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    ours = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        started = script["_start_time"](stranger.pid)
        assert started is not None and started == script["_start_time"](stranger.pid)
        nodes = [{"name": "worker-2", "pid": stranger.pid, "started": started - 1, "log": "/dev/null"},
                 {"name": "head", "pid": ours.pid, "started": script["_start_time"](ours.pid), "log": "/dev/null"}]
        (tmp_path / "cluster.json").write_text(json.dumps({"nodes": nodes}))
        stopped = script["stop"](tmp_path)
        assert ours.wait(timeout=30) == -signal.SIGTERM
        assert stranger.poll() is None
        assert script["stopped_report"](stopped, tmp_path).splitlines()[0] == (
            f"stopped the Ray cluster recorded in {tmp_path}: worker-2 (pid {stranger.pid}, had already exited), "
            f"head (pid {ours.pid})")
    finally:
        for process in (stranger, ours):
            process.kill()
            process.wait()


def test_nodes_a_failed_start_stops_are_ended_at_once_not_after_the_timeout():
    """The nodes start stops (one that failed, those started before it) are its own children: each
    one's ended `ray start`, not yet collected, kept its process group alive to the kernel, so that
    every such stop waited out its whole timeout (30 s) for nodes that had ended at once."""
    script = runpy.run_path(str(SCRIPT))
    node = subprocess.Popen(["sleep", "300"], start_new_session=True)  # as _start_node starts one
    try:
        started = time.monotonic()
        script["stop_nodes"]([{"name": "head", "pid": node.pid, "started": script["_start_time"](node.pid),
                               "log": "/dev/null"}], timeout=20.0)
        assert time.monotonic() - started < 5
        assert node.wait(timeout=5) == -signal.SIGTERM  # its exit status left for its Popen
    finally:
        node.kill()
        node.wait()


def test_the_commands_local_cluster_prints_work_from_any_folder(tmp_path):
    """Run as the docs have it (python cluster/local_cluster.py, from the checkout), the commands it
    prints name the script by its absolute path: the relative one failed from any other folder."""
    folder = Path(tempfile.mkdtemp(prefix="dnc-", dir="/tmp"))  # short: start checks Ray's socket paths
    try:
        (folder / "cluster.json").write_text(json.dumps({"nodes": []}))  # a cluster recorded there
        refused = subprocess.run([sys.executable, "cluster/local_cluster.py", "start", "--dir", folder], cwd=REPO,
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2
        stop = re.fullmatch(r"local_cluster: \S+ already holds a cluster \(stop it first: (.+)\)\n",
                            refused.stderr).group(1)
        assert shlex.split(stop) == [sys.executable, str(SCRIPT), "stop", "--dir", str(folder)]
        stopped = subprocess.run(shlex.split(stop), cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.startswith(f"stopped the Ray cluster recorded in {folder}: ")
        assert not (folder / "cluster.json").exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_local_cluster_stop_piped_to_a_reader_that_went_away_ends_quietly(tmp_path):
    """`local_cluster.py stop | head -1` stopped the cluster, then printed a BrokenPipeError's
    traceback (a cluster audit)."""
    (tmp_path / "cluster.json").write_text(json.dumps({"nodes": []}))
    done = subprocess.run(["bash", "-c", f'"$0" {shlex.quote(str(SCRIPT))} stop --dir {shlex.quote(str(tmp_path))} '
                                         f'| (exec 0<&-; sleep 0); echo "status ${{PIPESTATUS[0]}}" >&2',
                           sys.executable], capture_output=True, text=True, timeout=60)
    assert done.stderr == "status 0\n" and not (tmp_path / "cluster.json").exists()


def test_local_cluster_takes_a_relative_dir_as_the_folder_it_names_from_here():
    """A relative --dir went to Ray as its --temp-dir, which Ray refuses: the head node failed three
    times with "temp_dir must be absolute path or None"."""
    here = Path(tempfile.mkdtemp(prefix="dnc-", dir="/tmp"))  # short: start checks Ray's socket paths
    try:
        (here / "c").mkdir()
        (here / "c" / "cluster.json").write_text(json.dumps({"nodes": []}))
        refused = subprocess.run([sys.executable, SCRIPT, "start", "--dir", "c"], cwd=here, capture_output=True,
                                 text=True, timeout=60)
        assert refused.returncode == 2
        assert refused.stderr == (f"local_cluster: {here / 'c'} already holds a cluster (stop it first: "
                                  f"{shlex.join([sys.executable, str(SCRIPT), 'stop', '--dir', str(here / 'c')])})\n")
    finally:
        shutil.rmtree(here, ignore_errors=True)
    assert runpy.run_path(str(SCRIPT))["_absolute_folder"]("~/c") == Path.home() / "c"


def test_local_cluster_env_exports_what_a_shell_evaluates_to_the_recorded_values():
    """A --dir with a space in it: `eval "$(local_cluster.py env)"` set RAY_AUTH_TOKEN_PATH to the
    path up to the space, and bash said "export: `p/auth_token': not a valid identifier"."""
    folder = Path(tempfile.mkdtemp(prefix="dnc- ", dir="/tmp"))
    try:
        state = {"gcs_address": "127.0.0.1:6379", "dashboard_url": "http://127.0.0.1:8265",
                 "auth_token_path": str(folder / "auth_token"), "nodes": []}
        (folder / "cluster.json").write_text(json.dumps(state))
        shell = (f"eval \"$({shlex.join([sys.executable, str(SCRIPT), 'env', '--dir', str(folder)])})\" && "
                 f"printf '%s\\n' \"$RAY_AUTH_MODE\" \"$RAY_ADDRESS\" \"$RAY_API_SERVER_ADDRESS\" \"$RAY_AUTH_TOKEN_PATH\"")
        done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
        assert done.stderr == ""
        assert done.stdout.splitlines() == ["token", "127.0.0.1:6379", "http://127.0.0.1:8265", str(folder / "auth_token")]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_local_cluster_says_where_its_processes_and_logs_are_and_what_it_stopped():
    local_cluster_script = runpy.run_path(str(SCRIPT))
    nodes = [{"name": "head", "pid": 101, "log": "/c/head.log"},
             {"name": "worker-1", "pid": 102, "log": "/c/worker-1.log"}]
    state = {"gcs_address": "127.0.0.1:6379", "dashboard_url": "http://127.0.0.1:8265", "nodes": nodes}
    started = local_cluster_script["started_report"](state, Path("/c")).splitlines()
    assert started[:3] == ["Ray cluster of 2 nodes: GCS 127.0.0.1:6379, dashboard and Jobs API http://127.0.0.1:8265",
                           "  head      pid 101  log /c/head.log", "  worker-1  pid 102  log /c/worker-1.log"]
    assert started[3] == "recorded in /c/cluster.json; Ray's own logs in /c/ray/session_latest/logs"
    assert local_cluster_script["stopped_report"](nodes, Path("/c")) == (
        "stopped the Ray cluster recorded in /c: head (pid 101), worker-1 (pid 102)\n"
        "a shell that ran env still points at it (distnet train would try to join it, distnet submit send jobs "
        "to it): "
        "unset RAY_ADDRESS RAY_API_SERVER_ADDRESS RAY_AUTH_TOKEN_PATH")


def test_cluster_launcher_config_is_valid_and_installs_the_project_with_token_authentication():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster" / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` checks before it starts anything
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "~/distnet" in setup
    for start in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("RAY_AUTH_MODE=token" in command and "ray start" in command for command in config[start])
    assert "~/.ray/auth_token" in config["file_mounts"]
    # What pip install ~/distnet reads, and no more (`ray up` hashed and copied the whole checkout,
    # its virtual environment included): the project file, the readme it names, the package.
    readme = re.search(r'^readme = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    needed = {"pyproject.toml", readme, "distnet"}
    assert {target: source for target, source in config["file_mounts"].items() if target.startswith("~/distnet/")} \
        == {f"~/distnet/{name}": f"./{name}" for name in needed}


def test_clusters_started_here_free_objects_as_an_embedded_ray_does():
    from distnet.distributed.local_ray import SYSTEM_CONFIG

    assert runpy.run_path(str(SCRIPT))["RAY_SYSTEM_CONFIG"] == SYSTEM_CONFIG
    exports = [f"RAY_{key}={value}" for key, value in SYSTEM_CONFIG.items()]
    config = yaml.safe_load((REPO / "cluster" / "cluster.yaml").read_text())
    for start in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any(all(e in command for e in exports) and "ray start" in command for command in config[start])


@pytest.mark.parametrize("limited", [False, True], ids=["no limit", "ulimit -f"])
def test_a_ray_that_does_not_start_here_is_one_error_that_names_what_stopped_it(monkeypatch, limited):
    # What ray.init raises when its processes die at start (a raylet killed by SIGXFSZ as it made
    # its object store's file, under a shell's ulimit -f): a bare Exception, shown as a traceback.
    import resource

    from distnet.distributed import local_ray
    from distnet.errors import RayFailedError

    def died(**options):
        raise Exception("The current node timed out during startup. This could happen because some of the raylet "
                        "failed to startup or the GCS has become overloaded.\nmore lines")

    monkeypatch.setattr(local_ray.ray, "init", died)
    limit = 1_024_000 if limited else resource.RLIM_INFINITY
    monkeypatch.setattr(local_ray.resource, "getrlimit", lambda which: (limit, resource.RLIM_INFINITY))
    with pytest.raises(RayFailedError) as caught:
        local_ray.start()
    limit_note = ("; this shell limits the size of the files a process writes to 1024000 bytes (ulimit -f), and Ray "
                  "keeps its object store in one file of several GB, which that limit kills it for: raise it "
                  "(ulimit -f unlimited)") if limited else ""
    assert str(caught.value) == ("Ray did not start on this machine (The current node timed out during startup. This "
                                 "could happen because some of the raylet failed to startup or the GCS has become "
                                 f"overloaded.){limit_note}; or train in this process (--workers 0, or a Trainer in "
                                 "Python)")
    monkeypatch.setattr(local_ray.resource, "getrlimit", lambda which: (2**50, resource.RLIM_INFINITY))
    with pytest.raises(RayFailedError) as caught:  # a limit beyond any object store is not what stopped Ray
        local_ray.start()
    assert "ulimit" not in str(caught.value)

    def refused(**options):
        raise TypeError("init() got an unexpected keyword argument 'num_cpu'")

    monkeypatch.setattr(local_ray.ray, "init", refused)
    with pytest.raises(TypeError, match="num_cpu"):  # a wrong option is distnet's mistake, not Ray failing to start
        local_ray.start(num_cpu=2)


def test_clusters_started_here_give_a_stopped_job_time_to_say_how_to_resume():
    """Ray kills a stopped job's driver 3 s after its SIGTERM by default: too soon, on a busy
    machine, for it to let go of its actors and print the resume command (see the stopped job's
    test above, which runs on such a cluster)."""
    wait = runpy.run_path(str(SCRIPT))["JOB_STOP_WAIT_SECONDS"]
    config = yaml.safe_load((REPO / "cluster" / "cluster.yaml").read_text())
    assert wait > 3
    for start in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any(f"RAY_JOB_STOP_WAIT_TIME_S={wait};" in command for command in config[start])


LOSE_A_NODE = """
import json, os, signal, sys
import numpy as np
import ray
from distnet import Dense, Nesterov, Network, load_mnist
from distnet.chunk_sizer import ChunkSizer
from distnet.distributed import DistributedTrainer
from distnet.progress import Reporter

ChunkSizer.CHUNK_SECONDS = 0.0  # chunks of a tenth of an epoch: the node goes down mid-epoch
splits = load_mnist(download=False)
train, validation = splits.train.subset(slice(0, 3000)), splits.validation.subset(slice(0, 500))


def trainer():
    network = Network([Dense(16, "leaky_relu"), Dense(10, "softmax")], input_size=784, seed=4, dtype=np.float64)
    return DistributedTrainer(network, Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=2, workers=2,
                              placement_timeout=120, max_failures=10)


class LoseANode(Reporter):
    # At epoch 2, step 40: SIGKILL to every process of the node of a worker (not the driver's).
    def __init__(self, trainer):
        self.trainer, self.lost = trainer, None

    def on_steps(self, epoch, step, steps, stats, seconds):
        if self.lost or (epoch, step) < (2, 40):
            return
        here = ray.get_runtime_context().get_node_id()
        self.lost = next(p for p in self.trainer.placement if p["node_id"] != here)
        # A Ray worker is a child of its node's raylet, whose process group is the whole node.
        raylet = int(open(f"/proc/{self.lost['pid']}/stat").read().rsplit(")", 1)[1].split()[1])
        os.killpg(os.getpgid(raylet), signal.SIGKILL)


ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR")
whole, lossy = trainer(), trainer()
whole_result = whole.fit(train, validation, epochs=3, eval_every=1, run_dir=os.path.join(sys.argv[1], "whole"))
killer = LoseANode(lossy)
lossy_result = lossy.fit(train, validation, epochs=3, eval_every=1, run_dir=os.path.join(sys.argv[1], "lossy"),
                         reporter=killer)
from ray.util.state import list_actors
drivers_side = [a["node_id"] == ray.get_runtime_context().get_node_id() for a in list_actors(detail=True, limit=1000)
                if a["class_name"] in ("ParameterServer", "StopEvaluatorActor")]
print(json.dumps({"same_params": bool(np.array_equal(whole.network.params, lossy.network.params)),
                  "servers_and_stop_evaluators_on_the_drivers_node": drivers_side,
                  "same_history": [h["validation_error"] for h in whole_result.history] ==
                                  [h["validation_error"] for h in lossy_result.history],
                  "lost": killer.lost, "failures": lossy.failures, "placement": lossy.placement}))
"""


@pytest.fixture(scope="module")
def three_nodes():
    """A head and two worker nodes: room to move a worker when one node is lost."""
    yield from local_cluster(2)


@pytest.mark.slow
def test_losing_a_whole_node_mid_epoch_ends_exactly_like_an_uninterrupted_run(three_nodes):
    """Every process of a worker's node killed at once (raylet included): Ray marks the node dead,
    the worker is started again elsewhere, counted as one failure, and the run ends with the
    parameters of a run that lost nothing."""
    done = subprocess.run([sys.executable, "-c", LOSE_A_NODE, str(three_nodes.folder / "runs")],
                          env={**three_nodes.env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["lost"] is not None
    assert result["same_params"] and result["same_history"]
    # One loss, one failure: not one more for a replacement started on the node before Ray
    # declared it dead, nor for a stop evaluator that Ray put there.
    assert len(result["failures"]) == 1 and result["failures"][0].startswith(
        f"worker {result['lost']['worker']} (pid {result['lost']['pid']}) lost in epoch 2")
    # Where the driver reads best.npz and the checkpoints (on a real cluster, its own disk).
    assert result["servers_and_stop_evaluators_on_the_drivers_node"] == [True] * 4
    assert result["lost"]["node_id"] not in {p["node_id"] for p in result["placement"]}  # moved elsewhere
