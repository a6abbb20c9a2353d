"""Every actor of a distributed run must run the driver's distnet: a node whose path finds another
copy first (an older install, a folder with a checkout) is refused before the first step."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distnet.distributed.same_code import distnet_code

REPO = Path(__file__).resolve().parents[1]

# Run from a folder without distnet in it: Ray puts the driver's folder first on every actor's path,
# which would hide the copy the workers are given below.
WORKERS_ON_A_COPY = """
import json, sys
import ray
import distnet.distributed.trainer as trainer_module
from distnet import ConfigError, Dense, Nesterov, Network, load_mnist
from distnet.distributed import DistributedTrainer

ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
train = load_mnist(download=False).train.subset(slice(0, 640))
outcomes = {}
for copy in sys.argv[1:]:
    # The gradient workers find this copy first; the parameter server, the driver's.
    trainer_module._WORKER_ENV = {**trainer_module._WORKER_ENV, "PYTHONPATH": copy}
    trainer = DistributedTrainer(Network([Dense(10, "softmax")], input_size=784, seed=1), Nesterov(0.02, 0.87),
                                 batch_size=32, seed=1, workers=2)
    try:
        trainer.fit(train, None, epochs=1, run_dir=copy + "-run")
        outcomes[copy] = "trained"
    except ConfigError as e:
        outcomes[copy] = str(e)
ray.shutdown()
print(json.dumps(outcomes))
"""


def copy_of_distnet(folder: Path, change: str | None = None) -> Path:
    shutil.copytree(REPO / "distnet", folder / "distnet", ignore=shutil.ignore_patterns("__pycache__"))
    if change is not None:
        with open(folder / "distnet" / "batches.py", "a") as f:
            f.write(change)
    return folder


@pytest.mark.slow
def test_workers_running_another_distnet_are_refused_before_the_first_step_and_the_same_code_elsewhere_is_not(
        tmp_path):
    older, same = copy_of_distnet(tmp_path / "older", "\n# an older copy\n"), copy_of_distnet(tmp_path / "same")
    before_the_check = copy_of_distnet(tmp_path / "before")
    # A distnet from before the check: no code of its own to tell.
    (before_the_check / "distnet" / "distributed" / "same_code.py").write_text("def check_same_code(actors):\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", WORKERS_ON_A_COPY, str(older), str(same), str(before_the_check)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout.splitlines()[-1])
    assert outcomes[str(same)] == "trained"
    refused = outcomes[str(older)]
    assert refused.startswith("worker 0 (node ") and refused.endswith(
        f" runs distnet from {older / 'distnet'}, whose code differs from this driver's ({REPO / 'distnet'}): every "
        f"node of the cluster must run the same distnet. Install this one on every node (a cluster from "
        f"cluster/cluster.yaml: 'ray up' again), and run the driver from a folder that holds no other copy (Ray puts "
        f"the driver's folder first on every actor's path); or train with 'distnet submit', which sends the job this "
        f"copy"), refused
    assert not (Path(str(older) + "-run") / "checkpoint.npz").exists()  # refused before anything was trained
    assert re.fullmatch(r"worker 0 \(node \w{8} on .+\) runs an older distnet, whose code differs from this "
                        r"driver's .*", outcomes[str(before_the_check)])


def test_the_code_digest_covers_every_source_file_and_not_where_the_package_is(tmp_path):
    path, digest = distnet_code()
    assert Path(path) == REPO / "distnet" and len(digest) == 64
    probe = "from distnet.distributed.same_code import distnet_code; print(*distnet_code())"

    def code_of(folder: Path) -> list[str]:
        done = subprocess.run([sys.executable, "-c", probe], cwd=folder, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(folder)}, check=True)
        return done.stdout.split()

    same, changed = copy_of_distnet(tmp_path / "same"), copy_of_distnet(tmp_path / "changed", "\n")
    assert code_of(same) == [str(same / "distnet"), digest]
    assert code_of(changed)[0] == str(changed / "distnet") and code_of(changed)[1] != digest
    (same / "distnet" / "nn" / "extra.py").write_text("")  # a new module is new code too
    assert code_of(same)[1] != digest


EDITED_AFTER_IMPORT = """
import sys
import distnet
from distnet import ConfigError
from distnet.distributed.same_code import check_same_code

check_same_code({})  # as imported: nothing to say
with open(sys.argv[1], "a") as f:
    f.write("# edited while the process ran\\n")
try:
    check_same_code({})
    print("not refused")
except ConfigError as e:
    print(e)
"""


def test_a_driver_whose_distnet_was_edited_since_it_imported_it_is_told_to_restart(tmp_path):
    # As in a notebook on an editable install: actors would import the edited files, the driver
    # runs what it imported. The digest compared with the actors' was taken from the files as they
    # were at the first fit: an edit before it went unnoticed, one after it was blamed on a node.
    copy = copy_of_distnet(tmp_path / "copy")
    edited = copy / "distnet" / "metrics.py"
    done = subprocess.run([sys.executable, "-c", EDITED_AFTER_IMPORT, str(edited)], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(copy)}, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == (f"distnet's source in {copy / 'distnet'} changed since this process imported it "
                                   f"(metrics.py): its actors would run the new code and this process the old; "
                                   f"restart the Python process (in a notebook, its kernel) to train with the new")


def test_files_edited_as_the_actors_read_them_are_said_so_not_blamed_on_another_machine(monkeypatch):
    """Edited between the driver's check and the actors' reading, the same folder's code differs:
    it read "(the same folder, on another machine)" (a cluster audit, while files were edited)."""
    from types import SimpleNamespace

    from distnet import ConfigError
    from distnet.distributed import same_code

    looks = iter([[], ["nn/costs.py"]])  # unchanged at the first look, changed at the second
    monkeypatch.setattr(same_code, "changed_since_import", lambda: next(looks))
    path, _ = distnet_code()
    monkeypatch.setattr(same_code.ray, "get", lambda answer: (path, "the edited files' digest"))
    actor = SimpleNamespace(__ray_call__=SimpleNamespace(remote=lambda function: None))
    with pytest.raises(ConfigError, match=r"^distnet's source in .+ changed since this process imported it "
                                          r"\(nn/costs.py\): its actors would run the new code"):
        same_code.check_same_code({"worker 0": actor})
