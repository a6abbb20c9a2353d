"""The training loop shared by the single-process and the distributed trainer.

:class:`TrainerBase` owns the loop in plain sight (epochs, steps in chunks, evaluations, early
stopping, checkpoints, progress); a subclass says only *how* steps run and validation is scored:
in this process (:class:`distnet.trainer.Trainer`) or on Ray actors
(:class:`distnet.distributed.DistributedTrainer`).
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path

import numpy as np

from .batches import BatchPlan
from .checkpoint import Checkpoint
from .chunk_sizer import ChunkSizer
from .data import Dataset
from .errors import ConfigError, TrainingDivergedError, warn
from .fit_result import FitResult
from .progress import Reporter
from .resume import (Start, best_params_of, check_resumable, data_config, ended_run, evaluation_owed, holds_best,
                     kept_extra_config, resumed_start, set_aside_newer_best)
from .rundir import RunDir
from .checks import positive_int
from .fit_arguments import (FIT_DEFAULTS, check_finite, check_finite_state, check_fit_arguments, check_starting_cost,
                            checked_extra_config, checked_reporter, checked_run_dir, checked_settings,
                            resolved_settings)
from .step_stats import StepStats
from .stop import EarlyStopping, StopEvaluator, Stopping, Verdict
from .trainer_settings import TrainerSettings

# Why a resume on other workers (another draw of the batches) sets aside a best network saved after its checkpoint.
_GOES_ON_OTHERWISE = "the run goes on otherwise than it would have"


@dataclass
class _Loop:
    """What the parts of one fit share: its batches and chunks, where it writes and reports, the
    stop rule and a copy of its best network's parameters (for checkpoints and the result, without
    a call to a stop-evaluator actor), the history, and its clock (training seconds of earlier
    sessions, and this one's start)."""

    plan: BatchPlan
    chunks: ChunkSizer
    run: RunDir | None
    config: dict
    stopping: Stopping
    reporter: Reporter
    checkpoint_every: int
    history: list[dict]
    earlier_seconds: float
    started: float
    since_checkpoint: int = 0  # steps since the last checkpoint
    best_params: np.ndarray | None = None  # the best network's, as the stop rule keeps them
    notes: dict | None = None  # saved with the best network: what it was trained on

    def seconds(self) -> float:
        """Training seconds so far, over every session of the run."""
        return self.earlier_seconds + time.perf_counter() - self.started


class TrainerBase(TrainerSettings):
    """Mini-batch training with the original's update rule and early stopping.

    Optional, and not in the original: a learning-rate ``schedule`` (the optimizer's rate is the
    base, multiplied by the schedule's factor at the start of each epoch) and an
    ``augmentation`` that moves every training image anew at each epoch start, shard by shard
    with generators seeded by (seed, epoch, shard), so every path sees the same pixels. What a
    trainer is made with, and the settings it takes between fits, are :class:`TrainerSettings`.

    Subclasses implement ``_told_workers``, ``_decide_workers``, ``_open``,
    ``_run_steps``, ``_validation_error_rate``, ``_params``, ``_optimizer_state`` and ``_load_state``, and may
    replace the rest of what a fit goes through (``_session``, ``_early_stopping``, ``_close``, ...).
    """

    distributed = False  # whether the steps run on Ray actors (the progress header says so)

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, train: Dataset, validation: Dataset | None = None, *, epochs: int | None = None,
            eval_every: int | None = None, window: int | None = None, acceptable_error: float | None = None,
            run_dir: str | Path | None = None, resume: bool = False, checkpoint_every: int | None = None,
            reporter: Reporter | None = None, extra_config: dict | None = None) -> FitResult:
        """Train on ``train`` until early stopping (on ``validation``) or ``epochs`` epochs.

        Every epoch the training set is reshuffled and run in ``len(train) // batch_size`` full
        mini-batches (the few samples left over, others each epoch, wait for a later one); every ``eval_every``
        epochs (and after the last) the validation error goes to the stop rule, the original's
        StopEvaluator: once ``window`` evaluations are in, it stops when the average error over the
        last ``window`` rises above the average before it (the original's example used a window of
        40, evaluating every 5 epochs), or when the best error falls below ``acceptable_error`` (a
        fraction, such as 0.02), and keeps the best network. Without ``validation`` (None, or an
        empty set such as ``load_mnist(validation=0).validation``) nothing is scored: each
        evaluation records the train error and cost, and the last network is the result. Not
        given, a new run uses :data:`~distnet.fit_arguments.FIT_DEFAULTS` (100 epochs, an evaluation
        every 5, a window of 4) and no acceptable error; to train all ``epochs`` with a validation set
        (its best network kept all the same), give a window of more evaluations than the run makes, such as
        ``window=epochs``. ``reporter`` receives the progress (:class:`distnet.progress.TerminalReporter`
        prints it as ``distnet train`` does); by default nothing is printed.

        With ``run_dir`` the run writes config, history, the best network and a checkpoint at each
        epoch end (and every ``checkpoint_every`` steps when > 0; None: 0, or a resumed run's own,
        and one given to a resume is the run's from then on; a folder the fit made is removed again
        if it fails before saving anything there); ``extra_config``, a dict of JSON
        values, goes into its config.json beside the run's own settings (the command line records
        the preset and the data set there; a resume keeps the run's, which it may add to but not
        change), and without ``run_dir`` is refused, as ``checkpoint_every`` is. ``resume=True`` continues the
        run found there with its own settings: ``eval_every``, ``window`` and ``acceptable_error``
        may be left out (and, given, must be the run's), ``epochs`` sets a new total (a run that
        ended at its maximum then trains on, and its config.json records the new total). The number
        of workers (the shards the batches are drawn from) is the run's for a trainer told none (a
        ``DistributedTrainer`` without ``workers``, a ``Trainer`` whose ``shards`` was not set), and
        may be another when told: then a warning says that the run goes on as another draw of the
        same training, an epoch it resumes within ends with the batches it began with, and
        config.json records the new number (and whether the run trains on Ray or in this process)
        once the training starts. A run
        that has ended (its stop rule said stop, or it trained ``epochs`` epochs) is returned as
        it ended, ``already_ended`` set and a warning issued, with nothing trained: its checkpoint
        writes again a best.npz removed or damaged since, and a best.npz and history.jsonl a later
        resume, killed before its next checkpoint, left ahead of it; config.json records the
        ``epochs`` of a run that ended at its maximum, so that a resume left to the run ends there
        too. One that trained more than ``epochs`` epochs is refused (ConfigError).

        The network given to the trainer trains in place and ends as the *last* network; the best
        one is ``result.best_network``. A training that diverges raises TrainingDivergedError, the
        network left diverged (NaN, infinite, or finite but so large that its cost overflows; a
        new fit from there is refused) and the best network so far in the error's
        ``best_network`` (None before the first evaluation). Calling ``fit`` again continues from the current
        parameters and optimizer state, numbering epochs (and the schedule, and the shuffles) from
        1 again.
        """
        given = check_fit_arguments(self.network, train, validation, self.augmentation, epochs=epochs,
                                    eval_every=eval_every, window=window, acceptable_error=acceptable_error,
                                    checkpoint_every=checkpoint_every)
        train, validation = self._checked_data(train, validation, resume)
        reporter = checked_reporter(reporter)
        extra_config = checked_extra_config(extra_config)
        run = checked_run_dir(run_dir, resume, given["checkpoint_every"], extra_config)
        if not resume:  # (a resume's epochs are its run's, unless given: checked as it is read)
            self._check_schedule(resolved_settings(given, FIT_DEFAULTS)["epochs"])
        with run.held(create=not resume) if run is not None else nullcontext():
            data = data_config(train, validation)
            resumed = (self._resume(run, data, given, extra_config, reporter, trained_on_notes(train))
                       if run is not None and resume else None)
            if isinstance(resumed, FitResult):
                return resumed  # the run had ended: nothing trained or started
            with self._session(run, reporter):
                self._decide_workers(resumed.config["workers"] if resumed else None)
                start = resumed or self._new_run(run, data, given, extra_config)
                return self._fit(train, validation, run, start, reporter)

    def _checked_data(self, train: Dataset, validation: Dataset | None,
                      resume: bool) -> tuple[Dataset, Dataset | None]:
        """The fit's data in the network's dtype (an empty validation set as none), checked to be
        trainable from where the trainer stands; ConfigError otherwise."""
        self._check_batches(len(train))
        self.optimizer.check_state_fits(self.network.params)  # before a parameter server is started with it
        if not resume:  # (a resume starts from its checkpoint's state)
            check_finite_state(self.network, self.optimizer)
        given = train, validation
        with np.errstate(over="ignore"):  # a value cast beyond float32's range is named just below
            train = train.astype(self.network.dtype)
            validation = validation.astype(self.network.dtype) if validation is not None and len(validation) else None
        for what, data, before in (("training", train, given[0]), ("validation", validation, given[1])):
            check_finite(what, data, before)  # as cast: a float64 value beyond float32's range is infinite now
        if not resume:
            check_starting_cost(self.network, train, self.batch_size)
        return train, validation

    def _check_batches(self, n_samples: int) -> None:
        """ConfigError unless ``n_samples`` training samples make batches for this trainer (the
        number of workers a resume takes from its run is checked once it does)."""
        BatchPlan(n_samples, self.batch_size, self._told_workers() or 1, self.seed)

    def _session(self, run: RunDir | None, reporter: Reporter) -> AbstractContextManager:
        """What a fit needs around it (a distributed trainer: Ray, and where to report the
        failures it recovers from)."""
        return nullcontext()

    def _new_run(self, run: RunDir | None, data: dict, given: dict, extra_config: dict) -> Start:
        settings = resolved_settings(given, FIT_DEFAULTS)
        config = self._run_config(data, settings, extra_config)
        if run is not None:
            run.create(config)
        return Start(settings, config, None, {}, None)

    def _resume(self, run: RunDir, data: dict, given: dict, extra_config: dict, reporter: Reporter,
                notes: dict) -> Start | FitResult:
        """Where the run in ``run`` stands, checked against this trainer and data (ConfigError if
        they differ); its result if it had ended. Nothing here needs Ray."""
        checkpoint = run.load_checkpoint()
        saved = run.config()  # where a resume to a new total records it at once
        try:
            settings = checked_settings(resolved_settings(given, {**FIT_DEFAULTS, **saved}), resolved=True)
            # the shards its batches are drawn from
            workers = positive_int("the run's number of workers", saved["workers"]) if "workers" in saved else None
        except ConfigError as e:  # what was given is checked already: this is the file's
            raise run.hand_edited_config(e) from None
        # The command line's resume says its data set, and makes its trainer from config.json.
        by_command_line = "dataset" in extra_config
        with self._workers_of_run(workers):
            config = self._run_config(data, settings, extra_config)
            try:
                check_resumable(checkpoint.config, config, from_config_json=by_command_line)
            except ConfigError as e:
                if run.started_by_fit() and by_command_line:  # on MNIST, where the run may have had data of its own
                    raise ConfigError(f"{e}; this run was started from Python, perhaps on data of its own: resume "
                                      f"it with {run.resume_command()}") from None
                if run.started_by_fit() or by_command_line:
                    raise
                # A run of `distnet train` that Python resumes with a trainer of its own making.
                raise ConfigError(f"{e}; this run was started by the command line, which resumes it with its "
                                  f"own settings: {run.resume_command()}") from None
        config = {**config, **kept_extra_config(saved, config, extra_config)}
        ended = ended_run(run, checkpoint, settings["epochs"], settings["eval_every"], self.network,
                          self.optimizer, reporter, notes)
        if ended is None:
            self._check_schedule(settings["epochs"])
        # What writes killed midway left goes once the resume is checked against the run: a resume refused
        # for the run's settings touches nothing (one that then finds no room for its workers leaves the
        # run as it was, but for those leftovers).
        run.remove_unfinished_writes()
        if ended is not None:
            if ended.stop_reason == "max_epochs" and saved.get("epochs") != settings["epochs"]:
                # ended at this total: a later resume left to the run ends there too
                run.update_config({"epochs": settings["epochs"]})
            self._decide_workers(config["workers"])  # (the run's, or the trainer's own): what shards says
            return ended
        return resumed_start(run, checkpoint, saved, settings, config, extra_config, self.distributed)

    def _check_schedule(self, epochs: int) -> None:
        """ConfigError where the schedule takes the learning rate to 0 (it underflows) by the last
        of ``epochs`` epochs: refused before anything starts, not when that epoch comes. The last
        epoch's rate is the lowest: every schedule here only lowers it."""
        if self.schedule is not None and not self.learning_rate * self.schedule.factor(epochs - 1, epochs) > 0:
            raise ConfigError(f"the schedule {self.schedule!r} takes the learning rate {self.learning_rate:g} down "
                              f"to 0 (it underflows) by the last of the {epochs} epochs; give a schedule that "
                              f"lowers it less, or fewer epochs")

    def _run_config(self, data: dict, settings: dict, extra_config: dict) -> dict:
        own = {**self.config(), **data, **settings}
        if taken := sorted(own.keys() & extra_config.keys()):
            them = "it" if len(taken) == 1 else "them"
            raise ConfigError(f"extra_config cannot set {', '.join(taken)}: the run records {them} itself (from the "
                              f"trainer, the data and fit's arguments); set {them} there, or choose other names")
        return {**own, **extra_config}

    @contextmanager
    def _workers_of_run(self, workers: int | None) -> Iterator[None]:
        """A resumed run's number of workers (``workers``, config.json's, checked; the shards its
        batches are drawn from), for a trainer that was not told one, while the block checks the
        resume against the run (the fit takes it in :meth:`_decide_workers`)."""
        if workers is None or self._told_workers() is not None:
            yield
            return
        before, self._fit_workers = self._fit_workers, workers
        try:
            yield
        finally:
            self._fit_workers = before

    def _decide_workers(self, run_workers: int | None) -> None:
        """The number of workers this fit uses, for a trainer that was not told one: a resumed
        run's (``run_workers``), or for a new run (None) the trainer's own choice, made afresh each
        fit. Called once the session is up (a distributed trainer asks Ray for its CPUs), before
        the training starts, or as a resumed run that had ended is returned; ``shards`` reports it
        until the next fit decides again."""
        raise NotImplementedError

    def _fit(self, train: Dataset, validation: Dataset | None, run: RunDir | None, start: Start,
             reporter: Reporter) -> FitResult:
        checkpoint = start.checkpoint
        carried = None  # a resume within an epoch: that epoch's batches are those it began with
        if checkpoint is not None and checkpoint.step:
            carried = (checkpoint.epoch, checkpoint.epoch_shards or checkpoint.config.get("workers", self.shards))
        plan = BatchPlan(len(train), self.batch_size, self.shards, self.seed, carried=carried)
        epochs, eval_every, window, acceptable_error, checkpoint_every = itemgetter(
            "epochs", "eval_every", "window", "acceptable_error", "checkpoint_every")(start.settings)  # by name
        self._schedule_epochs = epochs  # the schedule's horizon, which sets every epoch's rate
        self._base_rate = self.optimizer.learning_rate
        if run is not None:
            run.resumed_with = dict(start.record)  # (the advice of a resume that fails to start gives them)
        try:
            self._open(train, validation, plan)
            if start.warning:  # not before: a resume on more workers than the cluster can place fails instead
                warn(start.warning)
            if run is not None and start.record:
                run.update_config(start.record)
            if run is not None and checkpoint is not None:
                run.remove_summary()  # of an end the run trains on past: not its result any more
            notes = trained_on_notes(train)
            stopping = self._early_stopping(self.network.spec(), window, acceptable_error,
                                            run.best_path if run else None, notes)
            # Training time, from here: without the start of a distributed trainer's actors, the stop
            # evaluator's included (it counted, ~0.6 s of a 0.7 s fit).
            started = time.perf_counter()
            loop = _Loop(plan, ChunkSizer(plan.steps_per_epoch), run, start.config, stopping, reporter,
                         checkpoint_every, list(checkpoint.history) if checkpoint else [],
                         checkpoint.seconds if checkpoint else 0.0, started, notes=notes)
            owed = checkpoint is not None and evaluation_owed(checkpoint, epochs, eval_every)
            epoch, step, stats, verdict = self._restore(loop, checkpoint, redrawn=start.warning is not None, owed=owed)
            # A copy: what a reporter does to what it is told must not reach the run's checkpoints.
            reporter.on_start(copy.deepcopy(self._start_info(loop, epochs, epoch, step, train)))
            if owed:
                verdict = self._evaluate(loop, epoch, *checkpoint.finished_epoch, validation) or verdict
                self._checkpoint(loop, epoch, 0, StepStats(), finished=checkpoint.finished_epoch)
                reporter.on_evaluation(dict(loop.history[-1]))
            while epoch < epochs and not (verdict and verdict.stop):
                stats, epoch_seconds = self._train_epoch(loop, epoch, step, stats)
                epoch, step = epoch + 1, 0
                evaluated = epoch % eval_every == 0 or epoch == epochs
                if evaluated and run and validation is not None and not run.has_checkpoint():
                    # Before the stop rule writes the run's first best.npz: killed in between, the run
                    # is resumed (owing this evaluation), not a folder of a best network and nothing
                    # to resume.
                    self._checkpoint(loop, epoch, 0, StepStats(), finished=(stats, epoch_seconds))
                if evaluated:
                    verdict = self._evaluate(loop, epoch, stats, epoch_seconds, validation) or verdict
                if run:
                    self._checkpoint(loop, epoch, 0, StepStats(), finished=(stats, epoch_seconds))
                if evaluated:  # once checkpointed: a reporter that fails (its reader gone) leaves a run to resume
                    reporter.on_evaluation(dict(loop.history[-1]))
                stats = StepStats()
            return self._finish(loop, epoch, verdict)
        finally:
            self.optimizer.learning_rate, self._base_rate = self._base_rate, None
            self._close()

    def _restore(self, loop: _Loop, checkpoint: Checkpoint | None, redrawn: bool = False,
                 owed: bool = False) -> tuple[int, int, StepStats, Verdict | None]:
        """Continue from ``checkpoint`` (None: a new run); where it stands (epoch, step), the
        statistics of that epoch's steps so far, and the stop rule's standing (None before the
        first evaluation). ``redrawn``: the run goes on otherwise than it would have (other
        workers), and will not train again a best network saved after its checkpoint. ``owed``:
        the checkpoint owes the evaluation of the epoch it stands after."""
        if checkpoint is None:
            return 0, 0, StepStats(), None
        self._load_state(checkpoint.params, checkpoint.optimizer_state, (checkpoint.epoch, checkpoint.step))
        loop.run.rewrite_history(loop.history)
        state = checkpoint.stopping_state
        position = checkpoint.epoch, checkpoint.step, replace(checkpoint.epoch_stats)  # a copy: the steps add to it
        if state is None or state["best_epoch"] < 0:  # before the first evaluation: any best.npz came after
            if redrawn and not owed:  # (owed, it is that evaluation's, of these parameters, which it makes again)
                set_aside_newer_best(loop.run, _GOES_ON_OTHERWISE, "the next evaluation writes best.npz anew")
            return *position, None
        loop.best_params = best_params_of(loop.run, checkpoint)
        loop.stopping.load_state(state, loop.best_params)
        if checkpoint.best_params is not None and not holds_best(loop.run, loop.best_params, state["best_epoch"]):
            if redrawn:
                set_aside_newer_best(loop.run, _GOES_ON_OTHERWISE, "best.npz restarts from the checkpoint's")
            loop.stopping.save_best()  # best.npz as of the checkpoint: a crash left it ahead, or damaged
        evaluator = StopEvaluator.from_state(state["evaluator"])
        return *position, Verdict(False, False, evaluator.lowest, state["best_epoch"])

    def _start_info(self, loop: _Loop, epochs: int, epoch: int, step: int, train: Dataset) -> dict:
        """What the reporter's ``on_start`` is told of a fit of at most ``epochs`` epochs that
        starts at ``step`` of ``epoch`` (0-based) on ``train`` (see :meth:`~distnet.progress.Reporter.on_start`)."""
        return {"steps_per_epoch": loop.plan.steps_per_epoch, "epochs": epochs,
                "batch_size": self.batch_size, "distributed": self.distributed,
                "workers": self.shards if self.distributed else 0, "shards": self.shards,
                "first_epoch": epoch + 1, "first_step": step,
                "parameters": self.network.parameter_count, "sizes": self.network.sizes,
                "optimizer": loop.config["optimizer"], "l2": self.rule.l2, "schedule": loop.config["schedule"],
                "augmentation": loop.config["augmentation"],
                # No temporary the size of the data: two passes instead of np.abs.
                "largest_input": max(float(train.images.max()), -float(train.images.min()))}

    def _train_epoch(self, loop: _Loop, epoch: int, step: int, stats: StepStats) -> tuple[StepStats, float]:
        """Steps ``step`` to the end of ``epoch`` (0-based) in chunks, each reported, with the
        checkpoints ``checkpoint_every`` asks for between them; the epoch's statistics (added to
        ``stats``, those of its steps before ``step``) and its seconds."""
        epoch_started = time.perf_counter()
        if self.schedule is not None:
            self._set_learning_rate(self._scheduled_rate(epoch))
        steps = loop.plan.steps_per_epoch
        while step < steps:
            stop = loop.chunks.end(step)
            if loop.checkpoint_every:
                stop = min(stop, step + loop.checkpoint_every - loop.since_checkpoint)
            chunk_started = time.perf_counter()
            chunk_stats, params_finite = self._run_steps(epoch, step, stop)
            loop.chunks.record(stop - step, time.perf_counter() - chunk_started)
            if not (math.isfinite(chunk_stats.cost) and params_finite):
                raise self._diverged(loop, epoch, stop)
            stats += chunk_stats
            loop.since_checkpoint += stop - step
            step = stop
            loop.reporter.on_steps(epoch + 1, step, steps, replace(stats), time.perf_counter() - epoch_started)
            if loop.checkpoint_every and loop.since_checkpoint >= loop.checkpoint_every and step < steps:
                self._checkpoint(loop, epoch, step, stats)
        return stats, time.perf_counter() - epoch_started

    def _evaluate(self, loop: _Loop, epoch: int, stats: StepStats, epoch_seconds: float,
                  validation: Dataset | None) -> Verdict | None:
        """The evaluation after ``epoch`` (1-based, whose steps' statistics are ``stats``): its
        history record written (the caller reports it, once the epoch is checkpointed); with a
        validation set, the stop rule's verdict on it."""
        record = {"epoch": epoch, "train_error": stats.error_rate, "train_cost": stats.cost / max(stats.samples, 1)}
        verdict = None
        if validation is not None:
            error, params = self._validation_error_rate(), self._params()
            try:
                verdict = loop.stopping.evaluate(epoch, error, params)
            except ConfigError:
                if loop.run:  # a run folder moved away, which the stop rule will not write into: say where
                    loop.run.check_in_place()
                raise
            if verdict.improved:
                loop.best_params = np.array(params, copy=True)  # for the checkpoints, without asking the stop rule
            record |= {"validation_error": error, "best_error": verdict.best_error, "best_epoch": verdict.best_epoch}
        # The rate the epoch trained at: an evaluation a resume owes comes before any epoch has set it.
        rate = self._scheduled_rate(epoch - 1) if self.schedule is not None else self.optimizer.learning_rate
        record |= {"learning_rate": rate, "epoch_seconds": epoch_seconds, "elapsed_seconds": loop.seconds()}
        loop.history.append(record)
        if loop.run:
            loop.run.append_history(record)
        return verdict

    def _finish(self, loop: _Loop, epochs: int, verdict: Verdict | None) -> FitResult:
        """The result of a fit that trained ``epochs`` epochs and whose last verdict was ``verdict``."""
        if loop.best_params is not None:
            best = self.network.from_spec(self.network.spec(), loop.best_params)
        else:  # nothing was scored: the last network is the run's result
            best = self.network.from_spec(self.network.spec(), self._params())
            if loop.run and verdict is None:  # (with a verdict the best network was lost: nothing to save)
                loop.run.check_in_place()
                best.save(loop.run.best_path, notes=loop.notes)
        result = FitResult(best_network=best, best_error=verdict.best_error if verdict else math.nan,
                           best_epoch=verdict.best_epoch if verdict else epochs, epochs=epochs,
                           stop_reason="early_stop" if verdict and verdict.stop else "max_epochs",
                           history=loop.history, run_dir=loop.run.path if loop.run else None,
                           seconds=loop.seconds())
        self.network.set_params(self._params())
        loop.reporter.on_end(result)
        return result

    def _checkpoint(self, loop: _Loop, epoch: int, step: int, stats: StepStats,
                    finished: tuple[StepStats, float] | None = None) -> None:
        loop.run.save_checkpoint(Checkpoint(epoch=epoch, step=step, params=self._params(),
                                            optimizer_state=self._optimizer_state(),
                                            stopping_state=loop.stopping.state(), history=loop.history,
                                            config=loop.config, epoch_stats=replace(stats), seconds=loop.seconds(),
                                            best_params=loop.best_params, epoch_shards=loop.plan.shards_of(epoch),
                                            finished_epoch=finished))
        loop.since_checkpoint = 0

    def _diverged(self, loop: _Loop, epoch: int, step: int) -> TrainingDivergedError:
        """The error for a training that diverged in ``epoch`` (0-based) by ``step``: what to do,
        where the run's files are, and the best network so far (the trainer's is diverged now)."""
        run = loop.run
        where = f"epoch {epoch + 1}, by step {step}"
        advice = (f"the learning rate ({self.optimizer.learning_rate:g}) is probably too high; "
                  f"try a smaller one")
        kept = [name for name, path in (("best network so far", run and run.best_path),
                                        ("last checkpoint", run and run.checkpoint_path))
                if path is not None and path.exists()]
        kept = f"; the {' and the '.join(kept)} in {run.path} are intact" if kept else ""
        scored = [record for record in loop.history if record.get("best_epoch", -1) >= 0]
        best = None
        if loop.best_params is not None and scored:
            best = self.network.from_spec(self.network.spec(), loop.best_params)
            if not kept:  # without a run directory, the error is where it is kept
                kept = (f"; the best network so far (epoch {scored[-1]['best_epoch']}, validation error "
                        f"{scored[-1]['best_error']:.2%}) is this error's best_network")
        return TrainingDivergedError(f"training diverged ({where}: the cost or the parameters became NaN or "
                                     f"infinite): {advice}{kept}", best_network=best)

    # -- what subclasses provide ------------------------------------------------------------------
    def _open(self, train: Dataset, validation: Dataset | None, plan: BatchPlan) -> None:
        raise NotImplementedError

    def _run_steps(self, epoch: int, start: int, stop: int) -> tuple[StepStats, bool]:
        """Run steps [start, stop) of ``epoch``; their statistics, and whether every parameter is
        still finite afterwards."""
        raise NotImplementedError

    def _validation_error_rate(self) -> float:
        """The error rate of the current parameters on the validation set given to ``_open``."""
        raise NotImplementedError

    def _params(self) -> np.ndarray:
        raise NotImplementedError

    def _optimizer_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_state(self, params: np.ndarray, optimizer_state: dict[str, np.ndarray],
                    position: tuple[int, int]) -> None:
        """Continue from a checkpoint's state, which stands before step ``position`` = (epoch, step)."""
        raise NotImplementedError

    def _scheduled_rate(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based) under the schedule."""
        return self.learning_rate * self.schedule.factor(epoch, self._schedule_epochs)

    def _set_learning_rate(self, learning_rate: float) -> None:
        """The rate for the epoch about to start (only called with a schedule)."""
        self.optimizer.learning_rate = learning_rate

    def _early_stopping(self, network_spec: dict, window: int, acceptable_error: float | None,
                        best_path: Path | None, notes: dict | None = None) -> Stopping:
        """The keeper of the best network (writing it, with ``notes``, to ``best_path``)."""
        return EarlyStopping(network_spec, window, acceptable_error, best_path, notes)

    def _close(self) -> None:
        pass


def trained_on_notes(train: Dataset) -> dict:
    """The notes a run saves with its networks (see :meth:`Network.save`): the data they were
    trained on, ``{"trained_on": {"name": "mnist/train", "classes": ["0", ..., "9"]}}``, as text
    (a Dataset of your own may name itself or its classes with any object)."""
    return {"trained_on": {"name": str(train.name), "classes": [str(c) for c in train.classes]}}
