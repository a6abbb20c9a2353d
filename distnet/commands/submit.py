"""``distnet submit``: run ``distnet train`` as a job on a Ray cluster, through the Ray Jobs API.

The job runs ``cd / && exec python -m distnet train --address auto ...`` with the train options
given here (in the root folder, so that no distnet in the folder the head node's Ray was started
in is imported instead). Its runtime environment carries this very distnet package
(``py_modules``), so the cluster runs the code you submit from, plus DISTNET_DATA_DIR (from this
shell, where set) and any ``--env``, each of which submit names as it submits. The job's driver
runs on the head node: it reads the data there and sends each worker only its shard through
Ray's object store, and it writes the run directory there.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shlex
import signal
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

from ..address import (RAY_RESOLVED, WebServerAddressError, check_reachable, check_web_address, native_stderr_held,
                       token_problem)
from ..data.datasets import DATA_DIR_ENV
from ..errors import ConfigError, DistnetError, first_line
from ..rundir import submit_resume_command
from ..signals import was_terminated
from .common import drop_output, folder
from .train import refuse_run_settings

RUNS_ON_HEAD = "~/distnet-runs"
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The node's own PATH in a value for the job's PATH, as Ray expands it on the node ($PATH or ${PATH}).
_NODE_PATH = re.compile(r"\$(PATH\b|\{PATH\})")
# How Ray's Jobs API records a job whose supervisor actor (which runs the job's command) died.
_SUPERVISOR_DIED = "JOB_SUPERVISOR_ACTOR_DIED"
# Train options that make no sense in a job: the job always joins the cluster it runs on.
_NOT_FORWARDED = {"help", "address"}
# The folder the job's command runs in. Ray runs it in the folder the head node's Ray was started
# in, where `python -m distnet` would import a distnet found there before the one submitted
# (py_modules; Python puts the current folder first on sys.path), and Ray puts the driver's folder
# first on every actor's path too. The root holds no Python package, and the job needs no other:
# every path it is given is absolute or in the head node's home (see _check_paths_on_head).
JOB_FOLDER = "/"
# Where each of the job's environment variables was given, as submit's summary names it.
_FROM_SHELL = "from this shell's environment"
_GIVEN = "--env"

EPILOG = f"""\
examples:
  distnet submit --address http://HEAD:8265 --workers 8 --epochs 30
  distnet submit --env {DATA_DIR_ENV}=/shared/data --run-dir /shared/runs/a --no-wait

