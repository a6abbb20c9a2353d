#!/usr/bin/env python3
"""A Ray cluster of several nodes on this one machine, for development and tests.

    python cluster/local_cluster.py start [--workers 1] [--cpus 1] [--dir /tmp/distnet-cluster]
    eval "$(python cluster/local_cluster.py env)"     # this shell now talks to it
    python cluster/local_cluster.py stop

``start`` starts a head node and ``--workers`` worker nodes with ``ray start --block``, each in a
process group of its own, all given 127.0.0.1 as their address and token authentication
(``RAY_AUTH_MODE=token``) with one token: ``$RAY_AUTH_TOKEN`` when set, otherwise a new random
token in DIR/auth_token (kept for the next start). Every port is a free one chosen at start (two
nodes on one machine would otherwise collide on Ray's fixed defaults); the head counts as started
once its dashboard answers, and is started again with other ports if it does not (a port taken by
another process as it started leaves it without one). The cluster's addresses,
process ids and logs are recorded in DIR/cluster.json; ``env`` prints the shell exports for it
and ``stop`` ends exactly the processes it started: never ``ray stop``, which would end every Ray
on the machine.

Ray 2.60 replaces a node address of 127.0.0.1 by the machine's own IP and listens on all
interfaces for its internal ports; the token is what keeps others out. The dashboard and its
Jobs API listen on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import shlex
import sys
import threading
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

HOST = "127.0.0.1"
# As for a Ray that distnet starts (distnet/distributed/local_ray.py, which says why):
# objects freed every 10 ms rather than once a second keep `plain` workers' memory down.
RAY_SYSTEM_CONFIG = {"free_objects_period_milliseconds": 10}
# How long a stopped job's driver has after SIGTERM (Ray's default: 3 s) to let go of its actors
# and print how to resume before Ray kills it; on a busy machine that takes longer than 3 s.
JOB_STOP_WAIT_SECONDS = 30
# How long stop waits for the processes it sent SIGKILL to to be gone (they go within milliseconds,
# once the kernel runs them).
KILLED_WAIT_SECONDS = 10
DEFAULT_DIR = Path("/tmp/distnet-cluster")
STARTED = "Ray runtime started"
# Ray puts unix sockets at DIR/ray/session_<date>_<pid>/sockets/plasma_store; a socket path
# may have at most 107 characters.
_SESSION_SUFFIX = len("/ray/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store")
_NODE_PORTS = ("--node-manager-port", "--object-manager-port", "--metrics-export-port",
               "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port")


class ClusterError(RuntimeError):
    """What went wrong, said for the person at the terminal."""


class _NoDashboard(ClusterError):
    """A head node that started without a dashboard that answers: one to start again, with other ports."""


def free_ports(count: int) -> list[int]:
    """``count`` different ports that are free on this machine right now."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]


