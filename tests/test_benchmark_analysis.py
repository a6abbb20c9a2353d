"""The benchmarks' arithmetic, pinned with hand-checked numbers.

The other benchmark tests check that the tools run and refuse what they cannot do; none of them
would notice a wrong number. These pin each computation that turns timings into the published
results, on fake clocks and small hand-made result dicts (no Ray, no PyTorch, no training):

* the FLOPs of a sample and of an epoch (benchmarks/workloads.py);
* an epoch's time from a timed run: warm-up epoch left out, a partial epoch scaled to a whole one
  (benchmarks/distnet_cases.py), and the slowest rank of each epoch for DDP and Ray Train
  (benchmarks/torch_peer.py, benchmarks/raytrain_peer.py);
* samples/s, the ratios to PyTorch and to the hardware floor, coordination per step, the choice of
  the best protocol and the targets (benchmarks/report.py);
* the accuracy summary's medians (benchmarks/accuracy.py);
* the GEMM rate (benchmarks/hardware.py);
* the CPU used by other work while a case runs, without the case's own session (benchmarks/speed.py).

Every expected value below is worked out by hand in a comment, so a test that fails says which
piece of arithmetic changed.
"""
from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from benchmarks import accuracy, distnet_cases, hardware, raytrain_peer, report, speed, torch_peer
from benchmarks.case import PREFIX
from benchmarks.distnet_cases import EpochClock, _epoch_result
from benchmarks.workloads import WORKLOADS


def fake_module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


# --- FLOPs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, flops", [
    # 784-36-14-10: weights 784·36 = 28,224, 36·14 = 504, 14·10 = 140 (sum 28,868).
    # Forward 2·28,868 + weight gradients 2·28,868 = 115,472; input gradients of layers 2 and 3
    # only (none for the images): 2·(504 + 140) = 1,288. Total 116,760.
    ("article", 116_760),
    # 784-1024-1024-10: weights 802,816 + 1,048,576 + 10,240 = 1,861,632; 4·1,861,632 = 7,446,528;
    # input gradients 2·(1,048,576 + 10,240) = 2,117,632. Total 9,564,160.
    ("wide", 9_564_160),
])
def test_a_sample_costs_forward_and_backward_products_without_the_first_layer_s_input_gradient(name, flops):
    assert WORKLOADS[name].flops_per_sample == flops


@pytest.mark.parametrize("name, steps, flops", [
    ("article", 1562, 5_836_131_840),  # 50,000 // 32 = 1,562 steps; 116,760 · 1,562 · 32
    ("wide", 97, 474_994_442_240),  # 50,000 // 512 = 97 steps; 9,564,160 · 97 · 512
])
def test_an_epoch_is_every_sample_of_its_whole_batches(name, steps, flops):
    assert (WORKLOADS[name].steps_per_epoch, WORKLOADS[name].flops_per_epoch) == (steps, flops)


# --- epoch times from timed runs ----------------------------------------------------------------

