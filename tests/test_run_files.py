"""RunDir and Checkpoint, unit by unit: what a run folder's files must and must not hold."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from distnet.checkpoint import Checkpoint
from distnet.errors import ConfigError, ModelFormatError
from distnet.rundir import REQUIRED_CONFIG, RunDir, shell_path

CONFIG = {key: 1 for key in REQUIRED_CONFIG}


def test_a_new_run_does_not_inherit_the_failures_of_a_run_that_saved_nothing(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.create(CONFIG)
    run.append_failure("worker 1 lost at epoch 1, step 3")  # that run then failed before any checkpoint
    run.create(CONFIG)
    assert run.failures() == []  # its summary.json would list failures that never happened to it


def test_failures_accumulate_and_lines_that_are_not_records_are_skipped(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.create(CONFIG)
    run.append_failure("a")
    run.append_failure("b")
    assert run.failures() == ["a", "b"]
    run.failures_path.write_text('[1]\n"text"\n{"what": "w"}\n' + "[" * 100_000 + "\n")  # edited by hand
    assert run.failures() == ["w"]  # the last line: RecursionError before


def test_a_history_nested_beyond_reason_is_not_the_checkpoint_s(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.create(CONFIG)
    run.rewrite_history([{"epoch": 5}])
    assert run.history_holds([{"epoch": 5}])
    run.history_path.write_text('{"epoch": 5}\n' + "[" * 100_000 + "\n")
    assert not run.history_holds([{"epoch": 5}])  # RecursionError before


def test_a_folder_that_existed_before_is_kept_when_the_block_fails(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()  # the user's, made before the run
    with pytest.raises(RuntimeError):
        with RunDir(tmp_path / "run").held(create=True):
            raise RuntimeError("Ray could not be joined")
    assert (tmp_path / "run").is_dir()
    with pytest.raises(RuntimeError):
        with RunDir(tmp_path / "made").held(create=True):
            raise RuntimeError("Ray could not be joined")
    assert not (tmp_path / "made").exists()  # one this call made is removed again


@pytest.mark.parametrize("saved", [None, "history", "failure", "own file"])
def test_a_folder_a_failed_new_run_made_goes_unless_the_run_saved_something_in_it(tmp_path: Path, saved) -> None:
    run = RunDir(tmp_path / "made")
    with pytest.raises(RuntimeError):
        with run.held(create=True):
            run.create(CONFIG)  # config.json and an empty history.jsonl: nothing to resume or look at
            if saved == "history":
                run.append_history({"epoch": 1, "train_error": 0.5})
            elif saved == "failure":
                run.append_failure("worker 1 lost")
            elif saved == "own file":
                (run.path / "notes.txt").write_text("the user's")
            raise RuntimeError("no room for the workers")
    assert run.path.exists() == (saved is not None)
    if saved:
        assert run.config_path.exists()


@pytest.mark.parametrize("missing", ["window", "seed", "network"])
def test_a_config_without_a_setting_a_resume_needs_is_refused(tmp_path: Path, missing: str) -> None:
    run = RunDir(tmp_path / "run")
    run.create(CONFIG)
    run.config_path.write_text(json.dumps({k: v for k, v in CONFIG.items() if k != missing}))
    with pytest.raises(ModelFormatError, match=f"missing {missing}"):
        run.config()


@pytest.mark.parametrize("epoch, step", [(0, -1), (-1, 0)])
def test_a_checkpoint_of_a_negative_epoch_or_step_is_refused(tmp_path: Path, epoch: int, step: int) -> None:
    Checkpoint(epoch=epoch, step=step, params=np.zeros(3), optimizer_state={}, stopping_state=None, history=[],
               config={}).save(tmp_path / "c.npz")
    with pytest.raises(ModelFormatError, match="negative epoch or step"):
        Checkpoint.load(tmp_path / "c.npz")


@pytest.mark.parametrize("params, best, defect", [
    (np.arange(3, dtype=np.int64), None, r"the parameters are not a vector of floats \(int64, shape \(3,\)\)"),
    (np.zeros((1, 3)), None, r"the parameters are not a vector of floats \(float64, shape \(1, 3\)\)"),
    (np.zeros(3), np.arange(3, dtype=np.int64),
     r"the best network's parameters are not a vector of floats \(int64, shape \(3,\)\)"),
    (np.zeros(3), np.zeros(4), "holds 4 parameters of the best network and 3 of the last"),
])
def test_a_checkpoint_whose_parameters_are_no_vector_of_floats_or_differ_from_the_best_is_refused(
        tmp_path: Path, params: np.ndarray, best: np.ndarray | None, defect: str) -> None:
    Checkpoint(epoch=1, step=0, params=params, optimizer_state={}, stopping_state=None, history=[], config={},
               best_params=best).save(tmp_path / "c.npz")
    with pytest.raises(ModelFormatError, match=f"c.npz: {defect}"):
        Checkpoint.load(tmp_path / "c.npz")


def test_a_checkpoint_whose_metadata_lacks_the_stopping_state_is_refused(tmp_path: Path) -> None:
    """Found by the checkpoint fuzzer (test_fuzz_loaders): a missing stopping_state passed the type
    check (None is a valid one) and then raised KeyError, which no caller expects; a run directory
    falls back to the previous checkpoint on ModelFormatError only."""
    from distnet.io import npz_bytes

    meta = {"format": "distnet.checkpoint", "version": 1, "epoch": 0, "step": 0, "history": [], "config": {}}
    (tmp_path / "c.npz").write_bytes(npz_bytes({"params": np.zeros(3, np.float32)}, meta))
    with pytest.raises(ModelFormatError, match=r"c.npz: checkpoint metadata is incomplete or malformed "
                                               r"\(stopping_state\)$"):
        Checkpoint.load(tmp_path / "c.npz")
    (tmp_path / "c.npz").write_bytes(npz_bytes({"params": np.zeros(3, np.float32)}, {**meta, "stopping_state": None}))
    assert Checkpoint.load(tmp_path / "c.npz").stopping_state is None  # None itself is one


@pytest.mark.parametrize("shards", [0, -1, 1.5, True])
def test_a_checkpoint_whose_epoch_is_drawn_from_no_shards_is_refused(tmp_path: Path, shards) -> None:
    checkpoint = Checkpoint(epoch=1, step=0, params=np.zeros(3), optimizer_state={}, stopping_state=None,
                            history=[], config={}, epoch_shards=1)
    checkpoint.save(tmp_path / "good.npz")
    assert Checkpoint.load(tmp_path / "good.npz").epoch_shards == 1
    checkpoint.epoch_shards = shards
    checkpoint.save(tmp_path / "c.npz")
    with pytest.raises(ModelFormatError, match=r"checkpoint metadata is malformed \(epoch_shards\)"):
        Checkpoint.load(tmp_path / "c.npz")


def test_nothing_is_written_into_a_new_folder_where_the_run_folder_was(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.create(CONFIG)
    (tmp_path / "run").rename(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=f"^the run directory {tmp_path / 'run'} is gone \\(moved or removed\\); "
                                          f"nothing more was written: put it back"):
        run.write_summary({"test_error": 0.1})
    assert not (tmp_path / "run").exists()


def test_a_run_folder_is_named_for_a_shell_as_one_word_that_is_no_option() -> None:
    assert [shell_path(p) for p in ("-run", "my run", "/abs/-run", "runs/x", Path("-a b"))] == \
           ["./-run", "'my run'", "/abs/-run", "runs/x", "'./-a b'"]


def test_a_checkpoint_grown_huge_by_damage_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "checkpoint.npz"
    Checkpoint(epoch=1, step=0, params=np.arange(3.0), optimizer_state={}, stopping_state=None, history=[],
               config={}).save(path)
    os.truncate(path, 2**31)  # 2 GB, zeros after the checkpoint (a sparse file: no disk taken)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match="checkpoint.npz: not a readable .npz file; truncated or corrupt"):
            Checkpoint.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # not a copy of 2 GB in memory (RunDir.load_checkpoint then falls back to the previous)


def test_a_run_is_continued_the_way_it_was_started(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.create(CONFIG)  # as fit writes it: no data set, which the command line records
    assert run.resume_command() == (f"fit(train, validation, run_dir={str(run.path)!r}, resume=True) in Python on the "
                                    f"run's data")
    assert run.resume_command(workers=1).endswith("in Python on the run's data, with workers=1")
    assert run.start_again_command() == f"fit(train, validation, run_dir={str(run.path)!r}, ...) in Python"
    run.update_config({"dataset": "mnist"})  # as distnet train writes it
    assert run.resume_command() == f"distnet train --resume {run.path}"
    assert run.resume_command(workers=1) == f"distnet train --resume {run.path} --workers 1"
    assert run.resume_command(workers=1, address="10.0.0.5:6379") == (f"distnet train --resume {run.path} --workers 1 "
                                                                     f"--address 10.0.0.5:6379")
    assert run.start_again_command() == f"distnet train --run-dir {run.path} ..."
    assert run.start_again_command(["train", "--run-dir", str(run.path), "--hidden", "64 32"]) == (
        f"distnet train --run-dir {run.path} --hidden '64 32'")


def _checkpoint_of(epoch: int) -> Checkpoint:
    return Checkpoint(epoch=epoch, step=0, params=np.full(3, epoch, np.float32), optimizer_state={},
                      stopping_state=None, history=[], config={})


def test_after_a_fallback_to_the_previous_checkpoint_later_saves_rotate_again(tmp_path: Path) -> None:
    """The damaged newest checkpoint is replaced rather than rotated over the good previous one;
    from the save after that, each rotates as before (the previous one kept)."""
    run = RunDir(tmp_path)
    run.save_checkpoint(_checkpoint_of(1))
    run.save_checkpoint(_checkpoint_of(2))
    (tmp_path / "checkpoint.npz").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.warns(UserWarning, match="checkpoint.npz"):
        assert run.load_checkpoint().epoch == 1
    run.save_checkpoint(_checkpoint_of(3))
    assert Checkpoint.load(tmp_path / "checkpoint.prev.npz").epoch == 1  # not the damaged file
    run.save_checkpoint(_checkpoint_of(4))
    assert [Checkpoint.load(tmp_path / name).epoch for name in ("checkpoint.npz", "checkpoint.prev.npz")] == [4, 3]


def test_a_run_holds_its_best_network_only_with_the_epoch_best_json_records(tmp_path: Path) -> None:
    from distnet import Dense, Network
    from distnet.resume import holds_best

    network = Network([Dense(3, "softmax")], input_size=4, seed=0)
    network.save(tmp_path / "best.npz")
    (tmp_path / "best.json").write_text(json.dumps({"epoch": 5, "validation_error": 0.1}))
    assert holds_best(RunDir(tmp_path), network.params, 5)
    assert not holds_best(RunDir(tmp_path), network.params, 3)
    assert not holds_best(RunDir(tmp_path), network.params + 1, 5)
    (tmp_path / "best.json").write_text("[" * 100_000)  # edited by hand: RecursionError before
    assert not holds_best(RunDir(tmp_path), network.params, 5)


def test_a_job_s_line_nested_beyond_reason_is_not_a_json_record() -> None:
    from distnet.commands.submit import _is_json_object

    assert _is_json_object('{"epoch": 5}') and not _is_json_object("[" * 100_000)  # RecursionError before


def test_a_file_written_atomically_is_synced_and_so_is_its_folder(tmp_path: Path, monkeypatch) -> None:
    """Without the folder's sync, the rename that puts the file in place may not survive a crash."""
    import stat

    from distnet import io as distnet_io

    synced = []
    sync = os.fsync
    monkeypatch.setattr(distnet_io.os, "fsync",
                        lambda fd: (synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"),
                                    sync(fd)))
    distnet_io.write_json(tmp_path / "a.json", {})
    assert synced == ["file", "folder"]