def node_environment(folder: Path) -> dict[str, str]:
    """The environment every node (and every client of the cluster) needs: token authentication
    with this cluster's token."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env["RAY_AUTH_MODE"] = "token"
    if not env.get("RAY_AUTH_TOKEN"):
        token = folder / "auth_token"
        if not token.exists():
            token.touch(mode=0o600)
            token.write_text(secrets.token_hex(32))
        env["RAY_AUTH_TOKEN_PATH"] = str(token)
    return env


def start(folder: Path, workers: int, cpus: int, timeout: float) -> dict:
    if len(str(folder)) + _SESSION_SUFFIX > 107:
        raise ClusterError(f"--dir {folder} is too long for Ray's unix sockets; use a shorter path "
                           f"(at most {107 - _SESSION_SUFFIX} characters), e.g. {DEFAULT_DIR}")
    state_file = folder / "cluster.json"
    if state_file.exists():
        raise ClusterError(f"{folder} already holds a cluster (stop it first: "
                           f"{this_command('stop', folder)})")
    folder.mkdir(parents=True, exist_ok=True)
    env = node_environment(folder)
    # Ray runs a job's entrypoint (`python -m distnet ...`) with the python its node finds on PATH:
    # make that the Python these nodes run on, which has Ray and distnet, also when its virtual
    # environment is not activated (another python fails the job with "No module named ...").
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({f"RAY_{key}": str(value) for key, value in RAY_SYSTEM_CONFIG.items()})
    env["RAY_JOB_STOP_WAIT_TIME_S"] = str(JOB_STOP_WAIT_SECONDS)
    common = ["--block", "--node-ip-address", HOST, "--num-cpus", str(cpus), "--disable-usage-stats",
              "--log-style", "record"]
    addresses = {}

    def head_arguments() -> list[str]:
        gcs_port, dashboard_port, client_port = free_ports(3)
        addresses.update(gcs_address=f"{HOST}:{gcs_port}", dashboard_url=f"http://{HOST}:{dashboard_port}")
        return ["--head", "--port", str(gcs_port), "--dashboard-host", HOST, "--dashboard-port",
                str(dashboard_port), "--ray-client-server-port", str(client_port),
                "--temp-dir", str(folder / "ray"), *common]

    # Every node is in ``nodes`` from the moment its process exists (see _start_node), and stopped
    # whatever ends the start before it is recorded in cluster.json: a Ctrl-C that landed as the
    # head's process was started, or between one node's start and the next, left it running with
    # nothing to stop it by.
    nodes: list[dict] = []
    try:
        _start_node(folder, "head", head_arguments, env, timeout, nodes,
                    ready=lambda node, process: _wait_dashboard(addresses["dashboard_url"], env, node, process,
                                                                timeout))
        for i in range(1, workers + 1):
            _start_node(folder, f"worker-{i}", lambda: ["--address", addresses["gcs_address"], *common], env,
                        timeout, nodes)
        state = {**addresses, "auth_token_path": env.get("RAY_AUTH_TOKEN_PATH"), "nodes": nodes}
        state_file.write_text(json.dumps(state, indent=2) + "\n")
    except BaseException:
        stop_nodes(nodes)
        state_file.unlink(missing_ok=True)  # (one cut short as it was written): no cluster runs
        raise
    return state


def _start_node(folder: Path, name: str, arguments, env: dict, timeout: float, nodes: list[dict],
                attempts: int = 3, ready=None) -> dict:
    """Start one node (``arguments()`` gives its options, with fresh ports each attempt), added to
    ``nodes`` as soon as its process exists (and taken out again if it is stopped here); once it
    says it started, ``ready(node, process)`` (if given) checks that it serves what it must. On a busy
    machine Ray 2.60's raylet can give up on its own agents after a fixed 15 s (ray-project/ray
    issue 65983), so a node that exits during start-up is started again, as is one that ``ready``
    finds without a dashboard (see _wait_dashboard)."""
    for attempt in range(1, attempts + 1):
        command = [sys.executable, "-m", "ray.scripts.scripts", "start", *arguments(),
                   *_node_ports(free_ports(len(_NODE_PORTS)))]
        log = folder / f"{name}.log"
        node = None
        try:
            # A Ctrl-C while the process starts comes once it is known (and can be stopped).
            with _ctrl_c_deferred():
                with open(log, "w") as out:
                    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                               start_new_session=True)
                node = {"name": name, "pid": process.pid, "started": _start_time(process.pid), "log": str(log)}
                nodes.append(node)
            _wait_started(node, process, timeout)
            if ready:
                ready(node, process)
            return node
        except BaseException as e:
            if node is None:  # no process was started
                raise
            interrupted = isinstance(e, KeyboardInterrupt)
            if interrupted:
                print("\nlocal_cluster: interrupted; stopping the nodes started so far", file=sys.stderr)
            # A node still starting does not heed SIGTERM: an interrupted start kills it soon.
            stop_nodes([node], timeout=2.0 if interrupted else 30.0)
            nodes.remove(node)
            no_dashboard = isinstance(e, _NoDashboard)
            if interrupted or attempt == attempts or not (no_dashboard or process.returncode is not None):
                raise
            why = "started without a dashboard that answers" if no_dashboard else "exited during start-up"
            print(f"local_cluster: Ray node {name} {why}; starting it again", file=sys.stderr)


def _node_ports(ports: list[int]) -> list[str]:
    return [part for option, port in zip(_NODE_PORTS, ports) for part in (option, str(port))]


def _wait_started(node: dict, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        log = Path(node["log"]).read_text(errors="replace")
        if STARTED in log:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            why = "exited" if process.returncode is not None else f"did not start within {timeout:g} s"
            tail = "\n".join(log.splitlines()[-15:])
            raise ClusterError(f"Ray node {node['name']} {why}; the end of {node['log']}:\n{tail}")
        time.sleep(0.2)


def _wait_dashboard(url: str, env: dict, node: dict, process: subprocess.Popen, timeout: float) -> None:
    """Wait until the head ``node``'s dashboard answers at ``url``, with the Jobs API that
    ``distnet submit`` and ``ray job submit`` use. Ray 2.60 starts a head whose dashboard port was
    taken meanwhile (by another process, after free_ports chose it) without a dashboard, and still
    says it started; a dashboard that does start may answer only some moments after that."""
    # The Jobs API's own endpoint, the first its clients ask; under token authentication it answers
    # only a request that carries the token (401 without it).
    request = urllib.request.Request(f"{url}/api/version", headers={"Authorization": f"Bearer {_token(env)}"})
    port = url.rsplit(":", 1)[1]
    taken = f"{HOST}:{port} because it's already occupied"  # Ray's log line for it: no need to wait it out
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ClusterError(f"Ray node {node['name']} exited as its dashboard started; see {node['log']}")
        try:
            # Short requests: a port held by a process that does not answer HTTP holds one until its
            # timeout, and the log and the process are looked at between them.
            with urllib.request.urlopen(request, timeout=min(max(deadline - time.monotonic(), 0.1), 5)):
                return
        except (OSError, http.client.HTTPException) as e:  # refused, timed out, an error status, not HTTP
            without = f"Ray node {node['name']} started without a dashboard"
            if taken in Path(node["log"]).read_text(errors="replace"):
                raise _NoDashboard(f"{without}: another process took its port {port} as it started (its log "
                                   f"{node['log']}: Failed to bind to {taken}); start again, which chooses other "
                                   f"ports") from None
            if time.monotonic() > deadline:
                raise _NoDashboard(f"{without}: nothing answered at {url}/api/version within {timeout:g} s ({e}); "
                                   f"see its log {node['log']} (on a busy machine, a dashboard that is slow to "
                                   f"start needs a longer --timeout)") from None
            time.sleep(0.5)


def _token(env: dict) -> str:
    """The cluster's token, where node_environment put it for the nodes."""
    return (env.get("RAY_AUTH_TOKEN") or Path(env["RAY_AUTH_TOKEN_PATH"]).read_text()).strip()


