"""Downloading a file from a list of mirrors, verified against a known SHA-256."""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

from distnet.io import atomic_writer
from distnet.errors import ChecksumError, DataNotFoundError

__all__ = ["fetch", "sha256_of"]

_CHUNK = 1 << 20

# The command line shows these notes on stderr: a first run downloads for a while, and should say so.
_log = logging.getLogger(__name__)


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
    timeout: float = 30.0,
) -> Path:
    """Download *filename* into *dest_dir* from the first mirror that serves the right bytes.

    Each mirror is a base URL; the file's URL is the base followed by *filename*. The download
    goes to a temporary file in *dest_dir* and is renamed to ``dest_dir / filename`` only after
    its SHA-256 matched *sha256*, so the destination never holds a partial or wrong file.
    *timeout* (seconds) applies to connecting and to each read.

    Returns:
        The path of the downloaded file.

    Raises:
        ChecksumError: no mirror worked and at least one served bytes with the wrong SHA-256.
        DataNotFoundError: no mirror could be reached or served the file.
        Both messages list every mirror with the reason it failed, and say where to put the
        file by hand.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / filename
    failures: list[str] = []
    wrong_bytes = False
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        _log.info("downloading %s", url)
        try:
            with atomic_writer(target) as out:
                digest = _download(url, out, timeout)
                if digest != sha256.lower():
                    raise ChecksumError(f"SHA-256 is {digest}, expected {sha256}")
        except ChecksumError as exc:
            wrong_bytes = True
            failures.append(f"{url}: {exc}")
        # ValueError: a malformed mirror URL; HTTPException: the connection broke mid-response.
        except (OSError, HTTPException, ValueError) as exc:
            failures.append(f"{url}: {_reason(exc)}")
        else:
            _log.info("%s: %.1f MB, SHA-256 verified", target, target.stat().st_size / 1e6)
            return target

    tried = "\n".join(f"  {failure}" for failure in failures or ["(no mirrors configured)"])
    message = (
        f"could not download {filename}; mirrors tried:\n{tried}\n"
        f"Download {filename} by hand (SHA-256 {sha256}) and put it in {dest_dir}"
    )
    raise (ChecksumError if wrong_bytes else DataNotFoundError)(message)


def _download(url: str, out: BinaryIO, timeout: float) -> str:
    """Stream *url* into the open file *out*; return the SHA-256 of what was written."""
    digest = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        promised = response.headers.get("Content-Length", "")
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            received += len(chunk)
    # http.client ends a chunked read quietly when the connection drops; say so rather than
    # report the cut-off file as a checksum mismatch.
    if promised.isdigit() and received < int(promised):
        raise ConnectionError(f"connection closed after {received} of {promised} bytes")
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    """Say in a few words why a download failed."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