class SomeSamples:
    """A training set of ``n`` samples: all _epoch_result asks of one is its length."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


def test_an_epoch_is_the_median_timed_epoch_without_the_warm_up_scaled_to_the_whole_epoch():
    clock = EpochClock()
    # Quick mode's 25,600 samples: 800 steps of 32, part of the 1,562 of a whole epoch.
    for epoch, seconds in enumerate([9.0, 0.8, 1.6, 1.0], start=1):  # the first is the warm-up
        clock.on_steps(epoch, 400, 800, None, seconds / 2)  # mid-epoch progress is not an epoch's end
        clock.on_steps(epoch, 800, 800, None, seconds)
    assert clock.epoch_seconds == [9.0, 0.8, 1.6, 1.0]
    # median(0.8, 1.6, 1.0) = 1.0 s over the 800 steps timed: 1,250 µs a step; · 1,562 = 1.9525 s.
    # (With the warm-up, the median would be 1.3 s; over 1,562 steps, 640 µs.)
    assert _epoch_result(clock, WORKLOADS["article"], SomeSamples(25_600)) == {
        "epoch_s": pytest.approx(1.9525), "step_us": pytest.approx(1250.0), "epochs_timed": 3, "steps_timed": 800}


# Two ranks, four epochs of 800 steps each (the first a warm-up). Epoch by epoch the slowest
# rank took 1.0, 1.2 and 1.1 s: median 1.1 s, 1,375 µs a step, 1,375 µs · 1,562 = 2.14775 s.
# The fastest rank's would be 0.9 s; the slower rank's own median 1.0 s; with the warm-up, 1.15 s.
RANK_TIMES = {0: [9.0, 0.8, 1.2, 0.9], 1: [8.0, 1.0, 1.0, 1.1]}


def ddp_with_fake_ranks(monkeypatch) -> dict:
    """torch_peer.ddp where each "spawned rank" just reports its RANK_TIMES."""
    class Queue(list):
        put = list.append

        def get(self):
            return self.pop(0)

    def spawn(function, args, nprocs):
        queue = args[-1]
        for rank in sorted(RANK_TIMES, reverse=True):  # the ranks end in any order
            queue.put((rank, RANK_TIMES[rank], 100.0))

    context = types.SimpleNamespace(SimpleQueue=Queue)
    mp = fake_module("torch.multiprocessing", get_context=lambda method: context, spawn=spawn)
    monkeypatch.setitem(sys.modules, "torch", fake_module("torch", multiprocessing=mp))
    monkeypatch.setitem(sys.modules, "torch.multiprocessing", mp)
    monkeypatch.setattr(torch_peer, "training_data",
                        lambda samples: (np.zeros((samples, 1), np.float32), np.zeros(samples, int), "random"))
    return torch_peer.ddp("article", samples=25_600, epochs=4, processes=2)


started: dict = {}  # the options the Ray Train peer started Ray with


def raytrain_with_fake_ranks(monkeypatch) -> dict:
    """raytrain_peer.raytrain where each "Ray Train worker" just writes its RANK_TIMES."""
    class TorchTrainer:
        def __init__(self, loop, train_loop_config, scaling_config, run_config):
            self.out = train_loop_config["out"]

        def fit(self):
            for rank, times in RANK_TIMES.items():
                (Path(self.out) / f"rank-{rank}.json").write_text(json.dumps({"times": times, "rss": 100.0}))

    train = fake_module("ray.train", RunConfig=dict, ScalingConfig=dict)
    ray = fake_module("ray", init=lambda **options: started.update(options), put=lambda value: value,
                      shutdown=lambda: None, train=train)
    for name, module in [("ray", ray), ("ray.train", train), ("torch", fake_module("torch")),
                         ("ray.train.torch", fake_module("ray.train.torch", TorchTrainer=TorchTrainer))]:
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(raytrain_peer, "training_data", lambda samples: (None, None, "random"))
    return raytrain_peer.raytrain("article", samples=25_600, epochs=4, workers=2)


def test_the_ray_train_peer_starts_a_ray_of_its_own_not_a_cluster_ray_address_names(monkeypatch):
    raytrain_with_fake_ranks(monkeypatch)
    assert started["address"] == "local"


def test_the_ray_train_peer_without_ray_train_is_skipped_by_its_name(monkeypatch):
    """Ray's ImportError for a missing ray[train] names no module: the row read "None is not
    installed" (a benchmark audit found it)."""
    class NoRayTrain(types.ModuleType):
        def __getattr__(self, name):
            raise ImportError("Ray Train needs some dependencies that are missing")

    monkeypatch.setitem(sys.modules, "torch", fake_module("torch"))
    monkeypatch.setitem(sys.modules, "ray.train", NoRayTrain("ray.train"))
    assert raytrain_peer.raytrain("article", samples=25_600, epochs=4, workers=2) == {
        "skipped": "ray[train] is not installed (pip install 'ray[train]' torch for the Ray Train peer)"}


def test_a_run_records_the_commit_it_measured():
    import subprocess

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=Path(speed.__file__).parent).stdout.strip()
    assert speed._commit().split()[0] == head