With token authentication (RAY_AUTH_MODE=token on the cluster) set RAY_AUTH_MODE=token here too,
and the cluster's token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.
Without --run-dir the run is written on the head node to {RUNS_ON_HEAD}/JOB_ID. Exit status: 0
when the job succeeded, otherwise the job's own exit status (2 for a distnet error; 128 + N for a
training killed by signal N, 137 for SIGKILL; 143 for a job that `ray job stop` stopped), or 1;
while the job runs on, 130 for Ctrl-C, 143 for SIGTERM and 141 for a closed output (this command stopped
following; it names the ray job commands that follow and stop the job); 2 where it was not
submitted, or contact with the cluster was lost.
The job's command (its Ray entrypoint) and the variables passed to it are shown when the job is
submitted; see cluster/README.md."""


def register(subparsers: argparse._SubParsersAction) -> None:
    submit = subparsers.add_parser(
        "submit", parents=[_train_parser()], conflict_handler="resolve", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="run the training as a job on a Ray cluster, follow its logs, exit with its status",
        description=textwrap.fill("Submit `distnet train` with the train options below as a Ray job (Jobs "
                                  "API); the job's runtime environment carries this distnet package. Paths "
                                  "(--data-dir, --run-dir, --resume) are paths on the cluster's head node; one in "
                                  "its home is given quoted, '~/runs/a' (unquoted, this shell puts this machine's "
                                  "home there).",
                                  width=80))  # filled here: the raw formatter (for the epilog) leaves it as given
    submit.add_argument("--run-dir", type=folder,
                        help=f"where to write the run, on the head node (default: {RUNS_ON_HEAD}/JOB_ID)")
    job = submit.add_argument_group("the job")
    job.add_argument("--address", metavar="URL",
                     help="the cluster's Jobs API (dashboard), e.g. http://HEAD:8265 (default: "
                          "$RAY_API_SERVER_ADDRESS, then $RAY_ADDRESS, then a Ray already running on this "
                          "machine; unlike distnet train, submit never starts one)")
    job.add_argument("--job-id", help="the job's submission id (default: distnet-DATE-TIME-RANDOM)")
    job.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                     help=f"an environment variable for the job, repeatable ({DATA_DIR_ENV} is passed on "
                          f"from here when set, as a path on the head node; --env {DATA_DIR_ENV}= passes none)")
    job.add_argument("--no-wait", action="store_true",
                     help="submit, print the job id (and, on stderr, the ray job commands that follow, show and stop "
                          "the job) and return, instead of following the logs")
    submit.set_defaults(handler=run)


def _train_parser() -> argparse.ArgumentParser:
    from . import train

    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    train.register(scratch)
    return scratch.choices["train"]


def train_arguments(args) -> list[str]:
    """The ``distnet train`` options among ``args`` that differ from their defaults, as words."""
    words = []
    for action in _train_parser()._actions:
        if action.dest in _NOT_FORWARDED or not action.option_strings:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            words.append(action.option_strings[0 if value else 1])  # --augment / --no-augment
        elif action.nargs == 0:
            words.append(action.option_strings[-1])
        else:
            words += [action.option_strings[-1], str(value)]
    return words


def job_request(args) -> dict:
    """What to submit: submission id, entrypoint, runtime environment, and where the run goes."""
    job_id = args.job_id or f"distnet-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    if not _JOB_ID.fullmatch(job_id):
        raise ConfigError(f"--job-id {job_id!r}: use letters, digits, '.', '_' and '-' only, starting with a letter "
                          f"or digit")
    if args.resume:
        refuse_run_settings(args)  # here, rather than in a job that fails seconds later
    variables = _job_variables(args)
    paths = {"--run-dir": args.run_dir, "--resume": args.resume, "--data-dir": args.data_dir}
    if DATA_DIR_ENV in variables:
        data_dir, origin = variables[DATA_DIR_ENV]
        paths[f"--env {DATA_DIR_ENV}" if origin == _GIVEN else f"{DATA_DIR_ENV} ({origin})"] = data_dir
    _check_paths_on_head(paths)
    # exec: the job's shell gives way to the training, so that what ends the job's entrypoint (a
    # kill of its process) ends the training, which would otherwise go on out of the job's reach.
    words = ["exec", "python", "-m", "distnet", "train", "--address", "auto", *train_arguments(args)]
    run_dir = args.resume or args.run_dir
    if run_dir is None:
        run_dir = f"{RUNS_ON_HEAD}/{job_id}"
        words += ["--run-dir", run_dir]
    entrypoint = f"cd {JOB_FOLDER} && " + " ".join(_quote_for_head(word) for word in words)
    package = Path(__file__).resolve().parents[1]
    env_vars = {name: value for name, (value, _) in variables.items()}
    runtime_env = {"py_modules": [str(package)], "excludes": ["__pycache__", "*.pyc"], "env_vars": env_vars}
    return {"submission_id": job_id, "entrypoint": entrypoint, "runtime_env": runtime_env,
            "run_dir": str(run_dir), "variables": variables}


def _job_variables(args) -> dict[str, tuple[str, str]]:
    """The job's environment variables, each as (value, where it was given): DISTNET_DATA_DIR from
    this shell's environment where it is set there, then every --env, which wins. The shell's
    DISTNET_DATA_DIR goes along although it names a folder as this machine sees it: the job reads it
    on the head node, which is this machine for a cluster of its own and sees a shared path as this
    one does; submit cannot tell (a dashboard tunnelled to 127.0.0.1 looks local), so it names what
    it passes on, and --env DISTNET_DATA_DIR= passes none."""
    variables = {DATA_DIR_ENV: (os.environ[DATA_DIR_ENV], _FROM_SHELL)} if os.environ.get(DATA_DIR_ENV) else {}
    for pair in args.env:
        name, value = _job_variable(pair)
        variables[name] = (value, _GIVEN)
    return variables


def _environment_summary(variables: dict[str, tuple[str, str]]) -> list[str]:
    """The line of submit's summary that names each of the job's environment variables (see
    :func:`_job_variables`) and where it was given; none where the job gets none from here."""
    named = []
    for name, (value, origin) in variables.items():
        note = origin
        if name == DATA_DIR_ENV and origin == _FROM_SHELL:  # a path of this machine's, perhaps not the head's
            note += f": the job looks there on the head node; --env {DATA_DIR_ENV}= passes none"
        named.append(f"{shlex.quote(f'{name}={value}')} ({note})")
    return [f"environment passed to the job: {', '.join(named)}"] if named else []


def _job_variable(pair: str) -> tuple[str, str]:
    """The name and value of ``pair``, an --env NAME=VALUE; ConfigError for one the job cannot have."""
    name, equals, value = pair.partition("=")
    if not equals or not name:
        raise ConfigError(f"--env {pair!r}: expected NAME=VALUE")
    if not _VARIABLE.fullmatch(name):  # a shell would not take it, nor Ray's job runner pass it on
        raise ConfigError(f"--env {pair!r}: {name!r} is not a variable name (letters, digits and '_', not "
                          f"starting with a digit)")
    if name == "PATH" and not _NODE_PATH.search(value):
        # Without bash there, the job stays PENDING (6 minutes when we tried, on a 1-CPU head node
        # whose next job waited meanwhile) and then fails with "worker startup repeatedly failed".
        raise ConfigError(f"--env {pair!r}: Ray starts the job's own processes with the job's variables and "
                          f"looks for bash on PATH, so a PATH without the head node's own (${{PATH}}) leaves it "
                          f"unable to start the job, which would stay PENDING for minutes and then fail; to put "
                          f"folders first, keep the node's PATH after them: --env "
                          f"{shlex.quote(f'{pair}:${{PATH}}')} (in single quotes: Ray expands ${{PATH}} on the head "
                          f"node)")
    return name, value


def _check_paths_on_head(paths: dict) -> None:
    """ConfigError for a relative path among ``paths`` (by where it was given): the job would take
    it from the folder the head node was started in, which is not this one. ``~/`` stands for the
    head node's home (its shell expands it, and distnet does in DISTNET_DATA_DIR). None and "" are
    no path (an empty DISTNET_DATA_DIR is as good as none to distnet)."""
    for given, path in paths.items():
        if path not in (None, "") and not str(path).startswith("~/") and not Path(path).is_absolute():
            # A shell's DISTNET_DATA_DIR, set for this machine's own runs, need not go to the job at all.
            none = f", or pass none: --env {DATA_DIR_ENV}=" if given.startswith(f"{DATA_DIR_ENV} (") else ""
            raise ConfigError(f"{given} is {str(path)!r}: the job would take this relative path from the folder "
                              f"the cluster's head node was started in; give an absolute path on the head node "
                              f"(or one in its home, ~/...){none}")


def _quote_for_head(word: str) -> str:
    # A leading ~/ stays unquoted, so that the head node's shell expands it to its own home.
    return "~/" + shlex.quote(word[2:]) if word.startswith("~/") else shlex.quote(word)


def run(args: argparse.Namespace) -> int:
    request = job_request(args)
    run_dir = request.pop("run_dir")
    summary = [f"run directory (on the head node): {run_dir}", *_environment_summary(request.pop("variables"))]
    api = _JobsAPI(args.address)
    client = api.client
    # The address, as resolved (from --address or this shell's variables), goes into the job's
    # metadata, for the resume command the job's own log gives: one that works from any shell.
    address = client.get_address()
    metadata = {"distnet": "train", "address": address}
    job_id = api.call(client.submit_job, **request, metadata=metadata)
    print(f"submitted job {job_id} to {address}", f"  {request['entrypoint']}", *summary, sep="\n",
          file=sys.stderr, flush=True)
    if args.no_wait:  # the job id alone left the user to find out how to follow or stop the job
        print(f"job {job_id} runs on without this command: {_job_commands(job_id, address, 'follow it')}",
              file=sys.stderr)
        print(job_id)
        return 0
    resume = _resume_command(address, run_dir, request["runtime_env"]["env_vars"])
    try:
        try:
            asyncio.run(_print_logs(client, job_id, json_lines=args.json))
        except BrokenPipeError:  # this command's reader went away (`distnet submit --json | head -1`)
            drop_output(sys.stdout)
            if not api.call(client.get_job_status, job_id).is_terminal():
                # The job goes on without this command, which exited 0 here, quietly, as if it had
                # succeeded: exit as `distnet train` does for a closed output, saying so.
                print(f"distnet: error: the output was closed (its reader went away), so this command stopped "
                      f"following; job {job_id} goes on. {_job_commands(job_id, address, 'Follow it')}",
                      file=sys.stderr)
                return 128 + signal.SIGPIPE
        status = _wait_for_end(api, job_id)
        if status == "SUCCEEDED":
            return 0
        info = api.call(client.get_job_info, job_id)
    except KeyboardInterrupt:
        print(f"\ndistnet: stopped following; job {job_id} goes on. "
              f"{_job_commands(job_id, address, 'Follow it again')}", file=sys.stderr)
        return 128 + signal.SIGTERM if was_terminated() else 130
    except JobsAPIUnreachable as e:  # the cluster went away while the job ran (or the connection to it)
        raise DistnetError(f"lost contact with the cluster's Jobs API at {address} while following job {job_id} "
                           f"({e.reason}); the job may have ended with the cluster: once the cluster is back, a "
                           f"checkpoint it saved in {run_dir} (on the head node) trains on with: {resume} (a "
                           f"cluster started again may have another address: give --address its address then)") from None
    return _say_how_the_job_ended(job_id, status, info, run_dir, resume)


def _job_commands(job_id: str, address: str, follow: str) -> str:
    """How to follow job ``job_id`` (``follow``: the words that begin the sentence), see its status
    and stop it with Ray's job commands, at the Jobs API at ``address``."""
    return (f"{follow} with `ray job logs --follow {job_id}`, see its status with `ray job status {job_id}`, stop "
            f"it with `ray job stop {job_id}` (each with --address {address})")


