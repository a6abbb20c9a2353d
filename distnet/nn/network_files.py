"""A network's files: the ``.npz`` that :meth:`Network.save <distnet.nn.network.Network.save>`
writes (the parameters plus JSON metadata) and :meth:`Network.load
<distnet.nn.network.Network.load>` reads, the original's JSON layout on disk, and what is read of a
saved network without building it (:func:`saved_notes`, :func:`spec_sizes`). A run directory
stands for its ``best.npz``; where that is missing or damaged, the error says what the run
directory can do about it.

The :class:`~distnet.nn.network.Network` methods are the API and call these; the functions that
build a network take its class (``cls``), so that this module needs nothing of network.py's.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..checks import home_expanded, json_object, path_of
from ..errors import ConfigError, ModelFormatError
from ..io import atomic_writer, npz_bytes, parse_meta, read_npz, write_json
from .layers import count_parameters

if TYPE_CHECKING:
    from .network import Network

FORMAT = "distnet.network"


def save(net: Network, path: str | os.PathLike, notes: dict | None = None) -> Path:
    """Write ``net`` to ``path``, atomically: see :meth:`Network.save <distnet.nn.network.Network.save>`."""
    path = _file_to_write(path)
    if path.suffix.lower() == ".json":
        raise ConfigError(f"{path}: save writes an .npz file; for the original's JSON layout use "
                          f"save_original_json, or give the file a name ending in .npz")
    data = net.to_npz_bytes(notes)
    with atomic_writer(path) as f:
        f.write(data)
    return path


def to_npz_bytes(net: Network, notes: dict | None = None) -> bytes:
    """The bytes :func:`save` writes (ConfigError, as there, for NaN or infinite parameters)."""
    broken = np.count_nonzero(~np.isfinite(net.params))
    if broken:  # load refuses such a file (see from_npz_bytes): none is written
        raise ConfigError(f"{broken} of the network's {net.params.size} parameters {'is' if broken == 1 else 'are'} "
                          f"NaN or infinite (a training that diverged leaves them so), and Network.load refuses such "
                          f"a file, so "
                          f"nothing was written: keep a network saved before the divergence, such as its run's "
                          f"best.npz, or train again")
    meta = {"format": FORMAT, "version": 1, **net.spec()}
    notes = json_object("notes", notes, "{'epoch': 40}") if notes is not None else {}
    if notes:  # a key that readers from before notes ignore: the format stays at version 1
        meta["notes"] = notes
    return npz_bytes({"params": net.params}, meta)


def load(cls: type[Network], path: str | os.PathLike) -> Network:
    """The ``cls`` network :func:`save` wrote to ``path``: see :meth:`Network.load
    <distnet.nn.network.Network.load>`."""
    path = saved_network_path(path)
    data = _read_model_file(path)
    if data.lstrip()[:1] == b"{" and b'"costFunction"' in data[:4096]:  # the original's layout begins so
        raise ModelFormatError(f"{path}: a network in the original's JSON layout, not one saved by "
                               f"Network.save; load it with Network.load_original_json")
    try:
        return cls.from_npz_bytes(data, str(path))
    except ModelFormatError as e:
        raise ModelFormatError(f"{e}{_rewritten_by_resume(path)}") from None


def from_npz_bytes(cls: type[Network], data: bytes, name: str = "model") -> Network:
    """The ``cls`` network of the bytes of a saved network (see :func:`save`); ``name`` is what
    errors call them."""
    arrays = read_npz(data, name, required=("params", "meta"))
    meta = parse_meta(arrays["meta"], name, FORMAT, version=1)
    params = arrays["params"]
    # Sizes are checked against the file's parameters before anything is allocated, so
    # metadata that claims a huge network cannot make loading a small file use much memory.
    sizes = spec_sizes(meta, name)
    if params.ndim != 1 or params.size != count_parameters(sizes):
        raise ModelFormatError(f"{name}: the metadata does not describe a valid network for its {params.size} "
                               f"parameters (shape {params.shape}): layers {sizes} need "
                               f"{count_parameters(sizes)}")
    try:
        net = cls.from_spec(meta)
    # AttributeError: a null or a list where a spec should be (found by tests/test_fuzz_loaders.py)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFormatError(f"{name}: the metadata does not describe a valid network ({e})") from None
    if params.dtype != net.dtype:
        raise ModelFormatError(f"{name}: holds {params.dtype} parameters, but its metadata says {net.dtype}")
    broken = np.count_nonzero(~np.isfinite(params))
    if broken:
        raise ModelFormatError(f"{name}: {broken} of its {params.size} parameters {'is' if broken == 1 else 'are'} "
                               f"NaN or infinite (a training that diverged leaves them so), so it has no answers to "
                               f"give: load a network "
                               f"saved before the divergence, such as its run's best.npz, or train again")
    net.params[...] = params
    return net


def save_original_json(net: Network, path: str | os.PathLike) -> Path:
    """Write ``net.to_original_json()`` to ``path``, atomically."""
    path = _file_to_write(path)
    write_json(path, net.to_original_json())
    return path


def load_original_json(cls: type[Network], path: str | os.PathLike,
                       dtype: np.dtype | type | str = np.float64) -> Network:
    """The ``cls`` network of a file in the original's JSON layout: see
    :meth:`Network.load_original_json <distnet.nn.network.Network.load_original_json>`."""
    data = _read_model_file(path)  # outside the try: its ModelFormatError is a ValueError too
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:  # not UTF-8, not JSON, or nested beyond reason
        raise ModelFormatError(f"{path}: not a JSON file ({e})") from None
    try:
        return cls.from_original_json(doc, dtype)
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from None


def _file_to_write(path: str | os.PathLike) -> Path:
    """``path`` ("~" expanded) for a network to be written to; ConfigError if it is a folder."""
    path = path_of("the file to write", path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give the path of a file to write, such as {path / 'best.npz'}")
    if (in_the_way := next((p for p in path.parents if p.exists() and not p.is_dir()), None)) is not None:
        raise ConfigError(f"cannot write {path}: {in_the_way} is a file, not a folder; give a path in a folder")
    return path


def saved_network_path(path: str | os.PathLike) -> Path:
    """The saved network ``path`` names ("~" expanded): the file itself, or a run directory's
    ``best.npz``."""
    path = path_of("the saved network", path)
    if not path.is_dir():
        return path
    if not (path / "best.npz").is_file():
        if (path / "config.json").is_file():  # a run directory
            from ..rundir import RunDir  # (which reads checkpoints, and they networks)

            raise ModelFormatError(RunDir(path).no_best_network())
        raise ModelFormatError(f"{path} is a folder without a best.npz; give a model file, such as RUN_DIR/best.npz")
    return path / "best.npz"


def saved_notes(path: str | os.PathLike) -> dict:
    """The notes saved with the network in ``path`` (see :meth:`Network.save
    <distnet.nn.network.Network.save>`; a run directory stands for its ``best.npz``): a dict, empty
    for a file saved without notes. Only the metadata is read: ModelFormatError for a file that is
    not an .npz with a distnet network's metadata, or notes that are not a JSON object (the
    parameters are checked by :meth:`Network.load <distnet.nn.network.Network.load>`)."""
    path = saved_network_path(path)
    name = str(path)
    arrays = read_npz(_read_model_file(path), name, required=("params", "meta"))
    notes = parse_meta(arrays["meta"], name, FORMAT, version=1).get("notes", {})
    if not isinstance(notes, dict):
        raise ModelFormatError(f"{name}: its notes are not a JSON object (found {type(notes).__name__}); "
                               f"not a file distnet wrote")
    return notes


def _rewritten_by_resume(path: Path) -> str:
    """For a damaged best.npz of a run directory with a checkpoint: that a resume writes it again
    from the checkpoint (one of a run that had ended trains nothing); else ""."""
    if path.name != "best.npz" or not (path.parent / "config.json").is_file():
        return ""
    from ..rundir import RunDir

    run = RunDir(path.parent)
    return f"; the run's checkpoint has it: {run.resume_command()} writes it again" if run.has_checkpoint() else ""


def _read_model_file(path: str | os.PathLike) -> bytes:
    file = home_expanded(path)
    try:
        return file.read_bytes()
    except FileNotFoundError:
        if file.name == "best.npz" and (file.parent / "config.json").is_file():  # a run's, not there yet
            from ..rundir import RunDir

            raise ModelFormatError(RunDir(file.parent).no_best_network()) from None
        kinds = "" if file.suffix == ".json" else " (a run directory's best.npz, or the run directory)"
        raise ModelFormatError(f"{path}: no such model file; give a file a network was saved in{kinds}") from None
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read the model file ({e.strerror})") from None


def spec_sizes(spec: dict, name: str = "model") -> list[int]:
    """The layer sizes, input first, of a :meth:`Network.spec <distnet.nn.network.Network.spec>`
    read from a file; ModelFormatError unless they are positive whole numbers."""
    try:
        sizes = [spec["input_size"]] + [layer["size"] for layer in spec["layers"]]
    except (KeyError, TypeError):
        raise ModelFormatError(f"{name}: the metadata does not describe a valid network "
                               f"(its input_size or layer sizes are missing)") from None
    if len(sizes) < 2 or not all(type(size) is int and size > 0 for size in sizes):
        raise ModelFormatError(f"{name}: the metadata does not describe a valid network (layer sizes {sizes})")
    return sizes