def test_pytorch_s_epoch_and_half_batch_step_are_medians_without_the_warm_up(monkeypatch):
    # Full batches: as the EpochClock test, 1,250 µs a step. Half batches: median(0.5, 0.7, 0.6) = 0.6 s
    # over 800 steps, 750 µs (one timed epoch alone, the second, would give 625 µs).
    epoch_times = {32: iter([9.0, 0.8, 1.6, 1.0]), 16: iter([5.0, 0.5, 0.7, 0.6])}

    class Steps:
        def __init__(self, torch, model, images, labels, batch_size, seed):
            self.times = epoch_times[batch_size]

        def epoch(self, steps):
            assert steps == 800
            return next(self.times)

    torch = fake_module("torch", set_num_threads=lambda n: None, get_num_threads=lambda: 1,
                        manual_seed=lambda seed: None, __version__="fake")
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setattr(torch_peer, "_missing_torch", lambda: None)
    monkeypatch.setattr(torch_peer, "_model", lambda torch, w: None)
    monkeypatch.setattr(torch_peer, "_Steps", Steps)
    monkeypatch.setattr(torch_peer, "training_data", lambda samples: ([None] * samples, None, "random"))
    result = torch_peer.single("article", samples=25_600, epochs=4, threads=1)
    assert (result["epoch_s"], result["step_us"]) == (pytest.approx(1.9525), pytest.approx(1250.0))
    assert result["half_batch_step_us"] == pytest.approx(750.0)


@pytest.mark.parametrize("peer", [ddp_with_fake_ranks, raytrain_with_fake_ranks], ids=["ddp", "ray train"])
def test_a_data_parallel_epoch_lasts_as_long_as_its_slowest_rank(peer, monkeypatch):
    result = peer(monkeypatch)
    assert (result["epoch_s"], result["step_us"]) == (pytest.approx(2.14775), pytest.approx(1375.0))


# --- the analysis of a whole run ----------------------------------------------------------------

def timed(epoch_s: float, step_us: float, threads: int = 1, **extra) -> dict:
    return {"epoch_s": epoch_s, "step_us": step_us, "threads": threads, **extra}


def analysed() -> dict:
    """A small complete run on 2 cores, through report.add_analysis.

    GEMM: 100 GFLOP/s on 1 core, 200 on 2. article: 1,000 steps of 32 (32,000 samples), 1e10
    FLOP an epoch: floors 0.1 s (1 core) and 0.05 s (2). wide: 100 steps of 512 (51,200 samples),
    2e11 FLOP: floors 2 s and 1 s. Every epoch_s is step_us · steps.
    """
    article = {"sizes": [784, 36, 14, 10], "batch_size": 32, "steps_per_epoch": 1000, "flops_per_epoch": 1e10,
               "compute": {"backprop_us": {"1": 100.0, "2": 60.0}, "server_update_us": {"1": 10.0, "2": 15.0}},
               "runs": {"distnet single/1": timed(0.2, 200.0),
                        "distnet single/2": timed(0.15, 150.0, threads=2),
                        "torch single/1": timed(0.5, 500.0, half_batch_step_us=300.0),
                        "distnet channel/2": timed(0.1, 100.0, peak_rss_mb=[180.0, 200.0], shard_mb=74.8),
                        "distnet compiled/2": timed(0.11, 110.0),
                        "distnet plain/2": timed(0.12, 120.0),
                        "torch ddp/2": timed(0.4, 400.0),
                        "ray train/2": timed(0.6, 600.0)}}
    wide = {"sizes": [784, 1024, 1024, 10], "batch_size": 512, "steps_per_epoch": 100, "flops_per_epoch": 2e11,
            "runs": {"distnet single/1": timed(4.0, 40_000.0),  # 51,200 / 4 s = 12,800 samples/s
                     "distnet single/2": timed(2.56, 25_600.0, threads=2),  # 20,000 samples/s
                     "torch single/1": timed(5.12, 51_200.0, half_batch_step_us=30_000.0),  # 10,000
                     "distnet channel/2": timed(2.048, 20_480.0),  # 25,000
                     "distnet plain/2": timed(2.56, 25_600.0, peak_rss_mb=[230.0, 190.0], shard_mb=74.8),  # 20,000
                     "torch ddp/2": timed(2.048, 20_480.0)}}  # 25,000
    results = {"machine": {"cores": 2}, "hardware": {"1": {"best_gflops": 100.0}, "2": {"best_gflops": 200.0}},
               "workloads": {"article": article, "wide": wide}}
    report.add_analysis(results)
    return results


