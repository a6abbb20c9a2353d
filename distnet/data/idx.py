"""Reading and writing IDX files, the format of the MNIST and Fashion-MNIST data sets.

An IDX file is a 4-byte magic number, one big-endian int32 per dimension, then the data in
row-major order. The magic number is two zero bytes, a type code (0x08 = unsigned byte, the
only type distnet supports) and the number of dimensions: 2051 (0x00000803) for a stack of
images, 2049 (0x00000801) for a vector of labels. Files may be gzip-compressed; compression is
recognised by its magic bytes, whatever the file is called.

The reader treats every file as untrusted: it never allocates more memory than the data that is
actually in the file, however large the header claims the data to be.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from distnet.errors import ConfigError, DataFormatError, DataNotFoundError
from distnet.io import atomic_writer

__all__ = ["read_idx", "write_idx"]

GZIP_MAGIC = b"\x1f\x8b"
_UINT8 = 0x08
_MAX_NDIM = 3
_CHUNK = 1 << 20
_NOUNS = {1: "labels", 3: "pixels"}


def read_idx(path: str | os.PathLike[str], shape: tuple[int | None, ...] | None = None,
             what: str | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes, plain or gzip-compressed.

    Returns a ``uint8`` array with the shape the header gives (1 to 3 dimensions). ``shape``, if
    given, is the shape the header must give (None: any size in that place, such as
    ``(None, 28, 28)``), described as ``what`` in the message (such as "28x28 images"); a header that
    gives another is refused before any data is read or decompressed.

    Raises:
        DataNotFoundError: the file does not exist.
        DataFormatError: the file is empty, truncated, has bytes after the data, has a bad magic
            number, an unsupported type code, a dimension size that is not positive or another
            shape than ``shape``, or is not valid gzip. The message names the file and the defect.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file") from None
    with raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            return _parse(raw, path, os.fstat(raw.fileno()).st_size, shape, what)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(stream, path, None, shape, what)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{path}: corrupt gzip data ({exc})") from exc


def _parse(stream: BinaryIO, path: Path, file_size: int | None, wanted: tuple[int | None, ...] | None,
           what: str | None) -> np.ndarray:
    """Parse IDX content from *stream*; *file_size* is known only for uncompressed files."""

    def error(defect: str) -> DataFormatError:
        return DataFormatError(f"{path}: {defect}")

    magic = _read_at_most(stream, 4)
    if not magic:
        raise error("empty file")
    if len(magic) < 4:
        raise error(f"truncated header: the file holds only {len(magic)} of the 4 magic bytes")
    if magic[:2] != b"\0\0":
        raise error(
            f"not an IDX file: magic number 0x{magic.hex()} does not start with two zero bytes "
            "(MNIST uses 2051 = 0x00000803 for images and 2049 = 0x00000801 for labels)"
        )
    type_code, ndim = magic[2], magic[3]
    if type_code != _UINT8:
        raise error(f"unsupported data type 0x{type_code:02x}: only 0x08 (unsigned byte) is read")
    if not 1 <= ndim <= _MAX_NDIM:
        raise error(f"header gives {ndim} dimensions; 1 to {_MAX_NDIM} are supported")

    header_size = 4 + 4 * ndim
    sizes = _read_at_most(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise error(
            f"truncated header: {ndim} dimensions need {header_size} header bytes, "
            f"the file holds {4 + len(sizes)}"
        )
    shape = struct.unpack(f">{ndim}i", sizes)
    shown = "x".join(map(str, shape))
    if min(shape) <= 0:
        raise error(f"dimension sizes must be positive, the header says {shown}")
    if wanted is not None and (len(shape) != len(wanted)
                               or any(w is not None and w != size for w, size in zip(wanted, shape))):
        # Before the data: a compressed file's data costs its decompressed size to read.
        expected = what or "shape " + "x".join("N" if w is None else str(w) for w in wanted)
        kind = {1: ", such as labels", 3: ", such as images"}.get(ndim, "")
        raise error(f"expected {expected}, the header (magic number 0x{magic.hex()}: {ndim} dimension"
                    f"{'s' * (ndim > 1)}{kind}) says {shown}")

    expected = math.prod(shape)
    claim = f"header says {shown} = {expected} bytes of {_NOUNS.get(ndim, 'data')}"
    if file_size is not None and file_size - header_size != expected:
        # Uncompressed: the size is known up front, so a lying header fails before any read.
        defect = "truncated" if file_size - header_size < expected else "trailing bytes"
        raise error(f"{defect}: {claim}, file holds {file_size - header_size}")

    # One byte more than expected is enough to notice trailing data without reading it all.
    data = _read_at_most(stream, expected + 1)
    if len(data) < expected:
        raise error(f"truncated: {claim}, file holds {len(data)}")
    if len(data) > expected:
        raise error(f"trailing bytes: {claim}, file holds more")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _read_at_most(stream: BinaryIO, limit: int) -> bytearray:
    """Read up to *limit* bytes, stopping early at end of file.

    Reading in chunks makes memory grow only with the bytes that really arrive, so a header
    that claims gigabytes costs nothing when the file is small.
    """
    buffer = bytearray()
    while len(buffer) < limit:
        chunk = stream.read(min(_CHUNK, limit - len(buffer)))
        if not chunk:
            break
        buffer += chunk
    return buffer


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a ``uint8`` array of 1 to 3 dimensions as an IDX file.

    A name ending in ``.gz`` gives a gzip-compressed file (with a fixed timestamp, so the same
    array always gives the same bytes). The file is written to a temporary name and renamed
    into place, so readers never see a half-written file.

    Raises:
        ConfigError: the array is not ``uint8``, has no or more than 3 dimensions, or is empty.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ConfigError(
            f"write_idx stores unsigned bytes, got {array.dtype}; convert first, "
            "e.g. (pixels * 255).round().astype(np.uint8)"
        )
    if not 1 <= array.ndim <= _MAX_NDIM:
        raise ConfigError(f"write_idx stores 1 to {_MAX_NDIM} dimensions, got {array.ndim}")
    if array.size == 0:
        raise ConfigError(f"write_idx cannot store an empty array (shape {array.shape})")

    header = bytes([0, 0, _UINT8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = np.ascontiguousarray(array).reshape(-1).data
    with atomic_writer(path) as out:
        if path.suffix == ".gz":
            # filename= records the file's own name in the header, as gzip(1) does (the temporary
            # file, opened by descriptor, has none to give).
            with gzip.GzipFile(filename=path.name, mode="wb", fileobj=out, mtime=0) as packed:
                packed.write(header)
                packed.write(data)
        else:
            out.write(header)
            out.write(data)