def stop_nodes(nodes: list[dict], timeout: float = 30.0) -> None:
    """End the given nodes: SIGTERM to each ``ray start --block`` (it stops its own Ray processes),
    then, after at most ``timeout`` seconds, SIGKILL to whatever is left of its process group. A
    Ctrl-C meanwhile is held back until they are ended, so that none is left half stopped."""
    with _ctrl_c_deferred():
        _stop_nodes(nodes, timeout)


@contextmanager
def _ctrl_c_deferred():
    """Within the block, Ctrl-C (SIGINT) is held back; one that came is raised at its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if came:
        raise KeyboardInterrupt


def _stop_nodes(nodes: list[dict], timeout: float) -> None:
    nodes = [node for node in nodes if _still_ours(node)]
    for node in nodes:
        _signal_group(node["pid"], signal.SIGTERM, leader_only=True)
    deadline = time.monotonic() + timeout
    for node in nodes:
        while _group_alive(node["pid"]) and not _ended_child(node["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_group(node["pid"], signal.SIGKILL)
    # A process ends on SIGKILL only once it next runs: on a busy machine a node's processes could
    # still be there for a moment after it was sent (seen by pgrep, holding their ports and files)
    # as stop reported them stopped. Wait for them (zombies aside, which hold nothing).
    deadline = time.monotonic() + KILLED_WAIT_SECONDS
    for node in nodes:
        while _group_running(node["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, field 22 of /proc/PID/stat); None if
    no such process runs (or there is no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _still_ours(node: dict) -> bool:
    """Whether ``node``'s process id still names the node this script started. Process ids come
    round again (within minutes on a busy machine): one that now belongs to a process started at
    another time is not ours to signal. With the node's first process gone, the id is still safe as
    its process group's: Linux hands out no id that a living process group has."""
    now = _start_time(node["pid"])
    return now is None or node.get("started") in (None, now)


def _node_running(node: dict) -> bool:
    return _still_ours(node) and _group_alive(node["pid"])


def _signal_group(pgid: int, sig: int, leader_only: bool = False) -> None:
    try:
        if leader_only:
            os.kill(pgid, sig)
        else:
            os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _ended_child(pid: int) -> bool:
    """Whether ``pid`` is a child of this process that has exited (a node of a start that failed or
    was interrupted), left uncollected for its ``Popen``: the kernel counts it in its process group,
    which then never ends by itself."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return False  # not a child of this process (a node that stop ends): its group ends by itself


def _group_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` has not yet exited (zombies, which have, aside). Without
    /proc, whether the group has any process at all."""
    proc = Path("/proc")
    if not proc.is_dir():
        return _group_alive(pgid)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone meanwhile (ESRCH is a ProcessLookupError, an OSError)
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop(folder: Path) -> list[dict]:
    """Stop the cluster recorded in ``folder``; the nodes it had."""
    state_file = folder / "cluster.json"
    if not state_file.exists():
        raise ClusterError(f"no cluster recorded in {folder} (nothing to stop)")
    nodes = json.loads(state_file.read_text())["nodes"]
    for node in nodes:
        node["running"] = _node_running(node)
    stop_nodes(nodes)
    state_file.unlink()
    return nodes


