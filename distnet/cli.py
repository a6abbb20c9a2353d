"""The ``distnet`` command line. Each command lives in its own module under
:mod:`distnet.commands`; this module builds the parser and turns errors into clear messages.

Every error a user can cause ends in a message on stderr (one line, but for missing data, whose
message lists where it looked) and exit status 2, never a traceback; files already written (best
network, checkpoints) are never touched by a failure.
"""
from __future__ import annotations

import argparse
import codecs
import contextlib
import difflib
import io
import json
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from . import __version__
from .commands import COMMANDS
from .commands.common import drop_output as _drop_output
from .errors import DistnetError, FailureLimitError, RayFailedError
from .io import FILE_TOO_LARGE, NO_ROOM, NOT_PERMITTED
from .signals import forget_termination, terminate_as_interrupted, was_terminated

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like the command's other errors (argparse would print the whole
    usage first). The top-level one has ``commands``: each command's parser, by name.

    Options are taken only as spelled out: an abbreviation that works today (--ep for --epochs)
    would stop working, or mean another option, once an option sharing its start is added."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"distnet: error: {message} (see: {self.prog} --help)\n")


# Other tools' names for some options, which spelling alone would take for others (--lr for --l2).
_OTHER_NAMES = {"--lr": "--learning-rate", "--bs": "--batch-size", "--batch": "--batch-size",
                "--weight-decay": "--l2", "--out-dir": "--run-dir", "--output-dir": "--run-dir", "--out": "--run-dir",
                "--output": "--run-dir"}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions if action.dest != "help" for option in action.option_strings]


