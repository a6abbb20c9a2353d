"""Downloading a file from a list of mirrors, verified against a known SHA-256 and size."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from contextlib import suppress
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

from distnet.errors import ChecksumError, DataNotFoundError, FolderNotWritableError
from distnet.io import FILE_TOO_LARGE, NO_ROOM, NOT_PERMITTED, UNFINISHED_WRITE, atomic_writer

__all__ = ["fetch", "sha256_of"]

_CHUNK = 1 << 20
# A download slower than this over any ``timeout`` seconds is given up on (a mirror that trickles
# bytes never trips the per-read timeout).
_MIN_BYTES_PER_SECOND = 1024
_PROGRESS_EVERY_S = 10.0
# A temporary file that has not grown for this long (or 10 timeouts) belongs to a download that
# was killed: a live one grows at least once per timeout.
_ABANDONED_AFTER_S = 600.0
# Errors of a write that say the folder cannot take the file (not: another process removed it).
_NOT_WRITABLE = NO_ROOM | NOT_PERMITTED | {FILE_TOO_LARGE, errno.EISDIR, errno.ENOTDIR}
# Errors that say the mirror's host cannot be reached at all (not: it lacks the file).
_UNREACHABLE = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}

# The command line shows these notes on stderr: a first run downloads for a while, and should say so.
_log = logging.getLogger(__name__)


class _BadResponse(ConnectionError):
    """What a mirror sent is not the whole file: another size (an error page, say), or cut off."""


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 of the file at *path* as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    filename: str,
    sha256: str,
    dest_dir: str | os.PathLike[str],
    mirrors: Sequence[str],
    *,
    size: int | None = None,
    timeout: float = 30.0,
    unreachable: set[str] | None = None,
) -> Path:
    """Download *filename* into *dest_dir* from the first mirror that serves the right bytes.

    Each mirror is a base URL; the file's URL is the base followed by *filename*. The download
    goes to a temporary file in *dest_dir* and is renamed to ``dest_dir / filename`` only after
    its SHA-256 matched *sha256*, so the destination never holds a partial or wrong file.
    *size* (bytes), where known, is checked against the mirror's Content-Length and caps what is
    read. *timeout* (seconds) applies to connecting and to each read; a mirror that sends less than
    1 KB/s over any *timeout* seconds is given up on too. Mirrors that could not be reached are
    added to *unreachable*, and those already in it are skipped, so that the files after the first
    do not wait for a dead mirror again.

    Returns:
        The path of the downloaded file.

    Raises:
        FolderNotWritableError: *dest_dir* or the file in it cannot be written.
        ChecksumError: no mirror worked and at least one served bytes with the wrong SHA-256.
        DataNotFoundError: no mirror could be reached or served the file.
        Both messages list every mirror with the reason it failed, and say where to put the
        file by hand.
    """
    dest_dir = Path(dest_dir)
    target = dest_dir / filename
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FolderNotWritableError(f"cannot create the folder {dest_dir}: {exc.strerror}", exc.errno) from None
    _remove_abandoned_downloads(target, max(_ABANDONED_AFTER_S, 10 * timeout))
    unreachable = set() if unreachable is None else unreachable
    failures: list[str] = []
    wrong_bytes = False
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        if base in unreachable:
            failures.append(f"{url}: skipped, the mirror could not be reached for an earlier file")
            continue
        _log.info("downloading %s", url)
        try:
            with atomic_writer(target) as out:
                digest = _download(url, out, size, timeout)
                if digest != sha256.lower():
                    raise ChecksumError(f"SHA-256 is {digest}, expected {sha256}")
        except ChecksumError as exc:
            wrong_bytes = True
            failures.append(f"{url}: {exc}")
        # ValueError: a malformed mirror URL; HTTPException: the connection broke mid-response.
        except (OSError, HTTPException, ValueError) as exc:
            written = isinstance(exc, OSError) and exc.filename == str(target)  # atomic_writer names its file
            if written and exc.errno in _NOT_WRITABLE:
                raise FolderNotWritableError(f"cannot write {target}: {exc.strerror}", exc.errno) from None
            if _unreachable(exc):
                unreachable.add(base)
            # Another write of the file failing (its temporary removed by another process cleaning
            # up after a download paused too long) is this mirror's try lost, not the folder's fault.
            reason = f"writing it failed: {exc.strerror or exc}" if written else _reason(exc)
            failures.append(f"{url}: {reason}")
        else:
            _log.info("%s: %s, SHA-256 verified", target, _size_text(target.stat().st_size))
            return target
        _log.info("%s", failures[-1])

    tried = "\n".join(f"  {failure}" for failure in failures or ["(no mirrors configured)"])
    message = (
        f"could not download {filename}; mirrors tried:\n{tried}\n"
        f"Download {filename} by hand (SHA-256 {sha256}) and put it in {dest_dir}"
    )
    raise (ChecksumError if wrong_bytes else DataNotFoundError)(message)


def _download(url: str, out: BinaryIO, size: int | None, timeout: float) -> str:
    """Stream *url* into the open file *out*; return the SHA-256 of what was written."""
    digest = hashlib.sha256()
    received = 0
    window = noted = time.monotonic()  # the rate is checked over each stretch of ``timeout`` seconds
    window_received = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        promised = response.headers.get("Content-Length", "")
        page = " (an error page?)" if response.headers.get_content_type() == "text/html" else ""
        if size is not None and promised.isdigit() and int(promised) != size:
            raise _BadResponse(f"the mirror offers {promised} bytes; the file has {size}{page}")
        # read1: one network read at a time, so that a trickle is noticed between reads.
        while chunk := response.read1(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            received += len(chunk)
            if size is not None and received > size:
                raise _BadResponse(f"the mirror sent more than the file's {size} bytes")
            now = time.monotonic()
            if now - window >= timeout:
                if received - window_received < _MIN_BYTES_PER_SECOND * (now - window):
                    raise TimeoutError(f"too slow: {received - window_received} bytes in the last "
                                       f"{now - window:.1f} s")
                window, window_received = now, received
            if now - noted >= _PROGRESS_EVERY_S:
                of = f" of {_size_text(size)}" if size is not None else ""
                _log.info("%s: %s%s so far", url, _size_text(received), of)
                noted = now
    # http.client ends a chunked read quietly when the connection drops; say so rather than
    # report the cut-off file as a checksum mismatch.
    if promised.isdigit() and received < int(promised):
        raise _BadResponse(f"connection closed after {received} of {promised} bytes")
    if size is not None and received < size:  # (without a Content-Length: not a damaged file on the mirror)
        raise _BadResponse(f"the mirror sent {received} bytes; the file has {size}{page or ' (cut off?)'}")
    return digest.hexdigest()


def _size_text(size: int) -> str:
    """A file's size in MB, or in KB where that would read 0.0 MB."""
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} KB"


