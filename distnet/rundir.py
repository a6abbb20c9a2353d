"""The run directory: what a training run leaves on disk.

    config.json           the run's configuration (network, optimizer, data, seed, workers, ...)
    history.jsonl         one JSON line per evaluation
    failures.jsonl        one JSON line per failure of a distributed run (a lost actor), in every
                          session of the run, written as it is found; absent until the first
    best.npz, best.json   the best network so far and when/how good it was (written on every
                          improvement, atomically)
    checkpoint.npz        the newest checkpoint; checkpoint.prev.npz the one before it
    summary.json          written at the end: test error, per-class accuracy, placement, timing,
                          failures (those of failures.jsonl)
"""
from __future__ import annotations

import errno
import json
import os
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: runs are not guarded against a second process
    fcntl = None

from .checkpoint import Checkpoint
from .checks import home_expanded
from .distributed.settings import DEFAULT_MAX_FAILURES
from .errors import ConfigError, DistnetError, ModelFormatError, NewerFormatError, warn
from .io import UNFINISHED_WRITE, atomic_writer, write_json

# What resuming a run needs from config.json (TrainerBase.config() and fit's run settings).
REQUIRED_CONFIG = ("network", "optimizer", "l2", "batch_size", "seed", "workers", "epochs",
                   "eval_every", "window")
# What Ray's job supervisor gives a job's driver: the job's runtime environment and metadata, where
# distnet submit leaves {"distnet": "train"}.
_RAY_JOB_CONFIG = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def shell_path(path: str | os.PathLike) -> str:
    """``path`` as one word of a shell command: quoted, and a relative path that begins with "-"
    behind "./", so that no command takes it for an option."""
    text = str(path)
    return shlex.quote(f"./{text}" if text.startswith("-") else text)


def submit_resume_command(run_dir: str, options: list[str]) -> str:
    """``distnet submit --resume RUN_DIR OPTIONS`` for a shell; a ``~`` stays quoted: the head
    node's home, not this machine's."""
    return " ".join(map(shlex.quote, ["distnet", "submit", "--resume", run_dir, *options]))


def _submit_options() -> list[str] | None:
    """In a job that ``distnet submit`` started, the submit options that reach the same cluster
    with the same environment (the --address submit records in the job's metadata, and each of
    the job's variables as --env); None elsewhere."""
    try:
        job = json.loads(os.environ.get(_RAY_JOB_CONFIG, "{}"))
    except ValueError:
        job = {}
    metadata = (job.get("metadata") or {}) if isinstance(job, dict) else {}
    if "distnet" not in metadata:
        return None
    address = ["--address", metadata["address"]] if isinstance(metadata.get("address"), str) else []
    variables = (job.get("runtime_env") or {}).get("env_vars") or {}
    return address + [word for name, value in variables.items() for word in ("--env", f"{name}={value}")]


def _current_path(folder: int) -> Path | None:
    """Where the open ``folder`` is now (Linux knows, through /proc); None once it was removed, or
    where the system does not say."""
    try:
        where = os.readlink(f"/proc/self/fd/{folder}")
    except OSError:
        return None
    return None if where.endswith(" (deleted)") or not os.path.isdir(where) else Path(where)


# The settings a resume may change that config.json records: their options, and their values where
# it records none.
RESUME_OPTIONS = {"epochs": ("--epochs", None), "checkpoint_every": ("--checkpoint-every", 0),
                   "max_failures": ("--max-failures", DEFAULT_MAX_FAILURES)}