def _say_how_the_job_ended(job_id: str, status: str, info, run_dir: str, resume: str) -> int:
    """Say in a line on stderr how job ``job_id`` ended (``status``, not SUCCEEDED; ``info``: its
    JobInfo), with how to train on (``resume``) where the run may have saved a checkpoint in
    ``run_dir``; submit's exit status."""
    code = info.driver_exit_code
    if info.error_type == _SUPERVISOR_DIED:
        # Ray's own account ("Job supervisor actor died", the actor's id, possible causes) says
        # nothing of the training, which Ray's watchdog of the supervisor kills with it.
        why = (f"Ray lost the job's supervisor (the actor that ran the job's command; its process died or was "
               f"killed), which ends the training with it and records no exit status; the run directory {run_dir} "
               f"(on the head node) keeps what the run saved")
        may_have_saved = True
    else:
        # Ray appends the end of the logs, which were just shown.
        why = (info.message or "no reason given").split(", last available logs")[0].splitlines()[0].rstrip(". ")
        # A stopped job, or one whose training was killed (a negative code, or 128 + the signal), may
        # have saved a checkpoint; one that failed otherwise is likelier a mistake to fix.
        may_have_saved = status == "STOPPED" or (code is not None and (code < 0 or code > 128))
    go_on = (f"; if it saved a checkpoint, train on with: {resume}; if it saved none, submit it again as it was "
             f"first submitted") if may_have_saved else ""
    print(f"distnet: job {job_id} {status.lower()}: {why}{go_on}", file=sys.stderr)
    if code:  # a driver killed by a signal has a negative code (as Popen gives it); the shell's 128 + signal
        return 128 - code if code < 0 else code
    # Ray records no exit code for a job it stopped: the status of a terminated distnet train.
    return 128 + signal.SIGTERM if status == "STOPPED" else 1