def derived(field: str) -> dict:
    """{(workload, run): the run's ``field``} for every run that has it."""
    return {(name, key): run[field] for name, w in analysed()["workloads"].items()
            for key, run in w["runs"].items() if field in run}


def test_samples_per_second_are_the_epoch_s_samples_at_the_workload_s_own_batch():
    samples_per_s = derived("samples_per_s")
    assert samples_per_s[("article", "distnet channel/2")] == pytest.approx(320_000)  # 1,000 · 32 / 0.1 s
    assert samples_per_s[("article", "distnet single/1")] == pytest.approx(160_000)  # 32,000 / 0.2 s
    assert samples_per_s[("wide", "distnet channel/2")] == pytest.approx(25_000)  # 100 · 512 / 2.048 s
    assert samples_per_s[("wide", "distnet single/1")] == pytest.approx(12_800)  # 51,200 / 4 s


def test_the_ratio_to_pytorch_is_the_run_s_epoch_over_pytorch_s_one_thread_epoch():
    """Below 1 is faster than PyTorch on one thread."""
    ratios = derived("vs_torch_1_thread")
    assert ratios[("article", "distnet single/1")] == pytest.approx(0.4)  # 0.2 / 0.5
    assert ratios[("article", "distnet channel/2")] == pytest.approx(0.2)  # 0.1 / 0.5
    assert ratios[("article", "ray train/2")] == pytest.approx(1.2)  # 0.6 / 0.5
    assert ratios[("wide", "distnet single/1")] == pytest.approx(4.0 / 5.12)


def test_the_hardware_floor_is_per_core_count_and_a_run_is_held_to_the_cores_it_used():
    results = analysed()
    assert results["workloads"]["article"]["hardware_floor_s"] == {"1": pytest.approx(0.1), "2": pytest.approx(0.05)}
    assert results["workloads"]["wide"]["hardware_floor_s"] == {"1": pytest.approx(2.0), "2": pytest.approx(1.0)}
    ratios = derived("vs_hardware_floor")
    assert ratios[("article", "distnet single/1")] == pytest.approx(2.0)  # 1 thread: 0.2 / 0.1
    assert ratios[("article", "distnet single/2")] == pytest.approx(3.0)  # 2 threads: 0.15 / 0.05
    assert ratios[("article", "distnet channel/2")] == pytest.approx(2.0)  # 2 workers of 1 thread: 0.1 / 0.05
    assert ratios[("wide", "distnet single/1")] == pytest.approx(2.0)  # 4 / 2


def test_coordination_is_the_step_minus_the_math_of_one_worker_s_part_of_it():
    math, coordination = derived("step_math_us"), derived("coordination_us")
    # distnet, 2 workers: a worker's backprop on 16 samples (60 µs) + the server's update of 2 (15 µs).
    assert math[("article", "distnet channel/2")] == pytest.approx(75.0)
    assert coordination[("article", "distnet channel/2")] == pytest.approx(25.0)  # 100 − 75
    assert coordination[("article", "distnet plain/2")] == pytest.approx(45.0)  # 120 − 75
    # DDP and Ray Train, 2 ranks: each computes PyTorch's half-batch step (300 µs), not the full one (500 µs).
    assert math[("article", "torch ddp/2")] == pytest.approx(300.0)
    assert coordination[("article", "torch ddp/2")] == pytest.approx(100.0)  # 400 − 300
    assert coordination[("article", "ray train/2")] == pytest.approx(300.0)  # 600 − 300
    assert ("article", "distnet single/1") not in coordination


