"""``distnet train``: train a preset (Ray started embedded, on a cluster, or in this process)."""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..batches import check_batch_size
from ..checks import count
from ..data.augment import RandomAffine
from ..errors import ConfigError, ModelFormatError, warn
from ..nn.activations import ACTIVATIONS
from ..nn.costs import COSTS
from ..presets import PRESETS, Preset, get_preset
from ..rundir import RunDir, shell_path
from ..distributed.settings import DEFAULT_MAX_FAILURES, PROTOCOLS
from .common import (add_data_arguments, cluster_address, folder, fraction, layer_sizes, load_data, non_negative_int,
                     positive_float, positive_int)

if TYPE_CHECKING:
    from ..data import Splits
    from ..nn import Network, Optimizer
    from ..fit_result import FitResult
    from ..training import TrainerBase


def _each_preset(setting: str, shown=str) -> str:
    return ", ".join(f"{name} {shown(getattr(preset, setting))}" for name, preset in sorted(PRESETS.items()))


def _sizes(hidden) -> str:
    return ",".join(str(size) for size, _ in hidden) or "none"


def _activation(hidden) -> str:
    return hidden[0][1]["name"] if hidden else "none"


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a network (Ray started embedded, or on a cluster)",
                                description="Train a preset on MNIST or Fashion-MNIST and write a run directory.")
    add_data_arguments(train)
    train.add_argument("--preset", choices=sorted(PRESETS),
                       help="training setup (default: seed): " + "; ".join(  # argparse formats help with %
                           f"{name}: {preset.description}".replace("%", "%%") for name, preset in sorted(PRESETS.items())))
    train.add_argument("--workers", type=non_negative_int, default=None,
                       help="gradient workers (default: the cluster's CPUs, at most the batch size, which leaves "
                            "none where a lost node's workers could start again); 0 trains in this process "
                            "without Ray. With --resume "
                            "(default: the run's), N continues the run on N workers, its mini-batches drawn from "
                            "N shards from then on (another draw of the same training), and 0 in this process "
                            "with the run's own batches")
    train.add_argument("--address", type=cluster_address, default=None,
                       help="join a running Ray cluster ('auto' or HOST:PORT) instead of starting one, or "
                            "'local' to start one even where RAY_ADDRESS is set (default: the cluster "
                            "RAY_ADDRESS names, if set)")
    train.add_argument("--protocol", default="auto", choices=PROTOCOLS,
                       help="how workers and parameter server exchange each step (default: auto)")
    train.add_argument("--max-failures", type=non_negative_int, metavar="N",
                       help=f"failures to recover from in a session, each replacing the actors then lost, before "
                            f"giving up (default: {DEFAULT_MAX_FAILURES}; with --resume, the run's own, and N given "
                            f"becomes the run's)")
    train.add_argument("--epochs", type=positive_int,
                       help=f"maximum epochs (default: the preset's: {_each_preset('epochs')}); with --resume, "
                            "the run's new total (a run that ended at its maximum then trains on)")
    train.add_argument("--hidden", type=layer_sizes, metavar="SIZES",
                       help="the hidden layers' sizes, comma-separated, such as 128,64, or 'none' (default: the "
                            f"preset's: {_each_preset('hidden', _sizes)})")
    train.add_argument("--activation", choices=[name for name in ACTIVATIONS if name != "softmax"],
                       help=f"the hidden layers' activation (default: the preset's: "
                            f"{_each_preset('hidden', _activation)})")
    train.add_argument("--cost", choices=list(COSTS),
                       help=f"the cost function (default: the preset's: {_each_preset('cost')})")
    train.add_argument("--l2", type=fraction, metavar="LAMBDA",
                       help="L2 weight decay: every update multiplies each weight by (1 - LAMBDA) (default: the "
                            f"preset's: {_each_preset('l2', lambda v: f'{v:g}')})")
    train.add_argument("--batch-size", type=positive_int, help="mini-batch size (default: the preset's)")
    train.add_argument("--learning-rate", type=positive_float, help="learning rate (default: the preset's)")
    train.add_argument("--schedule", choices=["constant", "cosine"],
                       help="learning-rate schedule over the epochs (default: the preset's)")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction,
                       help="move every training image by a small random rotation, scale and shift each "
                            "epoch (default: the preset's)")
    train.add_argument("--eval-every", type=positive_int, help="epochs between validation evaluations "
                                                               f"(default: the preset's: {_each_preset('eval_every')})")
    train.add_argument("--window", type=positive_int, help="the stop rule's moving-average window, in evaluations "
                                                           f"(default: the preset's: {_each_preset('window')})")
    train.add_argument("--validation", type=positive_int, metavar="N",
                       help="training samples held out for validation, which early stopping judges by "
                            "(default: 10,000, of MNIST's 60,000)")
    train.add_argument("--seed", type=non_negative_int, help="random seed (default: 942457, the article's)")
    train.add_argument("--dtype", choices=["float32", "float64"], help="float32 (the default) or float64")
    train.add_argument("--run-dir", type=folder, help="where to write the run (default: runs/PRESET-DATASET-TIME)")
    train.add_argument("--resume", type=folder, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    train.add_argument("--checkpoint-every", type=non_negative_int, metavar="STEPS",
                       help="also checkpoint every STEPS steps, 0 for none (default: at each epoch end only; "
                            "with --resume, the run's own, and STEPS given becomes the run's)")
    # None unless given, so that --resume can refuse them (see RUN_SETTINGS); run() fills in the defaults.
    train.set_defaults(dataset=None)
    output = train.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only the final summary")
    output.add_argument("--json", action="store_true", help="print JSON lines (events, then the summary)")
    train.set_defaults(handler=run)


# What a run directory's configuration fixes, by argument name: given with --resume they would change
# nothing (the run continues with its own settings), so they are refused rather than ignored.
# --epochs is not one of them: with --resume it sets the run's new total; nor is --workers, which
# continues the run on that many workers (see resume_train).
RUN_SETTINGS = {"preset": "--preset", "dataset": "--dataset", "hidden": "--hidden",
                "activation": "--activation", "cost": "--cost", "l2": "--l2", "batch_size": "--batch-size",
                "learning_rate": "--learning-rate", "schedule": "--schedule", "augment": "--augment/--no-augment",
                "eval_every": "--eval-every", "window": "--window", "seed": "--seed", "dtype": "--dtype",
                "validation": "--validation"}
VALIDATION = 10_000  # training samples held out for early stopping, unless --validation says otherwise
DEFAULTS = {"preset": "seed", "dataset": "mnist", "seed": 942457, "dtype": "float32", "validation": VALIDATION}


def run(args: argparse.Namespace) -> int:
    """``distnet train``: a new run of the preset as the options change it, or (``--resume``) the
    continuation of a stopped one; the summary printed, 0 returned."""
    if args.resume:
        return resume_train(args)
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    preset = preset_with_options(args)
    if args.run_dir is not None:
        RunDir(args.run_dir).check_new()
        return _train_new(args, preset, args.run_dir)
    runs = Path("runs")
    had_runs = runs.is_dir()
    args.run_dir = _fresh_folder(runs / f"{preset.name}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    args.fresh_run_dir = True  # removed again below if the run saves nothing: no advice names it then
    try:
        return _train_new(args, preset, args.run_dir)
    except BaseException:
        RunDir(args.run_dir).remove_if_unstarted()
        if not had_runs:
            with contextlib.suppress(OSError):  # not empty: other runs made in it since
                runs.rmdir()
        raise


def _fresh_folder(path: Path) -> Path:
    """A new, empty folder at ``path``, or at path-2, path-3, ... where runs started in the same
    second took those: made now, so that two runs started at once never share one."""
    for number in itertools.count(1):
        candidate = path if number == 1 else path.with_name(f"{path.name}-{number}")
        if RunDir(candidate).make_folder():
            return candidate  # else another run's, made this second


def _train_new(args: argparse.Namespace, preset: Preset, run_dir: Path) -> int:
    if args.workers:
        check_batch_size(preset.batch_size, args.workers)  # before the data loads or Ray starts
    network = preset.build_network(seed=args.seed, dtype=args.dtype)
    splits = load_data(args, dtype=network.dtype)
    trainer = make_trainer(args, network, preset.build_optimizer(), preset.l2, preset.batch_size,
                           args.seed, args.workers, schedule=preset.build_schedule(),
                           augmentation=preset.build_augmentation())
    fit_args = {"epochs": preset.epochs, "eval_every": preset.eval_every, "window": preset.window,
                "extra_config": {"preset": preset.name, "dataset": args.dataset, "validation": args.validation,
                                 "data_dir": str(args.data_dir.resolve()) if args.data_dir else None}}
    return fit_and_report(args, trainer, splits, run_dir, fit_args, resume=False)


def preset_with_options(args: argparse.Namespace) -> Preset:
    """The preset ``--preset`` names, with what the other options given change in it (the run's
    config.json records the result, so a resume needs none of them)."""
    preset = get_preset(args.preset).with_overrides(epochs=args.epochs, batch_size=args.batch_size,
                                                    eval_every=args.eval_every, window=args.window,
                                                    cost=args.cost, l2=args.l2)
    if args.hidden is not None or args.activation is not None:
        sizes = [size for size, _ in preset.hidden] if args.hidden is None else args.hidden
        if args.activation and not sizes:
            raise ConfigError(f"--activation {args.activation} is the hidden layers' activation, and this network "
                              f"has none (--hidden none): give hidden layers, or leave --activation out")
        activation = {"name": args.activation} if args.activation else preset.hidden[0][1]
        preset = replace(preset, hidden=tuple((size, activation) for size in sizes))
    if args.learning_rate is not None:
        preset = replace(preset, optimizer=preset.optimizer | {"learning_rate": args.learning_rate})
    if args.schedule is not None:
        preset = replace(preset, schedule=None if args.schedule == "constant" else {"name": args.schedule})
    if args.augment is not None:
        preset = replace(preset, augmentation=RandomAffine().spec() if args.augment else None)
    return preset


def refuse_run_settings(args: argparse.Namespace) -> None:
    """ConfigError for what ``--resume`` was given with that the run fixes: its settings
    (RUN_SETTINGS), and its folder (--run-dir, which is no setting: --resume names the folder)."""
    given = [flag for name, flag in RUN_SETTINGS.items() if getattr(args, name) is not None]
    refused = []
    if given:
        refused.append(f"--resume continues {args.resume} with the settings it was started with, so "
                       f"{', '.join(given)} cannot be given with it; to train with other settings, start a new run")
    if args.run_dir is not None:
        refused.append(f"--run-dir cannot be given with --resume, which names the run directory itself: the run goes "
                       f"on in {args.resume}; to have it go on in another folder, copy {args.resume} there and "
                       f"resume the copy")
    if refused:
        raise ConfigError("; ".join(refused))


def resume_train(args) -> int:
    """Continue the run in ``args.resume`` with its own configuration, to ``--epochs`` in all if given.

    ``--workers N`` continues it on N Ray workers (its batches drawn from N shards from then on,
    which the trainer warns of and the run records); ``--workers 0`` in this process, with the
    batches of the run's number of workers (the same training, no other draw). Without it the run
    goes on as its config.json says: in this process if it records no step protocol, else on its
    number of workers."""
    refuse_run_settings(args)
    run = RunDir(args.resume)
    config = run.config()
    run.check_resumable()  # before the data loads or Ray starts
    recorded = _recorded_settings(run, config)
    if run.started_by_fit():
        _check_resumable_here(run, recorded["network"])
    args.run_dir, args.dataset, args.validation = args.resume, recorded["dataset"], recorded["validation"]
    if args.data_dir is None and recorded["data_dir"]:
        data_dir = Path(recorded["data_dir"])
        if data_dir.is_dir():
            args.data_dir = data_dir  # the same files, or the batches would differ
        else:  # (or the files were found elsewhere then): the run's checksums tell whether they are the same
            warn(f"the run's data folder {data_dir} is not there any more; the data set is looked for "
                 f"where a new run looks, and compared with the run's where it recorded their checksums")
    batch_size = recorded["batch_size"]
    if args.workers is not None and args.workers > batch_size:  # before the data loads or Ray starts
        raise ConfigError(f"--workers {args.workers}: each worker needs at least one sample per step, and the run's "
                          f"batch size is {batch_size}; use at most {count(batch_size, 'worker')} (--workers "
                          f"{batch_size}), or leave --workers out to go on as the run did")
    workers = recorded["workers"] if args.workers is None else args.workers
    if workers and args.protocol == "auto":
        args.protocol = recorded["protocol"] or "auto"
    network = recorded["network"]
    trainer = make_trainer(args, network, recorded["optimizer"], recorded["l2"], batch_size, recorded["seed"],
                           workers, max_failures=recorded["max_failures"], schedule=recorded["schedule"],
                           augmentation=recorded["augmentation"])
    # eval_every, window and acceptable_error are the run's: fit reads them from it.
    fit_args = {"epochs": args.epochs, "extra_config": {"preset": config.get("preset"), "dataset": args.dataset,
                                                        "validation": args.validation, "data_dir": recorded["data_dir"]}}
    splits = load_data(args, dtype=network.dtype)
    return fit_and_report(args, trainer, splits, args.resume, fit_args, resume=True)


def _check_resumable_here(run: RunDir, network) -> None:
    """For a run started from Python (by fit, whose config.json names no data set): ConfigError
    unless MNIST can be what it trains on; then a warning that MNIST is taken (the run's
    checksums refuse other data)."""
    from ..data.datasets import DIGIT_CLASSES
    from ..data.digits import PIXELS

    if (network.input_size, network.output_size) != (PIXELS, len(DIGIT_CLASSES)):
        raise ConfigError(f"{run.path} was started from Python on data of its own (its config.json names no data set, "
                          f"and its {'-'.join(map(str, network.sizes))} network does not take MNIST's images and "
                          f"classes): resume it from Python, with fit(train, validation, run_dir=..., resume=True) "
                          f"on that data")
    if run.config().get("validation_samples") == 0:
        raise ConfigError(f"{run.path} was started from Python without a validation set, which the command line "
                          f"always holds out: resume it from Python, with fit(train, None, run_dir=..., resume=True) "
                          f"on its data")
    warn(f"{run.path} was started from Python (its config.json names no data set): it is resumed on mnist, "
         f"which the run's checksums compare with the data it was started with")


def _recorded_settings(run: RunDir, config: dict) -> dict:
    """What the run's ``config`` (its config.json) records of how it trains, each value checked:
    ModelFormatError naming the file for one that distnet does not write (a hand edit)."""
    from .. import checks
    from ..data.augment import augmentation_from_spec
    from ..data.datasets import DATASETS
    from ..nn import Network, optimizer_from_spec, schedule_from_spec

    try:
        protocol, dataset, data_dir = config.get("protocol"), config.get("dataset", "mnist"), config.get("data_dir")
        if protocol is not None and protocol not in PROTOCOLS:
            raise ConfigError(f"the step protocol is {protocol!r}, not one of {', '.join(PROTOCOLS)}")
        if dataset not in DATASETS:
            raise ConfigError(f"the data set is {dataset!r}, not one of {', '.join(DATASETS)}")
        if data_dir is not None and not isinstance(data_dir, str):
            raise ConfigError(f"the data folder is {data_dir!r}, not a path")
        return {"network": Network.from_spec(config["network"]), "optimizer": optimizer_from_spec(config["optimizer"]),
                "l2": checks.fraction("l2", config["l2"]),
                "batch_size": checks.positive_int("the batch size", config["batch_size"]),
                "seed": checks.seed_or_none(config["seed"]),
                # a run that records no step protocol trained in one process
                "workers": 0 if protocol is None else checks.positive_int("the number of workers", config["workers"]),
                "protocol": protocol, "dataset": dataset, "data_dir": data_dir,
                # A run of a version before --validation held out the 10,000 it holds by default; one
                # that fit started records the size of the validation set it was given (0 for none).
                "validation": checks.positive_int("the validation samples", config.get(
                    "validation", config.get("validation_samples") or VALIDATION)),
                # a run of a version before 2026-12-04 recorded none
                "max_failures": checks.whole_number("max_failures", config.get("max_failures", DEFAULT_MAX_FAILURES),
                                                    0),
                "schedule": schedule_from_spec(config.get("schedule")),
                "augmentation": augmentation_from_spec(config.get("augmentation"))}
    except ConfigError as e:
        raise run.hand_edited_config(e) from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFormatError(f"{run.config_path}: not a configuration distnet wrote ({type(e).__name__}: "
                               f"{e}); start a new run instead") from None


def make_trainer(args: argparse.Namespace, network: Network, optimizer: Optimizer, l2: float, batch_size: int,
                 seed: int | None, workers: int | None, max_failures: int = DEFAULT_MAX_FAILURES,
                 **options) -> TrainerBase:
    """A single-process trainer for ``workers == 0``, a distributed one otherwise, recovering from
    ``--max-failures`` failures if given, else ``max_failures`` (the run's); ``options``
    (schedule, augmentation) go to either."""
    if workers == 0:
        from ..trainer import Trainer

        # --address auto is left unsaid: distnet submit gives it to every job, one of 0 workers too.
        unused = [flag for flag, given in (("--address", args.address not in (None, "auto")),
                                           ("--protocol", args.protocol != "auto"),
                                           ("--max-failures", args.max_failures is not None)) if given]
        if unused:
            named = f"{', '.join(unused[:-1])} and {unused[-1]}" if len(unused) > 1 else unused[0]
            warn(f"{named} {'are' if len(unused) > 1 else 'is'} for Ray workers, and this "
                 f"run trains in this process without them (--workers 0): ignored")
        return Trainer(network, optimizer, l2=l2, batch_size=batch_size, seed=seed, **options)
    from ..distributed import DistributedTrainer  # Ray takes seconds to import: only when needed

    return DistributedTrainer(network, optimizer, l2=l2, batch_size=batch_size, seed=seed, workers=workers,
                              address=args.address, protocol=args.protocol,
                              max_failures=max_failures if args.max_failures is None else args.max_failures,
                              **options)


def fit_and_report(args: argparse.Namespace, trainer: TrainerBase, splits: Splits, run_dir: Path, fit_args: dict,
                   resume: bool) -> int:
    """Train with ``trainer`` on ``splits`` into ``run_dir`` (``fit_args`` and ``resume`` go to
    fit), reporting as ``args`` asks, then finish the run (:func:`finish_train`); the exit status."""
    from ..progress import JsonLinesReporter, Reporter, TerminalReporter

    reporter = JsonLinesReporter(sys.stdout) if args.json else Reporter() if args.quiet else TerminalReporter()
    _note_the_end(reporter, args)
    # Ray prints what its processes say (a worker that died, say) on this process's stdout, where
    # --json keeps its events only: during the training that goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        result = trainer.fit(splits.train, splits.validation, run_dir=run_dir, resume=resume,
                             checkpoint_every=args.checkpoint_every, reporter=reporter, **fit_args)
    args.training_ended = True  # an interruption from here on leaves only the test evaluation and summary undone
    return finish_train(args, trainer, result, splits, RunDir(run_dir))


def _note_the_end(reporter, args: argparse.Namespace) -> None:
    """Have ``reporter`` mark ``args.training_ended`` once it is told the training ended: the
    distributed trainer then still stops Ray, and a Ctrl-C held meanwhile comes out of fit after
    the run's last checkpoint, when a resume only makes the test evaluation and summary."""
    reported = reporter.on_end

    def on_end(result) -> None:
        reported(result)
        args.training_ended = True

    reporter.on_end = on_end


def _its_summary(run: RunDir, result) -> dict | None:
    """The run's summary.json where it is that of the ending ``result`` (one that trained on past
    an earlier ending, and was stopped before its summary, still holds the earlier one's); None
    otherwise."""
    try:
        written = json.loads(run.summary_path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(written, dict) and (written.get("epochs"), written.get("stop_reason")) == (
            result.epochs, result.stop_reason):
        return written
    return None


def _trained_with(trainer: TrainerBase, result: FitResult, run: RunDir) -> tuple[int, str | None]:
    """The workers (0: in this process) and step protocol a run's summary names: this session's,
    or for a run that had ended (the session trained nothing, whatever --workers asked) those its
    config.json records (the protocol as the run was given it, such as auto)."""
    if result.already_ended:
        config = run.config()
        protocol = config.get("protocol")  # none: the run trained in one process
        return (0, "single-process") if protocol is None else (config["workers"], protocol)
    if trainer.distributed:
        return trainer.shards, trainer.active_protocol
    return 0, "single-process"


def finish_train(args: argparse.Namespace, trainer: TrainerBase, result: FitResult, splits: Splits,
                 run: RunDir) -> int:
    """Score the ended training's ``result`` on the test set, write the run's summary.json and
    say how it went; the exit status."""
    from ..metrics import evaluate

    test = evaluate(result.best_network, splits.test.images, splits.test.labels, splits.test.classes)
    workers, protocol = _trained_with(trainer, result, run)
    summary = {"run_dir": str(run.path), "best_network": str(run.best_path), "epochs": result.epochs,
               "stop_reason": result.stop_reason, "best_epoch": result.best_epoch,
               "validation_error": result.best_error, "test_error": test.error_rate,
               "seconds": round(result.seconds, 3), "workers": workers, "protocol": protocol,
               "placement": getattr(trainer, "placement", []),
               "failures": run.failures(), "test": test.to_dict()}  # every session's, not only this one's
    kept = _its_summary(run, result) if result.already_ended else None
    if kept is None:
        run.write_summary(summary)
    else:  # the ending's own summary stays, and is what the summary event says (its seconds, its paths)
        summary = kept
    args.summary_written = True
    if args.json:
        print(json.dumps({"event": "summary", **summary}))
        return 0
    if not args.quiet:
        print()  # apart from the progress above
    print(f"test error {100 * test.error_rate:.2f}% with the best network (epoch {result.best_epoch}, "
          f"validation error {100 * result.best_error:.2f}%)")
    if not args.quiet:
        print(test.report())
        hosts = sorted({p["node_id"][:8] + "@" + p["host"] for p in summary["placement"]})
        if hosts:
            print(f"\n{count(trainer.shards, 'worker')} on {count(len(hosts), 'node')}: {', '.join(hosts)}; "
                  f"step protocol: {summary['protocol']}")
    print(f"best network: {run.best_path}\nrun directory: {run.path}")
    if not args.quiet:
        print(f"look closer: distnet show {shell_path(run.best_path)}; distnet plot {shell_path(run.path)}")
    return 0