class RunDir:
    """The files of one training run (see the module documentation)."""

    def __init__(self, path: str | os.PathLike):
        self.path = home_expanded(path)  # "~/runs/x" from Python as from a shell
        # Set when load_checkpoint found checkpoint.npz damaged: the next save then replaces it
        # instead of rotating it over the good checkpoint.prev.npz.
        self._newest_damaged = False
        # While held: the open folder, its path as held (absolute: the process may change its working
        # folder) and its (device, inode), to notice it moved away from that path.
        self._held: tuple[int, Path, tuple[int, int]] | None = None
        # Whether fit started the run, as its configuration said when last read or written: the
        # advice for a folder removed while the run trained cannot read it any more.
        self._started_by_fit_as_read: bool | None = None
        # What the resume under way changes of the run's settings (see resumed_start), which
        # config.json records only once the training starts: until then, advice to resume gives them.
        self.resumed_with: dict = {}

    config_path = property(lambda self: self.path / "config.json")
    history_path = property(lambda self: self.path / "history.jsonl")
    failures_path = property(lambda self: self.path / "failures.jsonl")
    best_path = property(lambda self: self.path / "best.npz")
    checkpoint_path = property(lambda self: self.path / "checkpoint.npz")
    previous_checkpoint_path = property(lambda self: self.path / "checkpoint.prev.npz")
    summary_path = property(lambda self: self.path / "summary.json")

    def holds_results(self) -> bool:
        """Whether a run here has saved anything worth keeping: a best network (or its record), a
        checkpoint or a summary.

        A run that failed before it wrote any (bad settings, no room on the cluster, interrupted
        in its first epoch) has not, and its folder may be used again.
        """
        return bool(self._results())

    def _results(self) -> list[Path]:
        return [p for p in (self.best_path, self.best_path.with_suffix(".json"), self.checkpoint_path,
                            self.previous_checkpoint_path, self.summary_path) if p.exists()]

    def has_checkpoint(self) -> bool:
        """Whether a checkpoint to resume from was written (it may still prove damaged)."""
        return self.checkpoint_path.exists() or self.previous_checkpoint_path.exists()

    def no_best_network(self) -> str:
        """What to say of this run directory when it has no best.npz, and how to get one."""
        if self.in_use():  # a resume would be refused: the run is training
            return (f"{self.path} has no best network (best.npz) yet: another process is training this run, and "
                    f"writes it at the run's first evaluation; try again then")
        advice = (f"resume it to get one (from its checkpoint if it had ended): {self.resume_command()}"
                  if self.has_checkpoint() else
                  f"it stopped before its first checkpoint, so there is nothing to resume: train it anew into the "
                  f"same folder: {self.start_again_command()}")
        return f"{self.path} has no best network (best.npz): none yet, or the file was removed; {advice}"

    def set_aside_best(self) -> Path:
        """Move best.npz (and best.json) to a name of their own, ``best-before-resume[-N].npz``, the
        first free one: where the run is to write another best network over one worth keeping."""
        number = 1
        while (kept := self.path / f"best-before-resume{f'-{number}' if number > 1 else ''}.npz").exists():
            number += 1
        record = self.best_path.with_suffix(".json")
        if record.exists():
            os.replace(record, kept.with_suffix(".json"))
        os.replace(self.best_path, kept)
        return kept

    def check_resumable(self) -> None:
        """ConfigError unless the run here can be resumed now: it has a checkpoint, and no other
        process is training it."""
        with self.held(create=False):  # "in use" first: that run cannot be resumed now anyway
            self.check_has_checkpoint()

    def check_has_checkpoint(self) -> None:
        """ConfigError, saying why, unless this is a run directory with a checkpoint to resume from."""
        if not self.has_checkpoint():
            if not self.path.is_dir():
                what = "is a file" if self.path.exists() else "does not exist"
                raise ConfigError(f"{self.path} {what}; expected the folder of a run to resume")
            if self.best_path.exists():  # stopped between its first best network and its first checkpoint
                raise ConfigError(f"{self.path} has no checkpoint to resume from, only the best network "
                                  f"{self.best_path.name}; start a new run in another run directory (or move "
                                  f"{self.best_path.name} and {self.best_path.with_suffix('.json').name} away "
                                  f"and start again here)")
            raise ConfigError(f"{self.path} has no checkpoint to resume from (none was written yet, "
                              f"or they were removed); start the run again: {self.start_again_command()}")

    def resume_command(self, workers: int | None = None, at: str | None = None, address: str | None = None,
                       settings: dict | None = None) -> str:
        """The command that continues this run (on ``workers`` workers, if given; with ``at``, a
        placeholder such as NEW_PATH, for its path): ``distnet submit --resume`` in a job that
        ``distnet submit`` started (the job is resubmitted from where it was submitted, with the
        head's path), the call to ``fit`` for a run that ``fit`` started (on data of its own, which
        the command line could not give it), else ``distnet train --resume``, joining the cluster at
        ``address`` if given (a resume without it would start a Ray of its own). With those of the
        ``settings`` a resume was given (and of :attr:`resumed_with`) that config.json does not
        record yet: epochs, checkpoint_every, max_failures."""
        asked = self._not_recorded({**self.resumed_with, **(settings or {})}, workers)
        if self.started_by_fit():
            call = "".join(f", {key}={asked[key]}" for key in ("epochs", "checkpoint_every") if key in asked)
            trainer = {"workers": workers, "max_failures": asked.get("max_failures")}  # the trainer's settings
            told = ", ".join(f"{key}={value}" for key, value in trainer.items() if value is not None)
            return (f"fit(train, validation, run_dir={at or str(self.path)!r}, resume=True{call}) in Python on the "
                    f"run's data{f', with {told}' if told else ''}")
        options = _submit_options()
        more = ["--workers", str(workers)] if workers is not None else []
        more += [word for key, value in asked.items() for word in (RESUME_OPTIONS[key][0], str(value))]
        if options is None:
            more += ["--address", shlex.quote(address)] if address is not None else []
            return " ".join(["distnet train --resume", at or shell_path(self.path), *more])
        return submit_resume_command(at or str(self.path), options + more)

    def _not_recorded(self, settings: dict, workers: int | None) -> dict:
        """Those of ``settings`` that a resume may change whose values config.json does not record
        (a run of an older version recorded no checkpoint interval or max_failures: its defaults);
        not max_failures where the resume goes on in one process (on ``workers`` 0, or on the run's
        own, in one process), which has no failures to recover from."""
        try:
            config = self.config()
        except DistnetError:  # no configuration to compare with: all of them
            config = {}
        in_one_process = workers == 0 or workers is None and "workers" in config and config.get("protocol") is None
        return {key: value for key, value in settings.items()
                if key in RESUME_OPTIONS and config.get(key, RESUME_OPTIONS[key][1]) != value
                and not (key == "max_failures" and in_one_process)}

    def started_by_fit(self) -> bool:
        """Whether ``fit`` started this run from Python: its config.json names no data set, which
        the command line records."""
        try:
            self.config()
        except DistnetError:  # no readable configuration: the command line's advice stands, unless read before
            pass
        return bool(self._started_by_fit_as_read)

    def start_again_command(self, words: list[str] | None = None) -> str:
        """The command that trains a run anew into this folder (one that ended before its first
        checkpoint), ``...`` standing for the run's own options: ``distnet submit --run-dir`` in a
        job that ``distnet submit`` started, the call to ``fit`` for a run that ``fit`` started, else
        ``distnet train --run-dir``; or, given the ``words`` of the ``distnet train`` that started
        it here, that command itself."""
        if self.started_by_fit():
            return f"fit(train, validation, run_dir={str(self.path)!r}, ...) in Python"
        options = _submit_options()
        if options is None and words is not None:
            return shlex.join(["distnet", *words])
        command = "distnet train" if options is None else "distnet submit"
        return " ".join([command, "--run-dir", shell_path(self.path), *map(shlex.quote, options or [])]) + " ..."

    def in_use(self) -> bool:
        """Whether another process holds this run directory (see :meth:`held`): it is training."""
        if fcntl is None or not self.path.is_dir() or self._held is not None:
            return False
        folder = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_SH | fcntl.LOCK_NB)  # (released as the folder is closed)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(folder)

    @contextmanager
    def held(self, create: bool) -> Iterator[None]:
        """Hold this run directory for the training in this process (creating the folder first if
        ``create``): a second process that tries the same (a resume of the run while it still
        trains, a new run into its folder) gets a ConfigError instead of mixing its checkpoints
        and history with this one's. The hold is an advisory lock on the folder itself, which the
        system drops when the process ends, however it ends. A folder that does not exist is not
        held (a resume then says that it is not a run directory). The folder itself, when this
        call created it, is removed again if the block fails before the run saved anything in it
        (see :meth:`remove_if_unstarted`: Ray could not be joined, the workers found no room, the
        run was stopped in its first epoch); folders above it that were created stay."""
        created = self.make_folder() if create else False
        folder = self._open_folder() if fcntl is not None else None
        held = False
        try:
            if folder is not None:
                try:
                    fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ConfigError(f"{self.path} is in use: another process is training this run; wait "
                                      f"for it to end (or stop it), or choose another run directory") from None
            held = True
            if folder is not None:
                here = os.fstat(folder)
                self._held = (folder, self.path.absolute(), (here.st_dev, here.st_ino))
            yield
        except BaseException:
            if created and held:  # (not held: another process made it its own in between)
                self.remove_if_unstarted()
            raise
        finally:
            self._held = None
            if folder is not None:
                os.close(folder)

    def _open_folder(self) -> int | None:
        """The folder opened (a descriptor to hold it by), or None where there is no folder;
        ConfigError where its path cannot name one (a name too long, say)."""
        try:
            return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise self._cannot_create(e) from None

    def remove_if_unstarted(self) -> None:
        """Remove the folder of a new run that saved nothing in it: the folder holds nothing but
        the config.json and the empty history.jsonl that :meth:`create` wrote, or nothing at all.
        Only for a folder the failed run made itself (nothing in it can be another's)."""
        with suppress(OSError):  # anything else in it, or a history written: it stays as it is
            if {p.name for p in self.path.iterdir()} <= {self.config_path.name, self.history_path.name} and \
                    not (self.history_path.exists() and self.history_path.stat().st_size):
                self.config_path.unlink(missing_ok=True)
                self.history_path.unlink(missing_ok=True)
                self.path.rmdir()

    def check_in_place(self) -> None:
        """ConfigError unless the folder is still at its path (and, while held, is the folder held):
        a run whose folder was moved or removed while it trained would otherwise write the rest of
        it into a new folder of that name, one without its configuration and its history so far."""
        if self._held is None:
            if not self.path.is_dir():
                raise ConfigError(f"the run directory {self.path} is gone (moved or removed); nothing more was "
                                  f"written: put it back to keep the run's results together")
            return
        folder, path, identity = self._held
        with suppress(OSError):
            here = os.stat(path)
            if (here.st_dev, here.st_ino) == identity:
                return
        now = _current_path(folder)
        if now is None:  # removed, or moved to another file system (a copy, then a removal), or no /proc
            raise ConfigError(f"the run directory {self.path} was moved or removed while the run trained, so the run "
                              f"stops here; if it was moved, continue it where it is now: "
                              f"{self.resume_command(at='NEW_PATH')}")
        raise ConfigError(f"the run directory {self.path} was moved to {now} while the run trained, so the run stops "
                          f"here, with its files there; continue it from there: "
                          f"{RunDir(now).resume_command()}")

    def check_new(self) -> None:
        """ConfigError if a new run here would mix with a run that another process trains, or
        overwrite the results of an earlier one. For a process that does not hold the folder yet:
        :meth:`create` checks the results again under the hold."""
        with self.held(create=False):  # "in use" comes first: that run cannot be resumed now either
            self._check_no_results()

    def _check_no_results(self) -> None:
        if self.config_path.exists():
            try:
                self.config()
            except ModelFormatError as e:
                raise ConfigError(f"{self.path} holds a config.json that is not a distnet run's ({e}); a new run "
                                  f"would overwrite it: choose another run directory") from None
        if self.holds_results():
            if self.config_path.exists() and self.has_checkpoint():
                python = "" if self.started_by_fit() else "; in Python fit(..., resume=True)"
                raise ConfigError(f"{self.path} already holds a run; continue it ({self.resume_command()}{python}), "
                                  f"or choose another run directory")
            found = ", ".join(p.name for p in self._results())
            lacking = "config.json" if not self.config_path.exists() else "checkpoint"
            raise ConfigError(f"{self.path} holds {found} but no {lacking}, so it cannot be resumed, and a new run "
                              f"would overwrite what it holds; choose another run directory, or move those files away")
        strays = [f"a {p.name}" for p in (self.history_path, self.failures_path) if p.exists()]
        if strays and not self.config_path.exists():
            raise ConfigError(f"{self.path} holds {' and '.join(strays)} but no config.json, so not a distnet run; "
                              f"a new run would overwrite {'them' if len(strays) > 1 else 'it'}: choose another "
                              f"run directory")

    def create(self, config: dict) -> None:
        """Start a new run here; refuses a folder whose run has saved results (see check_new)."""
        self._check_no_results()
        self.make_folder()
        try:
            self.remove_unfinished_writes()  # of a run killed here before its first checkpoint
            write_json(self.config_path, config)
            self._started_by_fit_as_read = "dataset" not in config
            self.history_path.write_text("")
            self.failures_path.unlink(missing_ok=True)  # those of a run that failed here before it saved anything
        except OSError as e:
            raise self._cannot_create(e) from None

    def update_config(self, changes: dict) -> None:
        """Record ``changes`` to the run's configuration (a resume to a new total of epochs, with
        another checkpoint interval or number of workers), for the resumes after it."""
        self.check_in_place()
        write_json(self.config_path, {**self.config(), **changes})

    def make_folder(self) -> bool:
        """Create the folder (and the folders above it) unless it exists; whether this call created
        it. ConfigError, saying what is in the way, where it cannot be made."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir()
            return True
        except FileExistsError as e:
            if not self.path.is_dir():
                raise self._cannot_create(e) from None
            return False
        except OSError as e:
            raise self._cannot_create(e) from None

    def _cannot_create(self, error: OSError) -> ConfigError:
        if error.errno == errno.ENAMETOOLONG:  # (where every look at the path fails the same way)
            longest = max(len(os.fsencode(part)) for part in self.path.parts)
            size = len(os.fsencode(self.path))
            what = (f"a name in it of {longest} bytes, where a file system takes 255 at most" if longest > 255 else
                    f"{size} bytes in all, where a path takes 4,096 at most" if size > 4096 else
                    f"a name in it of {longest} bytes, more than this file system takes")
            return ConfigError(f"cannot create the run directory {self.path} ({error.strerror}: {what}); choose a "
                               f"shorter run directory")
        # "File exists" for a/b/run would leave the user looking for a/b/run, not the file a or a/b.
        file = next((p for p in (self.path, *self.path.parents) if p.exists() and not p.is_dir()), None)
        dangling = next((p for p in (self.path, *self.path.parents) if p.is_symlink() and not p.exists()), None)
        if file is not None:
            reason = f"{file} is a file, not a folder"
        elif dangling is not None:
            reason = f"{dangling} is a symbolic link to {os.readlink(dangling)}, which does not exist"
        else:
            reason = error.strerror
        return ConfigError(f"cannot create the run directory {self.path} ({reason}); choose another run directory")

    def config(self) -> dict:
        """The run's configuration, as written by :meth:`create`."""
        try:
            config = json.loads(self.config_path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            if not self.path.exists():
                raise ConfigError(f"{self.path} does not exist; expected the folder of a run that "
                                  f"distnet train wrote") from None
            what = "a file, not a folder" if self.path.is_file() else "no config.json"
            if self.path.is_file() and (self.path.parent / "config.json").is_file():  # a run's best.npz, say
                raise ConfigError(f"{self.path} is a file of the run in {self.path.parent}, not a run directory; "
                                  f"give the run's folder, {self.path.parent}") from None
            if self.has_checkpoint():  # a run's folder that lost its configuration
                raise ConfigError(f"{self.path} has checkpoints but no config.json (removed?): put it back from "
                                  f"a copy to resume the run{self._best_without_config('; ')}") from None
            raise ConfigError(f"{self.path} is not a run directory ({what}); expected the folder "
                              f"of a run that distnet train wrote") from None
        except OSError as e:
            if e.errno == errno.ELOOP:  # the folder (or a link above it) leads back to itself
                raise ConfigError(f"{self.path} is a symbolic link that leads round in a loop ({e.strerror}); "
                                  f"give the run directory itself") from None
            raise ModelFormatError(f"{self.config_path}: not readable ({e.strerror}); {self._config_fix()}") from None
        except (ValueError, RecursionError) as e:
            raise ModelFormatError(f"{self.config_path}: not readable as JSON ({e}); {self._config_fix()}") from None
        missing = [key for key in REQUIRED_CONFIG if not isinstance(config, dict) or key not in config]
        if missing:
            raise ModelFormatError(f"{self.config_path}: not a run configuration (missing {', '.join(missing)})")
        self._started_by_fit_as_read = "dataset" not in config
        return config

    def hand_edited_config(self, error: ConfigError) -> ModelFormatError:
        """The error for a value of config.json that ``error`` refuses: one distnet does not write
        (a hand edit), to be corrected in the file."""
        return ModelFormatError(f"{self.config_path}: {error}, which distnet does not write; correct it, or start a "
                                f"new run")

    def _config_fix(self) -> str:
        """How to go on from a config.json that cannot be read."""
        best = self._best_without_config("")
        return f"put it back from a copy to resume the run{f' ({best})' if best else ''}"

    def _best_without_config(self, before: str) -> str:
        """That the run's best network loads without its config.json, after ``before``; "" for a run
        that has none yet."""
        return f"{before}its best network, {self.best_path.name}, loads without it" if self.best_path.exists() else ""

    def append_history(self, record: dict) -> None:
        """Add one evaluation's record to history.jsonl (one JSON object per line)."""
        self.check_in_place()
        try:
            with open(self.history_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:  # a full disk fails the write at the file's close, with no file name
            e.filename = e.filename or str(self.history_path)
            raise

    def append_failure(self, what: str) -> None:
        """Record a failure of the run (what was lost, and when) as it is found, so that the
        summary of whichever session ends the run lists it. The file is rewritten whole and
        atomically (a run has few failures): a crash leaves it with the new line, or as it was."""
        self.check_in_place()
        before = self.failures_path.read_text(errors="replace") if self.failures_path.exists() else ""
        record = {"what": what, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with atomic_writer(self.failures_path, "w") as f:
            f.write(before + json.dumps(record) + "\n")

    def failures(self) -> list[str]:
        """What failed in the run, in every session so far, oldest first (nothing for a run from
        before failures.jsonl was written); a line that is not a record of one (edited by hand)
        is skipped."""
        try:
            lines = self.failures_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        failures = []
        for line in lines:
            with suppress(ValueError, TypeError, KeyError, RecursionError):  # (JSON nested beyond reason)
                failures.append(str(json.loads(line)["what"]))
        return failures

    def history_holds(self, records: list[dict]) -> bool:
        """Whether history.jsonl holds just ``records`` (not when it is missing, has a line cut
        short by a run killed as it wrote it, or holds evaluations a checkpoint does not)."""
        try:
            lines = self.history_path.read_bytes().decode("utf-8", errors="replace").splitlines()
            return [json.loads(line) for line in filter(str.strip, lines)] == records
        except (FileNotFoundError, ValueError, RecursionError):
            return False

    def rewrite_history(self, records: list[dict]) -> None:
        """Make history.jsonl match a checkpoint's history (after a resume)."""
        self.check_in_place()
        with atomic_writer(self.history_path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Write the newest checkpoint, keeping the one before as checkpoint.prev.npz.

        The new one is written in full under a temporary name first; only then does the newest
        move to checkpoint.prev.npz and the new one take its name. So a write that fails (no room)
        leaves both checkpoints as they were, and a crash at any moment leaves at least one.
        """
        self.check_in_place()
        keep = None if self._newest_damaged else self.previous_checkpoint_path
        checkpoint.save(self.checkpoint_path, keep_previous=keep)
        self._newest_damaged = False

    def load_checkpoint(self) -> Checkpoint:
        """The newest readable checkpoint; a damaged newest one falls back, with a warning, to the
        previous one. A missing newest one falls back without: a run stopped between moving it to
        the previous one's name and writing the next leaves just that, and loses nothing."""
        self.check_has_checkpoint()
        candidates = [p for p in (self.checkpoint_path, self.previous_checkpoint_path) if p.exists()]
        errors = []
        for path in candidates:
            try:
                checkpoint = Checkpoint.load(path)
            except NewerFormatError as e:  # not damage: the run went on with a newer distnet, which a resume would undo
                raise NewerFormatError(f"cannot resume {self.path}: {e}; the files were left as they are") from None
            except ModelFormatError as e:
                errors.append(str(e))
                continue
            if errors:
                warn(f"{errors[0]}; resuming from the previous checkpoint {path.name} instead")
            self._newest_damaged = path != self.checkpoint_path
            return checkpoint
        best = f", and the best network so far is {self.best_path}" if self.best_path.exists() else ""
        raise ModelFormatError(f"cannot resume {self.path}: no usable checkpoint ({'; '.join(errors)}); "
                               f"the files were left as they are{best}; to train on, start a new run in "
                               f"another folder")

    def remove_unfinished_writes(self) -> None:
        """Delete what writes killed midway left behind (the temporary files of atomic writes;
        the files they were to replace are intact). Only for a run that is not running: the
        resume of a stopped one, or a new run in the folder of one."""
        for p in self.path.iterdir():
            if p.is_file() and UNFINISHED_WRITE.fullmatch(p.name):
                p.unlink(missing_ok=True)

    def remove_summary(self) -> None:
        """Remove summary.json, the test evaluation of an end that a resume trains on past (the
        command line's writes the new end's; a fit from Python writes none)."""
        self.check_in_place()
        self.summary_path.unlink(missing_ok=True)

    def write_summary(self, summary: dict) -> None:
        """Write summary.json (the test evaluation of a run that ended) atomically."""
        self.check_in_place()
        write_json(self.summary_path, summary)