def test_the_targets_compare_each_value_with_its_limit_in_its_own_direction():
    got = [(t["target"], t["value"], t["limit"], t["met"]) for t in analysed()["targets"]]
    assert got == [
        ("article, 1 process: distnet epoch / PyTorch 1-thread epoch", 0.4, 0.5, True),  # 0.2 / 0.5, at most
        ("article, 1 process: distnet epoch / hardware floor of its core", 2.0, 3.0, True),  # at most
        ("article, 2 workers: coordination µs per step", 25.0, 250, True),  # the channel's, at most
        ("article, 2 workers: distnet epoch / PyTorch 1-thread epoch", 0.2, 0.5, True),  # 0.1 / 0.5, at most
        # Throughput, at least: 25,000 / 20,000 (distnet single/2, the best single process).
        ("wide, 2 workers: throughput / best single process on the same cores", 1.25, 0.9, True),
        ("wide, 2 workers: throughput / PyTorch DDP 2 processes", 1.0, 1.2, False),  # 25,000 / 25,000
        # Memory, at most: the larger worker's peak against its shard + 150 MB.
        ("article, distnet channel/2: worker peak RSS MB", 200.0, 224.8, True),
        ("wide, distnet plain/2: worker peak RSS MB", 230.0, 224.8, False),
    ]


def test_quick_mode_times_every_protocol_at_the_most_workers_the_channel_at_each_and_no_ray_train():
    cases = {case["key"]: case for case in speed._cases(quick=True, cores=2)}
    assert cases["distnet distributed"]["args"]["runs"] == [["channel", 1], ["channel", 2], ["compiled", 2],
                                                             ["plain", 2]]
    assert cases["ray train/2"]["skip"] and not cases["torch ddp/2"].get("skip")
    assert all(not case.get("skip") for case in speed._cases(quick=False, cores=2))


def test_a_worker_s_shard_is_its_part_of_the_images():
    images = np.zeros((50_000, 784), np.float32)  # 149.5 MiB
    assert [distnet_cases.mb_per_worker(images, n) for n in (1, 2)] == [149.5, 74.8]


def test_the_two_worker_targets_take_the_fastest_protocol():
    details = {t["target"]: t["detail"] for t in analysed()["targets"]}
    assert details["article, 2 workers: coordination µs per step"].startswith("best protocol: distnet channel/2;")
    assert details["article, 2 workers: distnet epoch / PyTorch 1-thread epoch"] == "distnet channel/2"
    assert details["wide, 2 workers: throughput / best single process on the same cores"] == \
        "distnet channel/2 vs distnet single/2"


def test_the_step_math_updates_from_n_distinct_gradients_as_the_server_sums_n_workers(monkeypatch):
    seen = {}

    class Server:
        def __init__(self, *args):
            pass

        def apply(self, epoch, step, *results):
            seen[len(results)] = len({id(gradient) for gradient, *_ in results})  # one array N times stays in cache

    monkeypatch.setattr("distnet.distributed.parameter_server.ParameterServer", Server)
    monkeypatch.setattr(distnet_cases, "median_seconds", lambda call, repeats, inner=1: (call(), 1e-6)[1])
    monkeypatch.setattr(distnet_cases, "training_data",
                        lambda samples=None: (np.zeros((64, 784), np.float32), np.zeros(64, int), "random"))
    result = distnet_cases.compute("article", workers=[1, 2], repeats=1)
    assert seen == {1: 1, 2: 2, 4: 4, 8: 8}
    assert sorted(result["server_update_us"]) == [1, 2, 4, 8]


def test_on_more_cores_the_two_worker_targets_still_compare_two_cores_with_two():
    cases = {case["key"] for case in speed._cases(quick=False, cores=16)}
    assert {"torch ddp/2", "ray train/2", "distnet single/2", "torch single/2", "2"} <= cases
    assert {"torch ddp/16", "distnet single/16", "16"} <= cases
    results = analysed()
    results["workloads"]["wide"]["runs"]["distnet single/16"] = {**timed(0.5, 5_000.0, threads=16),
                                                               "samples_per_s": 102_400.0}
    details = {t["target"]: t["detail"] for t in report.targets(results)}
    assert details["wide, 2 workers: throughput / best single process on the same cores"] == \
        "distnet channel/2 vs distnet single/2"


