"""distnet's source files as this process imported it.

A distributed run starts actor processes, which import distnet from the files as they are then; a
file edited since this process imported distnet (an editable install, in a notebook whose kernel
stays up) would have the actors run other code than this process. The stamps taken here, at
import, tell :mod:`distnet.distributed.same_code` when that is so.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def stamps() -> dict[str, tuple[int, int]]:
    """Each of the package's source files (by its path within the package) with its modification
    time and size."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        stat = path.stat()
        found[path.relative_to(PACKAGE).as_posix()] = (stat.st_mtime_ns, stat.st_size)
    return found


AT_IMPORT = stamps()


def changed_since_import() -> list[str]:
    """The source files written, added or removed since this process imported distnet."""
    now = stamps()
    return sorted(name for name in AT_IMPORT.keys() | now.keys() if AT_IMPORT.get(name) != now.get(name))