def _remove_abandoned_downloads(target: Path, after_s: float) -> None:
    """Remove the temporary files of downloads of *target* that have not grown for *after_s*
    seconds: killed ones (a live one keeps growing)."""
    prefix = f".{target.name}."
    try:
        entries = list(target.parent.iterdir())
    except OSError:  # a folder that can be written but not listed: its write then says what is wrong
        return
    for path in entries:
        if path.name.startswith(prefix) and UNFINISHED_WRITE.fullmatch(path.name):
            with suppress(OSError):
                if time.time() - path.stat().st_mtime > after_s:
                    path.unlink()


def _unreachable(exc: BaseException) -> bool:
    """Whether *exc* says the mirror's host could not be reached at all, or timed out (not: it
    lacks the file, as an HTTP error or a file:// mirror's missing file says)."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, (TimeoutError, socket.gaierror)) or getattr(reason, "errno", None) in _UNREACHABLE


def _reason(exc: BaseException) -> str:
    """Say in a few words, on one line (one per mirror in the error), why a download failed."""
    if isinstance(exc, urllib.error.HTTPError):
        reason = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        reason = str(exc.reason)
    elif isinstance(exc, TimeoutError):
        reason = "timed out" if str(exc) in ("", "timed out") else str(exc)
    elif isinstance(exc, _BadResponse):
        reason = str(exc)
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return " ".join(reason.split())