# --- accuracy ----------------------------------------------------------------------------------

def test_the_accuracy_summary_gives_medians_not_means():
    runs = [{"test_error": t, "validation_error": v, "epochs": e, "wall_seconds": s}
            for t, v, e, s in [(0.010, 0.011, 20, 100.0), (0.012, 0.013, 30, 200.0),
                               (0.014, 0.015, 40, 300.0), (0.030, 0.041, 110, 1000.0)]]
    # Four runs, one far off: each median is the middle pair's mean, well away from the mean.
    assert accuracy.summarize(runs) == {
        "runs": 4, "median_test_error": pytest.approx(0.013),  # mean 0.0165
        "min_test_error": 0.010, "max_test_error": 0.030,
        "median_validation_error": pytest.approx(0.014),  # mean 0.02
        "median_epochs": 35,  # mean 50
        "median_wall_seconds": 250.0,  # mean 400
        "total_wall_seconds": 1600.0}


# --- the GEMM rate ------------------------------------------------------------------------------

def test_a_gemm_rate_counts_2_m_k_n_flops_per_product(monkeypatch):
    monkeypatch.setattr(hardware, "median_seconds", lambda call, repeats, inner=1: 1e-4)  # 100 µs a product
    numpy_like_torch = fake_module("torch", set_num_threads=lambda threads: None,
                                   rand=lambda *shape: hardware.np.ones(shape, dtype=hardware.np.float32))
    monkeypatch.setitem(sys.modules, "torch", numpy_like_torch)
    rates = hardware.gemm(threads=1, size=200, repeats=1)
    # 2 · 200³ = 16,000,000 FLOP in 100 µs: 160 GFLOP/s, by NumPy and by "PyTorch" alike.
    assert rates["numpy_gflops"] == pytest.approx(160.0)
    assert rates["torch_gflops"] == pytest.approx(160.0)
    assert rates["best_gflops"] == pytest.approx(160.0)
    # The article's first layer, 32 × 784 × 36: 2 · 903,168 = 1,806,336 FLOP in 100 µs.
    assert rates["article_shape_gflops"] == pytest.approx(18.06336)


# --- other work on the machine -----------------------------------------------------------------

class FakeProc:
    """Just enough of /proc, os and time for speed._OtherWork: ``processes`` maps a pid to its
    (session, utime, stime) in ticks of 1/100 s; a pid listed but without a stat file has ended."""

    def __init__(self, me: int, processes: dict, ended=()):
        self.me, self.processes, self.ended, self.now = me, processes, set(ended), 0.0

    def scandir(self, path):
        assert path == "/proc"
        return [types.SimpleNamespace(name=name) for name in [*map(str, self.processes), *map(str, self.ended),
                                                               "self", "meminfo"]]

    def getpid(self) -> int:
        return self.me

    def sysconf(self, name: str) -> int:
        assert name == "SC_CLK_TCK"
        return 100

    def monotonic(self) -> float:
        return self.now

    def open(self, path: str):
        pid = int(path.split("/")[2])
        if pid not in self.processes:
            raise FileNotFoundError(path)
        session, utime, stime = self.processes[pid]
        # After the name (which may hold ") "): state ppid pgrp session tty tpgid flags
        # minflt cminflt majflt cmajflt utime stime ...
        return io.StringIO(f"{pid} (a) b) S 1 1 {session} 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0")