def test_an_atomic_write_never_writes_through_a_temporary_file_that_exists(tmp_path: Path, monkeypatch) -> None:
    """Another process's file (or a link planted under the name) stays as it is."""
    from distnet import io as distnet_io

    monkeypatch.setattr(distnet_io.secrets, "token_hex", lambda n: "0123abcd")
    taken = tmp_path / ".a.json.0123abcd.tmp"
    taken.write_text("someone else's")
    with pytest.raises(FileExistsError):
        distnet_io.write_json(tmp_path / "a.json", {})
    assert taken.read_text() == "someone else's" and not (tmp_path / "a.json").exists()


def test_a_new_run_in_the_folder_of_a_killed_one_removes_its_unfinished_writes(tmp_path: Path) -> None:
    """A run killed while writing its first checkpoint left its temporary file for good: the
    advice is to start it again there, and only a resume cleaned up."""
    run = RunDir(tmp_path / "run")
    run.create({key: 1 for key in REQUIRED_CONFIG})
    unfinished = run.path / ".checkpoint.npz.8f44dbd7.tmp"
    unfinished.write_bytes(b"PK\x03\x04 cut short")
    RunDir(run.path).create({key: 2 for key in REQUIRED_CONFIG})
    assert not unfinished.exists() and json.loads(run.config_path.read_text())["batch_size"] == 2
