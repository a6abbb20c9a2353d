"""Every process of a distributed run must run the driver's distnet.

Each actor imports whichever distnet its node finds first: the node's installed one, or a copy in
a folder that comes earlier on the actor's path (Ray puts the driver's working folder first on
every actor's path, on every node; the folder a node's Ray was started in is not on it). An actor
left with an older copy would train on silently, with other batches or other math, so the driver
compares the source of each actor's distnet with its own before the first step.
"""
from __future__ import annotations

import functools
import hashlib

import ray

from ..errors import ConfigError
from ..source_files import PACKAGE, changed_since_import


@functools.cache
def distnet_code() -> tuple[str, str]:
    """Where this process's distnet is, and a digest of all its Python source."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return str(PACKAGE), digest.hexdigest()


def _code_of(actor) -> tuple[str, str]:
    # Sent to the actor by reference, so it runs the actor's own copy of this module.
    return distnet_code()


def _check_unchanged_since_import() -> None:
    """ConfigError if distnet's files changed since this process imported it."""
    changed = changed_since_import()
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise ConfigError(f"distnet's source in {PACKAGE} changed since this process imported it ({shown}): its "
                          f"actors would run the new code and this process the old; restart the Python process "
                          f"(in a notebook, its kernel) to train with the new")


def check_same_code(actors: dict[str, "ray.actor.ActorHandle"]) -> None:
    """ConfigError naming the first of ``actors`` (by their names for the user) whose distnet
    differs from this process's; a lost actor raises Ray's error, as any call to it would. First,
    ConfigError if distnet's files changed since this process imported it: an actor would run what
    they hold now, this process what they held then."""
    _check_unchanged_since_import()
    path, digest = distnet_code()
    answers = [actor.__ray_call__.remote(_code_of) for actor in actors.values()]
    for name, answer in zip(actors, answers):
        try:
            their_path, their_digest = ray.get(answer)
            runs = f"runs distnet from {their_path}" + (" (the same folder, on another machine)"
                                                        if their_path == path else "")
        except ray.exceptions.RayTaskError:  # a distnet too old to have this module
            their_digest, runs = None, "runs an older distnet"
        if their_digest != digest:
            if their_path == path:  # the files may have changed since the check above, as the actors read them
                _check_unchanged_since_import()
            raise ConfigError(
                f"{name} {runs}, whose code differs from this driver's ({path}): every node "
                f"of the cluster must run the same distnet. Install this one on every node (a cluster from "
                f"cluster/cluster.yaml: 'ray up' again), and run the driver from a folder that holds no other "
                f"copy (Ray puts the driver's folder first on every actor's path); or train with 'distnet "
                f"submit', which sends the job this copy")