def test_other_work_is_the_cpu_of_every_process_outside_the_case_s_session(monkeypatch):
    case = 500  # the case's session (its first process's pid)
    proc = FakeProc(me=10, processes={10: (7, 500, 500), 20: (1, 1000, 0), 500: (case, 100, 0),
                                      501: (case, 0, 0), 30: (1, 50, 0)})
    monkeypatch.setattr(speed, "os", proc)
    monkeypatch.setattr(speed, "time", proc)
    monkeypatch.setattr(speed, "open", proc.open, raising=False)
    watch = speed._OtherWork(case)
    proc.now = 2.0
    proc.processes.update({10: (7, 900, 900),  # this driver: not counted
                           500: (case, 600, 0), 501: (case, 400, 100),  # the case and its worker: +1,000 ticks
                           20: (1, 1150, 50),  # someone else: +200 ticks
                           40: (1, 80, 20)})  # someone else, started meanwhile: +100 ticks
    del proc.processes[30]  # ended meanwhile: its last ticks are not known
    proc.ended.add(30)
    # 300 ticks = 3 s of CPU in 2 s: 1.5 cores (with the case's own 10 s: 6.5).
    assert watch.stop() == 1.5


def test_other_work_during_one_run_of_a_case_is_measured_over_that_run_alone(monkeypatch):
    """The distributed runs share a case process: their other work was the whole case's average,
    so a burst during a 2-second run among 40 seconds of others was averaged away (a benchmark
    audit found it)."""
    proc = FakeProc(me=10, processes={20: (1, 0, 0)})
    monkeypatch.setattr(speed, "os", proc)
    monkeypatch.setattr(speed, "time", proc)
    monkeypatch.setattr(speed, "open", proc.open, raising=False)
    watch = speed._OtherWork(500)
    watch.stopped.set()  # the samples are taken by hand here: at 0, 10, 12 and 40 s
    for now, ticks in ((10.0, 0), (12.0, 300), (40.0, 300)):  # 3 s of someone's CPU between 10 and 12 s
        proc.now, proc.processes[20] = now, (1, ticks, 0)
        watch._sample()
    assert watch.during(10.5, 11.5) == 1.5  # from the sample before (10 s) to the one after (12 s)
    assert watch.during(12.0, 40.0) == 0.0 and watch.during(0.0, 40.0) == 0.07
    runs = {"channel/2": {"epoch_s": 1.0, "window": [10.5, 11.5]}, "plain/2": {"error": "lost"}}
    meta = {"other_work_cores": 0.07, "seconds": 40.0}
    assert {key: speed._run_row(run, meta, watch) for key, run in runs.items()} == {
        "channel/2": {"epoch_s": 1.0, "other_work_cores": 1.5, "seconds": 1.0},
        "plain/2": {"error": "lost", "other_work_cores": 0.07, "seconds": 40.0}}


def test_other_work_during_the_step_math_counts_as_other_work():
    results = analysed()
    for w in results["workloads"].values():
        for run in w["runs"].values():
            run["other_work_cores"] = 0.0
    assert report._busy_max(results) == 0.0
    results["workloads"]["article"]["compute"]["other_work_cores"] = 1.5  # the math read high, coordination low
    assert report._busy_max(results) == 1.5


def test_a_case_runs_in_its_own_session_and_other_work_is_watched_outside_it(monkeypatch):
    seen = {}

    class Case:
        pid, returncode = 4242, 0

        def __init__(self, command, **options):
            seen["options"] = options

        def communicate(self, timeout=None):
            return PREFIX + json.dumps({"epoch_s": 1.0}) + "\n", ""

    class OtherWork:
        def __init__(self, session):
            seen["session"] = session

        def stop(self):
            return 0.25

    monkeypatch.setattr(speed, "subprocess", types.SimpleNamespace(Popen=Case, PIPE=-1))
    monkeypatch.setattr(speed, "_OtherWork", OtherWork)
    result = speed._run_case({"threads": 1, "module": "m", "function": "f", "args": {}}, timeout=10)
    assert seen["options"]["start_new_session"] is True and seen["session"] == 4242
    env = seen["options"]["env"]  # the threads each case is pinned to (the docs' claim; no test held it)
    assert [env[name] for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                   "RAY_worker_niceness")] == ["1", "1", "1", "0"]
    assert result["other_work_cores"] == 0.25