def this_command(action: str, folder: Path) -> str:
    """The shell command that runs ``action`` on the cluster in ``folder``: with this script's
    Python, which has Ray and distnet (``python`` may be another, or none, outside a virtual
    environment that is not activated), and this script's absolute path, so that the command
    works from any folder (``cluster/local_cluster.py`` as typed works only in the checkout)."""
    script = Path(__file__).resolve()
    return " ".join(map(shlex.quote, [sys.executable, str(script), action, "--dir", str(folder)]))


def started_report(state: dict, folder: Path) -> str:
    """What ``start`` tells its user: the addresses, each node's process id and log, where the
    state and Ray's own logs are, and how to use and stop the cluster."""
    width = max(len(node["name"]) for node in state["nodes"])
    nodes = [f"  {node['name']:<{width}}  pid {node['pid']}  log {node['log']}" for node in state["nodes"]]
    return "\n".join([
        f"Ray cluster of {len(nodes)} node{'s' if len(nodes) > 1 else ''}: GCS {state['gcs_address']}, "
        f"dashboard and Jobs API {state['dashboard_url']}", *nodes,
        f"recorded in {folder / 'cluster.json'}; Ray's own logs in {folder / 'ray' / 'session_latest' / 'logs'}",
        f"to use it from a shell: eval \"$({this_command('env', folder)})\"",
        f"to stop it: {this_command('stop', folder)}"])


# What `env` exports that names this cluster (RAY_AUTH_MODE=token is right for any cluster).
CLUSTER_VARIABLES = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN_PATH")


def stopped_report(nodes: list[dict], folder: Path) -> str:
    """What ``stop`` tells its user: which nodes (process groups) it ended, and which had exited
    before (``running`` False)."""
    stopped = ", ".join(f"{node['name']} (pid {node['pid']}{'' if node.get('running', True) else ', had already exited'})"
                        for node in nodes)
    return (f"stopped the Ray cluster recorded in {folder}: {stopped}\n"
            f"a shell that ran env still points at it (distnet train would try to join it, distnet submit "
            f"send jobs to it): "
            f"unset {' '.join(CLUSTER_VARIABLES)}")


def exports(folder: Path) -> str:
    state_file = folder / "cluster.json"
    if not state_file.exists():
        raise ClusterError(f"no cluster recorded in {folder}; start one: {this_command('start', folder)}")
    state = json.loads(state_file.read_text())
    variables = {"RAY_AUTH_MODE": "token", "RAY_ADDRESS": state["gcs_address"],
                 "RAY_API_SERVER_ADDRESS": state["dashboard_url"]}
    if state["auth_token_path"]:
        variables["RAY_AUTH_TOKEN_PATH"] = state["auth_token_path"]
    # Quoted for the shell that evaluates them: a --dir with a space cut the token's path short there.
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in variables.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("start", "start a head and worker nodes"), ("stop", "stop the cluster started here"),
                       ("env", "print the shell exports that point Ray and distnet at the cluster")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--dir", type=_absolute_folder, default=DEFAULT_DIR,
                             help=f"where the cluster keeps its token, state and logs (default: {DEFAULT_DIR})")
        if name == "start":
            command.add_argument("--workers", type=_at_least(0, int), default=1,
                                 help="worker nodes besides the head (default: 1)")
            command.add_argument("--cpus", type=_at_least(1, int), default=1,
                                 help="logical CPUs per node (default: 1)")
            command.add_argument("--timeout", type=_at_least(1, float), default=180,
                                 help="seconds to wait for each node, and for the head's dashboard "
                                      "(default: 180)")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            try:
                state = start(args.dir, args.workers, args.cpus, args.timeout)
            except KeyboardInterrupt:  # start stops what it started before it lets an interruption through
                print("local_cluster: start interrupted; no node is left running", file=sys.stderr)
                return 130
            print(started_report(state, args.dir))
        elif args.command == "stop":
            print(stopped_report(stop(args.dir), args.dir))
        else:
            print(exports(args.dir))
    except ClusterError as e:
        print(f"local_cluster: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # stop ends its nodes first: what may be left is its record of them
        again = "; run stop again to finish" if args.command == "stop" else ""
        print(f"local_cluster: {args.command} interrupted{again}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # its reader went away (`... stop | head -1`) once the work was done
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's flush at exit would fail too)
        return 0
    return 0


def _absolute_folder(text: str) -> Path:
    """An argparse type: the folder ``text`` names, as an absolute path. Ray takes only an absolute
    --temp-dir (a relative --dir failed the head node three times over), and the token's path that
    env exports must name the same file from any folder."""
    return Path(text).expanduser().absolute()


def _at_least(minimum: float, kind: type):
    """An argparse type: a number of ``kind`` that is at least ``minimum``."""
    def number(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value
    return number


if __name__ == "__main__":
    sys.exit(main())