def _did_you_mean(parser: argparse.ArgumentParser, unknown: list[str],
                  others: dict[str, argparse.ArgumentParser] | None = None) -> str:
    """" (did you mean --epochs?)" for options misspelt or cut short among ``unknown``; for one of
    another command of ``others`` (by name), which; else ""."""
    options = _options(parser)
    guesses, elsewhere = [], []
    for word in (word.partition("=")[0] for word in unknown if word.startswith("--")):
        known = _OTHER_NAMES.get(word)
        begun = [option for option in options if option.startswith(word)]  # (not taken for them: see _Parser)
        guess = [known] if known in options else begun if 0 < len(begun) <= 3 else \
            difflib.get_close_matches(word, options, n=1, cutoff=0.75)
        guesses += guess
        commands = [name for name, other in (others or {}).items() if other is not parser and word in _options(other)]
        if not guess and commands:
            elsewhere.append(f"{word} is an option of {' and '.join(f'distnet {name}' for name in commands)}")
    said = [f"did you mean {' or '.join(dict.fromkeys(guesses))}?"] if guesses else []
    return f" ({'; '.join(said + elsewhere)})" if said or elsewhere else ""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"distnet: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def _notes_on_stderr(quiet: bool):
    """What the library logs on its way (such as a download) as ``distnet: ...`` lines on stderr;
    with ``quiet``, only its warnings."""
    logger = logging.getLogger("distnet")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("distnet: %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _names_as_bytes(error: UnicodeEncodeError) -> tuple[bytes, int]:
    """An output's encoding error handler: the bytes of a file name that are not UTF-8 (which
    Python holds as lone surrogates) written as they are, as ls does; any other character the
    encoding lacks (an ASCII output's "±") as a backslash escape, as Python writes stderr."""
    unwritable = error.object[error.start:error.end]
    return b"".join(bytes([ord(c) - 0xDC00]) if 0xDC80 <= ord(c) <= 0xDCFF else
                    c.encode("ascii", "backslashreplace") for c in unwritable), error.end


codecs.register_error("distnet.names", _names_as_bytes)


@contextlib.contextmanager
def _names_written_as_given() -> Iterator[None]:
    """stdout and stderr with :func:`_names_as_bytes` for the command's run: a strict output (a
    UTF-8 locale's stdout) failed with UnicodeEncodeError on a file name that is not UTF-8, after a
    training had ended and written every file."""
    changed = []
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):  # not a text file, or closed
            errors = stream.errors
            stream.reconfigure(errors="distnet.names")
            changed.append((stream, errors))
    try:
        yield
    finally:
        for stream, errors in changed:
            with contextlib.suppress(ValueError, io.UnsupportedOperation):  # closed meanwhile
                stream.reconfigure(errors=errors)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: sys.argv); returns the exit status."""
    with _names_written_as_given():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    words = sys.argv[1:] if argv is None else [str(word) for word in argv]
    args, unknown = _parse(parser, words)
    args.words = words  # for the advice to run the same command again
    if unknown:  # said by the command's parser, so that the advice is that command's --help
        command = parser.commands[args.command]
        command.error(f"unrecognized arguments: {' '.join(unknown)}{_did_you_mean(command, unknown, parser.commands)}")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate_as_interrupted) if in_main_thread else None
    ctrl_c = None  # SIGINT's handler, while a stop is reported
    forget_termination()
    try:
        with warnings.catch_warnings(), _notes_on_stderr(quiet=getattr(args, "quiet", False)):
            warnings.showwarning = _show_warning
            return args.handler(args)
    except BrokenPipeError:
        _drop_output(sys.stdout)
        if unread := getattr(args, "unread_files", 0):  # `distnet predict ... | head`, after a file failed
            _say(f"distnet: error: {unread} of {len(args.files)} files could not be read (said above); "
                 f"the output was closed before the rest were classified")
            return EXIT_USAGE
        if args.command != "train":
            # The reader went away (e.g. `distnet show ... | head`): stop quietly, as other tools do.
            return 0
        # A training's reader went away (`distnet train --json | head -1`): the run stopped, unfinished.
        _say(f"distnet: error: the output was closed (its reader went away), so the training stopped"
             f"{_how_to_go_on(args)}")
        return 128 + signal.SIGPIPE
    except DistnetError as e:
        if isinstance(e, (FailureLimitError, RayFailedError)) and (run := _training_run(args)) is not None \
                and not run.has_checkpoint():  # (with one, the message says how to resume)
            return _fail(args, f"{e}{_kept_run(args, 'to train it')}")
        return _fail(args, str(e))
    except MemoryError:
        return _fail(args, f"out of memory: this needs more than the machine has free (a network, batch or data set "
                           f"too large for it?){_kept_run(args, 'with more memory free')}")
    except OSError as e:  # the file system or the network refused: a full disk, a read-only folder
        if getattr(args, "summary_written", False):  # only the printing of the results was left
            return _fail(args, f"{e.strerror or e} while printing the results (on stdout); the run ended and "
                               f"nothing is lost: its summary is in {_training_run(args).summary_path}")
        where = f"{e.filename} -> {e.filename2}: " if e.filename2 else f"{e.filename}: " if e.filename else ""
        kept = _kept_run(args, _once_put_right(e))
        return _fail(args, f"{where}{e.strerror or e}{kept}")
    except (KeyboardInterrupt, SystemExit) as e:
        # SystemExit(SIGTERM): Ray's own SIGTERM handler, set by ray.init (distnet puts its own back
        # at once, but a signal may come in between).
        if isinstance(e, SystemExit) and e.code != signal.SIGTERM:
            raise
        if in_main_thread:  # a second Ctrl-C (a quick double press) would cut the report short with a traceback
            ctrl_c = signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        terminated = was_terminated() or isinstance(e, SystemExit)
        ending = "terminated" if terminated else "interrupted"
        advice = _how_to_go_on(args)
        print(f"\ndistnet: {ending}{advice}", file=sys.stderr)
        _json_event(args, ending, f"{ending}{advice}")
        return 128 + signal.SIGTERM if terminated else 130
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGTERM, previous)
        if ctrl_c is not None:  # last: the process has said how it ends
            signal.signal(signal.SIGINT, ctrl_c)


def _parse(parser: _Parser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The command's arguments and the words it did not recognise. A command's file names may
    follow its options too (``predict MODEL a.png --invert no b.png``): argparse alone takes
    positionals in one run, so a command left with stray words is parsed again intermixed."""
    command = next((i for i, word in enumerate(argv) if word in parser.commands), None)
    if command is None:
        _refuse_without_command(parser, argv)
    before = argv[:command] if command else []
    early = before if before and before[0].startswith("-") and before[0] not in ("-h", "--help", "--version") else []
    if early:  # argparse would take them for the command's name, or guess at them
        parser.error(f"{' '.join(early)}: options go after the command, as in: distnet {argv[command]} "
                     f"{' '.join(early)} ...")
    if command is not None:  # (none: --help or --version, which argparse answers)
        _refuse_files_read_as_options(parser.commands[argv[command]], argv[command + 1:])
    args, unknown = parser.parse_known_args(argv)
    if not any(not word.startswith("-") for word in unknown):
        return args, unknown
    # The command is the first word that is not an option (the top level has only --help and
    # --version, which exit).
    words = argv[argv.index(args.command) + 1:]
    return parser.commands[args.command].parse_known_intermixed_args(words, argparse.Namespace(command=args.command))


