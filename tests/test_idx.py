"""Reading and writing IDX files, including every way a file can be malformed."""

from __future__ import annotations

import gzip
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distnet.data import read_idx, write_idx
from distnet.errors import ConfigError, DataFormatError, DataNotFoundError


def idx_bytes(shape: tuple[int, ...], data: bytes, *, type_code: int = 0x08) -> bytes:
    """An IDX file's bytes with the given header fields, however inconsistent."""
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}i", *shape) + data


def write(path: Path, content: bytes, *, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


@pytest.fixture(params=["raw", "gz"])
def compress(request: pytest.FixtureRequest) -> bool:
    return request.param == "gz"


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_round_trip_3d(tmp_path: Path, name: str) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, images)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, images)


@pytest.mark.parametrize("name", ["labels-idx1-ubyte", "labels-idx1-ubyte.gz"])
def test_round_trip_1d(tmp_path: Path, name: str) -> None:
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / name, labels)
    np.testing.assert_array_equal(read_idx(tmp_path / name), labels)


def test_round_trip_2d_and_non_contiguous(tmp_path: Path) -> None:
    matrix = np.arange(24, dtype=np.uint8).reshape(4, 6).T
    write_idx(tmp_path / "m", matrix)
    np.testing.assert_array_equal(read_idx(tmp_path / "m"), matrix)


@pytest.mark.parametrize("name", ["v", "v.gz"])
def test_a_strided_vector_is_written_as_its_values(tmp_path: Path, name: str) -> None:
    """A 1-D view with a stride (every other label, or reversed): reshape(-1) gives the view back
    unchanged, whose memory is not the values in order."""
    values = np.arange(12, dtype=np.uint8)
    for view in (values[::2], values[::-1], values[1::3]):
        write_idx(tmp_path / name, view)
        np.testing.assert_array_equal(read_idx(tmp_path / name), view)


def test_writes_the_documented_layout(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels", np.array([7, 2, 1], dtype=np.uint8))
    labels = (tmp_path / "labels").read_bytes()
    assert labels == b"\0\0\x08\x01" + b"\0\0\0\x03" + bytes([7, 2, 1])
    assert struct.unpack(">i", labels[:4])[0] == 2049
    write_idx(tmp_path / "images", np.zeros((2, 28, 28), dtype=np.uint8))
    assert struct.unpack(">4i", (tmp_path / "images").read_bytes()[:16]) == (2051, 2, 28, 28)


def test_gz_output_is_gzip_and_reproducible(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", labels)
    first = (tmp_path / "a.gz").read_bytes()
    write_idx(tmp_path / "a.gz", labels)
    assert first[:2] == b"\x1f\x8b"
    assert (tmp_path / "a.gz").read_bytes() == first
    assert gzip.decompress(first) == idx_bytes((10,), bytes(range(10)))
    assert first[4:8] == bytes(4)  # no timestamp (two writes within a second would not tell)
    # The original name, as gzip(1) records it (FNAME flag, then the name less ".gz", NUL-ended),
    # not that of the temporary file it was written to.
    assert first[3] == 0x08 and first[10:12] == b"a\0"


def test_compression_is_detected_by_content_not_name(tmp_path: Path) -> None:
    content = idx_bytes((2,), b"\x03\x04")
    np.testing.assert_array_equal(read_idx(write(tmp_path / "plain.gz", content)), [3, 4])
    packed = write(tmp_path / "packed-idx1-ubyte", content, compress=True)
    np.testing.assert_array_equal(read_idx(packed), [3, 4])


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "x-idx1-ubyte"
    write_idx(target, np.ones(3, dtype=np.uint8))
    with pytest.raises(ConfigError):
        write_idx(target, np.ones(3, dtype=np.float32))
    assert sorted(os.listdir(tmp_path)) == ["x-idx1-ubyte"]
    np.testing.assert_array_equal(read_idx(target), [1, 1, 1])


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros(3, dtype=np.float32), "got float32"),
        (np.zeros(3, dtype=np.int64), "got int64"),
        (np.zeros((1, 1, 1, 1), dtype=np.uint8), "1 to 3 dimensions, got 4"),
        (np.uint8(3), "1 to 3 dimensions, got 0"),
        (np.zeros((0, 28), dtype=np.uint8), "empty array"),
    ],
)
def test_write_rejects_what_idx_cannot_hold(
    tmp_path: Path, array: np.ndarray, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        write_idx(tmp_path / "out", array)
    assert not (tmp_path / "out").exists()


# --- malformed files ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="nothing-here.*no such file"):
        read_idx(tmp_path / "nothing-here")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"empty\.idx: empty file"):
        read_idx(write(tmp_path / "empty.idx", b""))