def _resume_command(address: str | None, run_dir: str, env_vars: dict[str, str]) -> str:
    """The command that submits the run in ``run_dir`` (on the head node) again to the Jobs API at
    ``address``, with the job's environment variables (``env_vars``: the --env given and
    DISTNET_DATA_DIR taken from this shell), so that the command works from another shell too, as
    the job's own advice has them."""
    options = ["--address", address] if address else []
    return submit_resume_command(run_dir, options + [w for name, value in env_vars.items()
                                                     for w in ("--env", f"{name}={value}")])


async def _print_logs(client, job_id: str, json_lines: bool = False) -> None:
    """The job's log as it comes, on stdout; with ``json_lines`` (--json) only its JSON lines (the
    training's events) there and every other line (Ray's, distnet's messages) on stderr, as
    ``distnet train --json`` keeps them apart: the job's log has both of the job's streams."""
    rest = ""
    try:
        async for lines in client.tail_job_logs(job_id):
            if not json_lines:
                print(lines, end="", flush=True)
                continue
            *complete, rest = (rest + lines).split("\n")
            for line in complete:
                print(line, file=sys.stdout if _is_json_object(line) else sys.stderr, flush=True)
    except BrokenPipeError:
        raise  # this command's reader went away (the command line stops quietly)
    except Exception as e:  # the stream broke (the connection, the head): the job's status says how it ends
        print(f"distnet: the job's log stream broke ({type(e).__name__}: {first_line(e)}); waiting for the job "
              f"to end (`ray job logs {job_id}` shows its log)", file=sys.stderr)
    if rest:  # a last line without its newline, as the stream ended or broke
        print(rest, file=sys.stdout if _is_json_object(rest) else sys.stderr, flush=True)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def _wait_for_end(api: _JobsAPI, job_id: str) -> str:
    # The log stream ends with the job; its final status can take a moment to be recorded.
    while not (status := api.call(api.client.get_job_status, job_id)).is_terminal():
        time.sleep(0.5)
    return status.value