def _refuse_files_read_as_options(command: argparse.ArgumentParser, words: list[str]) -> None:
    """A usage error for a file whose name begins with "-" (``predict MODEL -3.png``): argparse takes
    it for an unknown option, and said that the command's files were missing."""
    options = _options(command)
    for word in words:
        if word == "--":  # what follows is no option
            return
        if word.startswith("-") and word.partition("=")[0] not in options and Path(word).exists():
            command.error(f"{word} is read as an option; give the file as ./{word} (or after --)")


def _refuse_without_command(parser: _Parser, argv: list[str]) -> None:
    """A usage error for words that hold no command, naming what is wrong (argparse said only that
    a command is required, or listed the commands after a misspelt one); nothing for --help,
    --version or no words at all, which argparse handles."""
    if any(word in ("-h", "--help", "--version") for word in argv):
        return
    commands = ", ".join(parser.commands)
    options = [word for word in argv if word.startswith("-")]
    if options:
        parser.error(f"no command given, and {' '.join(options)} is not an option of distnet's own"
                     f"{_did_you_mean(parser, options)}; the commands: {commands} (their options go after them)")
    words = [word for word in argv if not word.startswith("-")]
    if words:
        guesses = ["train --resume RUN_DIR"] if words[0] == "resume" else difflib.get_close_matches(
            words[0], parser.commands, n=1, cutoff=0.6)
        guess = f" (did you mean: distnet {guesses[0]}?)" if guesses else ""
        parser.error(f"{words[0]!r} is not a command{guess}; the commands: {commands}")


def _training_run(args: argparse.Namespace):
    """The run directory of a ``train`` command (None for other commands)."""
    run_dir = getattr(args, "run_dir", None)
    if args.command != "train" or run_dir is None:
        return None
    if getattr(args, "fresh_run_dir", False) and not Path(run_dir).exists():
        return None  # the folder made for the run, removed again: it wrote nothing to go on from
    from .rundir import RunDir

    return RunDir(run_dir)


def _kept_run(args: argparse.Namespace, when: str) -> str:
    """For a training stopped by what it lacked (room on disk, memory): that its files are intact,
    and ``when`` to resume it, how."""
    run = _training_run(args)
    if run is None:
        return ""
    if not run.has_checkpoint():
        if run.holds_results():  # which a new start into the folder would be refused, to keep them
            return (f"; the run saved its best network but no checkpoint yet, so it cannot be resumed: {when}, "
                    f"start a new run in another run directory")
        return f"; the run saved no checkpoint yet: {when}, {_start_again(args, run)}"
    return f"; the run's files are as its last checkpoint left them: {when}, resume with: {_resume_again(args, run)}"


def _once_put_right(error: OSError) -> str:
    """When a training that ``error`` stopped can go on."""
    if error.errno in NO_ROOM:
        return "once there is room"
    if error.errno in NOT_PERMITTED:
        return "once the folder is writable again"
    if error.errno == FILE_TOO_LARGE:
        return "once the limit on the size of the files a process writes allows it (ulimit -f)"
    return "once that is put right"


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"distnet: error: {message}", file=sys.stderr)
    _json_event(args, "error", message)
    return EXIT_USAGE


