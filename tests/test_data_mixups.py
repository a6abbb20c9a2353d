"""A data folder with a real file under another file's name: each mix-up is named for what it is
(a file copied over another of the same data set, one file of the other data set, or a whole
folder of the other data set), from the command line as from Python."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from distnet.data import load_mnist, load_test_set
from distnet.errors import ChecksumError
from test_datasets import DATA_ROOT, FILES, needs
import test_robustness
from test_robustness import cli

# test_robustness's fixtures, here as there: a model, and no shared data folder, cache or reachable mirror
# (offline is autouse) to find the files elsewhere or download them.
model, offline = test_robustness.model, test_robustness.offline

TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = (f"{base}.gz" for base in FILES[1:])
pytestmark = [needs("mnist"), needs("fashion-mnist")]


def real_files(folder: Path, name: str, files: tuple[str, ...] = tuple(f"{base}.gz" for base in FILES)) -> Path:
    """A writable copy of data set ``name``'s published ``files`` in ``folder``."""
    folder.mkdir()
    for file in files:
        shutil.copyfile(DATA_ROOT / name / file, folder / file)
    return folder


def evaluate_error(capsys, model: Path, folder: Path, *options: str) -> str:
    """The message of ``distnet evaluate`` on MNIST in ``folder``, which must fail."""
    status, out, err = cli(capsys, "evaluate", model, "--data-dir", folder, "--dataset", "mnist", *options)
    assert status == 2 and out == "", err
    assert err.startswith("distnet: error: ") and err.count("\n") == 1, err
    return err.removeprefix("distnet: error: ").rstrip("\n")


@pytest.mark.parametrize("copied", [TEST_IMAGES, TRAIN_LABELS])
def test_a_file_copied_over_another_of_the_same_data_set(capsys, tmp_path, model, copied):
    folder = real_files(tmp_path / "mnist", "mnist")
    shutil.copyfile(folder / copied, folder / TEST_LABELS)
    said = (f"{(folder / TEST_LABELS).resolve()} holds MNIST's {copied} (its SHA-256 is that file's): a file copied "
            f"or renamed over it; replace it with the real MNIST {TEST_LABELS}")
    assert evaluate_error(capsys, model, folder) == f"{said}, or delete it to download it again"
    assert evaluate_error(capsys, model, folder, "--no-download") == said
    with pytest.raises(ChecksumError) as caught:
        load_mnist(data_dir=folder, download=False)
    assert str(caught.value) == said


def test_one_file_of_the_other_data_set_among_this_ones(capsys, tmp_path, model):
    folder = real_files(tmp_path / "mnist", "mnist")
    shutil.copyfile(DATA_ROOT / "fashion-mnist" / TEST_LABELS, folder / TEST_LABELS)
    said = (f"{(folder / TEST_LABELS).resolve()} holds Fashion-MNIST's {TEST_LABELS} (its SHA-256 is that file's), "
            f"not MNIST's {TEST_LABELS}; replace it with the real MNIST {TEST_LABELS}")
    assert evaluate_error(capsys, model, folder) == f"{said}, or delete it to download it again"
    with pytest.raises(ChecksumError) as caught:
        load_mnist(data_dir=folder, download=False)
    assert str(caught.value) == said


def test_one_file_of_the_other_data_set_under_another_name(tmp_path):
    folder = real_files(tmp_path / "mnist", "mnist", (TEST_IMAGES, TEST_LABELS))
    shutil.copyfile(DATA_ROOT / "fashion-mnist" / TEST_IMAGES, folder / TEST_LABELS)
    with pytest.raises(ChecksumError) as caught:
        load_test_set("mnist", data_dir=folder, download=False)
    assert str(caught.value) == (
        f"{(folder / TEST_LABELS).resolve()} holds Fashion-MNIST's {TEST_IMAGES} (its SHA-256 is that file's), "
        f"not MNIST's {TEST_LABELS}; replace it with the real MNIST {TEST_LABELS}")


def test_a_folder_of_the_other_data_set(capsys, tmp_path, model):
    folder = real_files(tmp_path / "fashion", "fashion-mnist")
    advice = ("not MNIST's: its folder holds the Fashion-MNIST files; use them with --dataset fashion-mnist "
              "(load_dataset('fashion-mnist') in Python), or give the folder that holds the MNIST files")
    first_test_file = (folder / TEST_IMAGES).resolve()
    assert evaluate_error(capsys, model, folder) == f"{first_test_file} is Fashion-MNIST's {TEST_IMAGES}, {advice}"
    with pytest.raises(ChecksumError) as caught:
        load_mnist(data_dir=folder, download=False)
    first_file = (folder / f"{FILES[0]}.gz").resolve()
    assert str(caught.value) == f"{first_file} is Fashion-MNIST's {FILES[0]}.gz, {advice}"