def test_empty_gzip_member(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="empty file"):
        read_idx(write(tmp_path / "empty.gz", b"", compress=True))


def test_truncated_magic(tmp_path: Path, compress: bool) -> None:
    with pytest.raises(DataFormatError, match="truncated header: the file holds only 3 of the 4"):
        read_idx(write(tmp_path / "f", b"\0\0\x08", compress=compress))


def test_truncated_dimensions(tmp_path: Path, compress: bool) -> None:
    content = idx_bytes((60000, 28, 28), b"")[:10]
    with pytest.raises(DataFormatError) as caught:
        read_idx(write(tmp_path / "train-images-idx3-ubyte", content, compress=compress))
    assert str(caught.value) == (
        f"{tmp_path / 'train-images-idx3-ubyte'}: truncated header: "
        "3 dimensions need 16 header bytes, the file holds 10"
    )


def test_truncated_data(tmp_path: Path, compress: bool) -> None:
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if compress else ""))
    write(path, idx_bytes((60000, 28, 28), bytes(1234)), compress=compress)
    with pytest.raises(DataFormatError) as caught:
        read_idx(path)
    assert str(caught.value) == (
        f"{path}: truncated: header says 60000x28x28 = 47040000 bytes of pixels, file holds 1234"
    )


def test_trailing_bytes_raw(tmp_path: Path) -> None:
    path = write(tmp_path / "labels", idx_bytes((3,), bytes(5)))
    with pytest.raises(DataFormatError) as caught:
        read_idx(path)
    assert str(caught.value) == (
        f"{path}: trailing bytes: header says 3 = 3 bytes of labels, file holds 5"
    )


def test_trailing_bytes_gz(tmp_path: Path) -> None:
    path = write(tmp_path / "labels.gz", idx_bytes((3,), bytes(5)), compress=True)
    with pytest.raises(DataFormatError) as caught:
        read_idx(path)
    assert str(caught.value) == (
        f"{path}: trailing bytes: header says 3 = 3 bytes of labels, file holds more"
    )


@pytest.mark.parametrize("magic", [b"\x12\x34\x08\x01", b"\x00\x01\x08\x01", b"PK\x03\x04"])
def test_wrong_magic(tmp_path: Path, compress: bool, magic: bytes) -> None:
    with pytest.raises(DataFormatError) as caught:
        read_idx(write(tmp_path / "f", magic + bytes(8), compress=compress))
    message = str(caught.value)
    assert f"not an IDX file: magic number 0x{magic.hex()}" in message
    assert "2051" in message and "2049" in message


@pytest.mark.parametrize("type_code", [0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF])
def test_unsupported_type_code(tmp_path: Path, type_code: int) -> None:
    content = idx_bytes((2,), bytes(2 * 8), type_code=type_code)
    with pytest.raises(
        DataFormatError, match=f"unsupported data type 0x{type_code:02x}: only 0x08"
    ):
        read_idx(write(tmp_path / "f", content))


@pytest.mark.parametrize("ndim", [0, 4, 255])
def test_unsupported_number_of_dimensions(tmp_path: Path, ndim: int) -> None:
    content = bytes([0, 0, 8, ndim]) + bytes(4 * ndim + 1)
    with pytest.raises(DataFormatError, match=f"header gives {ndim} dimensions; 1 to 3"):
        read_idx(write(tmp_path / "f", content))