def _json_event(args: argparse.Namespace, event: str, message: str) -> None:
    """With ``train --json``, how the training ended as the last line on stdout too, for the script
    reading its events (the reader may be gone already: then nothing is said there)."""
    if args.command == "train" and args.json:
        try:
            print(json.dumps({"event": event, "message": message}), flush=True)
        except OSError:  # gone (BrokenPipeError), or full: what went wrong is said on stderr
            _drop_output(sys.stdout)


def _say(line: str) -> None:
    """``line`` on stderr, unless its reader is gone too (`distnet train 2>&1 | head`)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except BrokenPipeError:
        _drop_output(sys.stderr)


def _how_to_go_on(args: argparse.Namespace) -> str:
    """For an interrupted (or terminated) training: how to continue it, given what it saved."""
    run = _training_run(args)
    if run is None:
        return ""
    if getattr(args, "summary_written", False):
        return f" after the run ended; its summary is in {run.summary_path}"
    if getattr(args, "training_ended", False):
        return (f" after the training ended, before its test evaluation and summary; to make them (training "
                f"nothing): {run.resume_command()}")
    if run.has_checkpoint():
        return f"; resume with: {_resume_again(args, run)}"
    if run.holds_results():
        return (" after it saved its best network, before its first checkpoint: it cannot be resumed; to "
                "train on, start a new run in another run directory")
    return f" before the run's first checkpoint; to train it, {_start_again(args, run)}"


def _resume_again(args: argparse.Namespace, run) -> str:
    """The command that continues a training's run, stopped before its end, with what this
    command (a resume) asked of it that the run does not record yet."""
    return run.resume_command(_workers_asked(args, run), address=_address_given(args, run),
                              settings=_settings_asked(args))


def _settings_asked(args: argparse.Namespace) -> dict:
    """The ``--epochs``, ``--checkpoint-every`` and ``--max-failures`` a resume was given, for the
    advice to give them again where config.json does not record them yet (it does once the
    training starts): a plain resume would go on with the run's own (``--epochs``: to the old
    total, or nothing, where the run had ended there)."""
    from .rundir import RESUME_OPTIONS

    if not getattr(args, "resume", None):
        return {}
    return {key: getattr(args, key) for key in RESUME_OPTIONS if getattr(args, key) is not None}


def _workers_asked(args: argparse.Namespace, run) -> int | None:
    """The ``--workers`` a resume was given where the run does not record it yet (it was stopped
    before it placed them: another number, or 0 for this process, where it trained on Ray), for
    the advice to ask for it again: a plain resume goes on as the run was. None otherwise."""
    workers = getattr(args, "workers", None)
    if not getattr(args, "resume", None) or workers is None:
        return None
    try:
        config = run.config()
    except DistnetError:  # no configuration to compare with: the advice says what was asked
        return workers
    recorded = 0 if config.get("protocol") is None else config.get("workers")  # no protocol: one process
    return None if recorded == workers else workers


def _address_given(args: argparse.Namespace, run) -> str | None:
    """The ``--address`` a training on Ray was given, for the advice to give it again (a resume
    without it starts a Ray of its own); None where there was none, or the run trains in this process."""
    if args.address is None or args.workers == 0:
        return None
    if args.workers is not None:
        return args.address
    try:  # a resume on the run's own workers: on Ray if the run records a step protocol
        return args.address if run.config().get("protocol") is not None else None
    except DistnetError:
        return None


def _start_again(args: argparse.Namespace, run) -> str:
    # A folder the run made and saved nothing in is gone: there is none to reuse.
    reused = " (the folder may be reused)" if run.path.is_dir() else ""
    words = None if getattr(args, "resume", None) else args.words  # (a resume's own words start nothing)
    return f"start it again{reused}: {run.start_again_command(words)}"


def build_parser() -> argparse.ArgumentParser:
    """The ``distnet`` parser, with each command of :data:`distnet.commands.COMMANDS` registered;
    its ``commands`` holds each command's parser, by name."""
    parser = _Parser(prog="distnet", description=(
        "A from-scratch NumPy neural network (after Tobias Hill's 'Neural network from scratch'), "
        "trained on many cores and machines with Ray."))
    parser.add_argument("--version", action="version", version=f"distnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    parser.commands = subparsers.choices
    return parser


if __name__ == "__main__":
    sys.exit(main())
