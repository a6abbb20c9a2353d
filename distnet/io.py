"""File helpers: atomic writes (a reader, or a crash, sees the old file or the complete new one)
and pickle-free reading of distnet's .npz files (models, checkpoints)."""
from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import re
import secrets
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from .errors import ModelFormatError, NewerFormatError
from .signals import interruptions_held

# How the file system refuses a write: no room, no permission, or (FILE_TOO_LARGE) a process's
# size limit (ulimit -f) far more often than the file system's.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})
NOT_PERMITTED = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
FILE_TOO_LARGE = errno.EFBIG
# Any of them, or the device failing (not the network errors of a download written through one).
_REFUSED_WRITES = NO_ROOM | NOT_PERMITTED | {FILE_TOO_LARGE, errno.EIO}
# The names of atomic_writer's temporary files: one left behind is a write that was killed midway.
UNFINISHED_WRITE = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb",
                  keep_previous: str | os.PathLike | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success flush, fsync and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was; an OSError of the
    write (a full disk, a read-only folder, a folder in the way: IsADirectoryError) names ``path``,
    not the temporary file. ``keep_previous``: where the file at ``path``, if any, moves (replacing
    what is there) once the new one is complete, just before the new one takes its place; a write
    that fails moves nothing.
    """
    path = Path(path)
    if path.is_dir():  # before a temporary name is made from it: "." has no name to make it from
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open rather than tempfile: the finished file gets the usual umask-based permissions.
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        _name(e, path)
        raise
    try:
        with os.fdopen(descriptor, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            if keep_previous is not None and path.exists():
                os.replace(path, keep_previous)
            os.replace(temporary, path)
        except OSError as e:  # such as a folder where the file should go: name the file, not the temporary
            _name(e, path)
            raise
    except BaseException as e:
        with contextlib.suppress(OSError):  # the error to report is the write's
            os.unlink(temporary)
        if isinstance(e, OSError) and e.errno in _REFUSED_WRITES and e.filename in (None, str(temporary)):
            _name(e, path)
        raise
    _fsync_directory(path.parent)


def _name(error: OSError, path: Path) -> None:
    """Make ``error`` name ``path`` alone (not the temporary file, nor a second file)."""
    error.filename = str(path)
    with contextlib.suppress(AttributeError):
        del error.filename2


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_writer(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def npz_bytes(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    """An .npz holding ``arrays`` plus ``meta`` as a JSON byte array (read back by read_npz)."""
    buffer = io.BytesIO()
    with interruptions_held():  # (see _read_npz)
        np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return buffer.getvalue()


def read_npz(data: bytes | bytearray | memoryview | str | os.PathLike, name: str,
             required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read an .npz without pickle, from its bytes or from the file at a path (which is read array
    by array, never whole: a damaged file may be far larger than what it holds); ModelFormatError
    for anything malformed, OSError where the file cannot be read."""
    if not isinstance(data, (str, os.PathLike)):
        data = bytes(data)  # a bytearray, or a memoryview of shared memory
        return _read_npz(io.BytesIO(data), len(data), name, required)
    with open(data, "rb") as file:
        return _read_npz(file, os.fstat(file.fileno()).st_size, name, required)


def _read_npz(source: IO[bytes], size: int, name: str, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    head = source.read(4)
    source.seek(0)
    if size < 22:  # the smallest zip file: an empty end-of-central-directory record
        raise ModelFormatError(f"{name}: only {size} bytes; the file is truncated or empty")
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ModelFormatError(f"{name}: not an .npz file (no zip signature); expected a file written by distnet")
    try:
        # A Ctrl-C or SIGTERM that lands inside zipfile's constructor leaves a half-made archive,
        # whose clean-up then fails at exit with a stray "Exception ignored ... no attribute
        # '_writing'" after distnet's last line: held until the archive is read (or written).
        with interruptions_held(), np.load(source, allow_pickle=False) as npz:
            _check_members(npz.zip, size, name)
            arrays = {key: npz[key] for key in npz.files}
    except ModelFormatError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise ModelFormatError(f"{name}: holds pickled objects, which distnet never loads") from None
        raise ModelFormatError(f"{name}: not a valid .npz file ({e})") from None
    # What zipfile and NumPy raise on damaged bytes; an error of another kind is a bug, not the file's.
    except (zipfile.BadZipFile, EOFError, zlib.error, struct.error, KeyError, RuntimeError) as e:
        raise ModelFormatError(f"{name}: not a readable .npz file; truncated or corrupt? "
                               f"({type(e).__name__}: {e})") from None
    missing = [key for key in required if key not in arrays]
    if missing:
        raise ModelFormatError(f"{name}: not a distnet file (missing {', '.join(missing)})")
    return arrays


def _check_members(archive: zipfile.ZipFile, file_size: int, name: str) -> None:
    """Refuse archives that would inflate beyond their own size: distnet writes its arrays
    uncompressed, so a file never needs more memory than it occupies (no zip bombs)."""
    members = archive.infolist()
    unknown = [m.filename for m in members if m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)]
    if unknown:
        raise ModelFormatError(f"{name}: {unknown[0]} uses a compression distnet does not read; "
                               f"expected a file written by distnet")
    declared = sum(m.file_size for m in members)
    if declared > file_size:
        raise ModelFormatError(f"{name}: its arrays claim {declared} bytes uncompressed, more than the "
                               f"{file_size} bytes of the file; distnet writes uncompressed .npz files")
    for member in members:
        _check_array_header(archive, member, name)


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_array_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str) -> None:
    """Refuse an array whose header claims more values than its member holds: NumPy allocates
    what the header says before it reads (damage to one digit of a shape asked for terabytes)."""
    if not member.filename.endswith(".npy"):
        return  # np.load reads such a member as bytes, never as an array
    with archive.open(member) as npy:
        version = np.lib.format.read_magic(npy)
        if version not in _HEADER_READERS:
            raise ModelFormatError(f"{name}: {member.filename} is in .npy format version {version}, which distnet "
                                   f"does not write; expected a file written by distnet")
        shape, _, dtype = _HEADER_READERS[version](npy)
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > member.file_size:
        raise ModelFormatError(f"{name}: its {member.filename[:-4]} array claims shape {shape} ({claimed} bytes), "
                               f"more than the {member.file_size} bytes it holds; the file is damaged")


def parse_meta(raw: np.ndarray, name: str, expected_format: str, version: int) -> dict:
    """Decode the JSON metadata array of a distnet .npz and check its format tag."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFormatError(f"{name}: its metadata is not a byte array ({raw.dtype}, shape {raw.shape})")
    try:
        meta = json.loads(raw.tobytes().decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ModelFormatError(f"{name}: its metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        found = meta.get("format") if isinstance(meta, dict) else None
        hint = ("; a run's network is its best.npz (or give the run directory)"
                if found == "distnet.checkpoint" and expected_format == "distnet.network" else "")
        raise ModelFormatError(f"{name}: expected a {expected_format} file, found {found!r}{hint}")
    found = meta.get("version")
    if type(found) is not int or found < 1:  # bool is an int to isinstance
        raise ModelFormatError(f"{name}: its metadata's format version is {found!r}, not a whole number of at "
                               f"least 1: the file is damaged or was not written by distnet")
    if found > version:
        raise NewerFormatError(f"{name}: written by a newer distnet (format version {found}); upgrade distnet")
    return meta