@contextmanager
def _only_address(address: str | None):
    # Ray's client prefers $RAY_API_SERVER_ADDRESS and $RAY_ADDRESS over its address argument;
    # an address given on the command line should win.
    if address is None:
        yield
        return
    saved = {name: os.environ.pop(name, None) for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")}
    try:
        yield
    finally:
        os.environ.update({name: value for name, value in saved.items() if value is not None})


def _address_origin(address: str | None) -> str | None:
    """What gives the Jobs API's address: "--address", the variable that holds it, or None (nothing)."""
    if address:
        return "--address"
    return next((name for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS") if os.environ.get(name)), None)


def _address_source(address: str | None) -> str:
    """Where the Jobs API's address comes from, for advice on what to check."""
    origin = _address_origin(address)
    if origin is None:
        return "--address (none was given, so a Ray running on this machine was looked for)"
    return origin if origin == "--address" else f"{origin} (set in this shell; --address wins over it)"


def _check_cluster_address(given: str, origin: str) -> None:
    """ConfigError (ClusterUnreachableError where nothing answers) unless a cluster's GCS answers
    at ``given`` (from ``origin``: --address or a variable), an address without http://, which
    Ray's client takes for a GCS's (where the dashboard answers, it would hang for 40 s)."""
    try:
        check_reachable(given, otherwise=f"; or, for the Jobs API (the dashboard's port, 8265 by default), give it "
                                         f"as http://{given}")
    except WebServerAddressError:  # the Jobs API's port, its http:// left out
        raise ConfigError(f"{origin} {given} is the address of a web server, as the Jobs API's (the dashboard's) "
                          f"is; give it as http://{given}") from None
    except ConfigError:
        raise ConfigError(f"the Jobs API address {given!r} is not http://HOST:PORT (the dashboard's, 8265 by "
                          f"default) or a cluster's HOST:PORT") from None


class _JobsAPI:
    """The Ray Jobs API at the address this command was given (``client``), each call through
    :meth:`call`, which says what goes wrong in one line, with what to check."""

    def __init__(self, address: str | None):
        import logging

        from ray.job_submission import JobSubmissionClient

        # Ray's job client narrates each request, and the packing of the distnet package it
        # uploads, at INFO; this command says what happens itself.
        for name in ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk",
                     "ray._private.runtime_env.packaging"):
            logging.getLogger(name).setLevel(logging.WARNING)
        if address is not None and not address.strip():
            raise ConfigError("--address is empty: give the Jobs API's address, the dashboard's http://HOST:PORT "
                              "(8265 by default)")
        origin = _address_origin(address)
        given = address or (os.environ[origin] if origin else None)
        self._source = _address_source(address)
        if given and given.startswith(("http://", "https://")):
            self.call(check_web_address, given)  # Ray's client would wait on a silent server without end
        elif given and "://" not in given and given not in RAY_RESOLVED:
            _check_cluster_address(given, origin)
        # Found with no address given, the cluster is asked through Ray's native client, whose
        # warnings of a refused token (gcs_client.cc) would come before the one line that says it.
        with _only_address(address), native_stderr_held(drop_if=_refused_for_its_token):
            self.client = self.call(JobSubmissionClient, address)

    def call(self, function, *args, **kwargs):
        """``function(*args, **kwargs)``, a call of the Jobs API; DistnetError if it fails."""
        from ray.exceptions import AuthenticationError, RayError
        from requests.exceptions import RequestException  # not a ConnectionError: the head went away

        try:
            return function(*args, **kwargs)
        except AuthenticationError:
            raise DistnetError(token_problem("the Ray Jobs API")) from None
        except (ConnectionError, RequestException, RuntimeError, ValueError, RayError) as e:
            text = str(e).strip() or type(e).__name__
            if _REFUSAL.match(text):  # the API answered, with its reason last (after any traceback)
                reason = _reason(text)
                hint = _NO_AGENT_HINT if reason.startswith(_NO_AGENT) else ""
                raise DistnetError(f"the Ray Jobs API refused the request: {reason}{hint}") from None
            reason = _innermost_reason(e)
            raise JobsAPIUnreachable(f"the Ray Jobs API refused or could not be reached: {reason}. Is the cluster "
                                     f"running? If it is, check {self._source}: the dashboard's http://HOST:PORT, "
                                     f"8265 by default", reason) from None


def _refused_for_its_token(error: BaseException) -> bool:
    """Whether ``error`` is :meth:`_JobsAPI.call`'s for a token the cluster refused."""
    from ray.exceptions import AuthenticationError

    return isinstance(error, DistnetError) and isinstance(error.__context__, AuthenticationError)


class JobsAPIUnreachable(DistnetError):
    """The Jobs API could not be reached, or refused without a reason; ``reason``: why, in a few words."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _innermost_reason(error: BaseException) -> str:
    """The first line of the innermost exception among ``error``'s arguments: requests' ('Connection
    aborted.', RemoteDisconnected('Remote end closed connection without response')) gives its last
    part."""
    while error.args and isinstance(error.args[-1], BaseException):
        error = error.args[-1]
    text = str(error).strip() or type(error).__name__
    # requests' account of a refused connection is a paragraph of its own objects, with the system's
    # reason ("[Errno 111] Connection refused") deep inside: that reason says it.
    system = _SYSTEM_REASON.search(text)
    return system.group(1) if system else text.splitlines()[0].rstrip(".")


_SYSTEM_REASON = re.compile(r"\[Errno -?\d+\] ([^\"')]+)")


_REFUSAL = re.compile(r"Request failed with status code \d+: ")
# The Jobs API's refusal where the head node's dashboard agent (which starts every job) never made
# itself known; "try again later" holds only for a cluster that has just started. Seen on a head
# started by hand (default ports) where another Ray on the machine (an embedded one of `distnet
# train`) held the agent's port: its dashboard_agent.log said "address already in use".
_NO_AGENT = "No available agent to submit job"
_NO_AGENT_HINT = ("; the head node's dashboard agent, which starts every job, has not made itself known to the Jobs "
                  "API: where the cluster has just started, try again in a few seconds; otherwise the head node's "
                  "dashboard_agent.log (in its Ray logs, such as /tmp/ray/session_latest/logs) says why, for instance "
                  "'address already in use' where another Ray on that machine holds the agent's port (52365 by "
                  "default): start the head node with --dashboard-agent-listen-port set to a free port")


def _reason(refusal: str) -> str:
    """The reason in a refusal of the Jobs API: its last line of text, without the traceback, the
    status and the exception's name before it."""
    last = [line.strip() for line in refusal.splitlines() if line.strip(" .")][-1]
    return re.sub(r"^\w+(Error|Exception): ", "", _REFUSAL.sub("", last)).rstrip(".")