@pytest.mark.parametrize(("shape", "shown"), [((0, 28, 28), "0x28x28"), ((5, -1), "5x-1")])
def test_dimension_sizes_must_be_positive(
    tmp_path: Path, compress: bool, shape: tuple[int, ...], shown: str
) -> None:
    with pytest.raises(
        DataFormatError, match=f"dimension sizes must be positive, the header says {shown}"
    ):
        read_idx(write(tmp_path / "f", idx_bytes(shape, b""), compress=compress))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda packed: packed[:-6], id="truncated"),
        pytest.param(lambda packed: packed[:10] + b"\xff" * 8 + packed[18:], id="bad-deflate"),
        pytest.param(lambda packed: packed[:-8] + b"\0\0\0\0" + packed[-4:], id="bad-crc"),
        pytest.param(lambda packed: packed + b"garbage!", id="trailing-garbage"),
        pytest.param(lambda packed: packed[:2], id="magic-only"),
    ],
)
def test_corrupt_gzip(tmp_path: Path, damage) -> None:
    packed = gzip.compress(idx_bytes((100,), bytes(range(100))))
    path = write(tmp_path / "labels.gz", damage(packed))
    with pytest.raises(DataFormatError, match=r"labels\.gz: corrupt gzip data \(.+\)"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_huge_claim_in_tiny_file_costs_no_memory(tmp_path: Path, compress: bool) -> None:
    # 1000x1000x1000 = 10^9 bytes claimed, 100 present.
    path = write(tmp_path / "bomb", idx_bytes((1000, 1000, 1000), bytes(100)), compress=compress)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match="= 1000000000 bytes of pixels, file holds 100"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20


def test_a_header_of_another_shape_is_refused_before_its_data_is_decompressed(tmp_path: Path) -> None:
    # 64 MB of zeros, compressed to ~64 KB: a file of its size that decompresses to much more.
    path = write(tmp_path / "bomb", idx_bytes((2**16, 32, 32), bytes(2**26)), compress=True)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match=r"bomb: expected 28x28 images, the header \(magic number 0x00000803: 3 "
                                                   r"dimensions, such as images\) says 65536x32x32$"):
            read_idx(path, (None, 28, 28), "28x28 images")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20
    with pytest.raises(DataFormatError, match=r"labels: expected shape N, the header \(magic number 0x00000802: 2 "
                                                r"dimensions\) says 3x2$"):
        read_idx(write(tmp_path / "labels", idx_bytes((3, 2), bytes(6))), (None,))
    assert read_idx(write(tmp_path / "fits", idx_bytes((2, 28, 28), bytes(1568))), (None, 28, 28)).shape == (2, 28, 28)


# --- fuzzing -----------------------------------------------------------------------------------

VALID = idx_bytes((2, 3, 4), bytes(range(24)))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid small IDX file, optionally compressed, with random bytes flipped, cut or added."""
    content = bytearray(VALID)
    if draw(st.booleans()):
        content = bytearray(gzip.compress(bytes(content), mtime=0))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "truncate", "extend"]))
        if action == "flip" and content:
            position = draw(st.integers(0, len(content) - 1))
            content[position] ^= draw(st.integers(1, 255))
        elif action == "truncate":
            del content[draw(st.integers(0, len(content))) :]
        else:
            content += draw(st.binary(min_size=1, max_size=16))
    return bytes(content)


def _reads_or_rejects(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    try:
        array = read_idx(path)
    except DataFormatError as exc:
        assert str(path) in str(exc)
    else:
        assert array.dtype == np.uint8 and array.size > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=mutated())
def test_mutated_files_only_raise_data_format_error(tmp_path: Path, content: bytes) -> None:
    _reads_or_rejects(tmp_path / "fuzz", content)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=64) | st.binary(max_size=64).map(lambda b: b"\x1f\x8b" + b))
def test_random_bytes_only_raise_data_format_error(tmp_path: Path, content: bytes) -> None:
    _reads_or_rejects(tmp_path / "fuzz", content)
