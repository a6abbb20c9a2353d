"""Building objects from their JSON-able descriptions ("specs"), as stored in run directories,
checkpoints and saved networks: ``"relu"`` or ``{"name": "leaky_relu", "alpha": 0.01}``."""
from __future__ import annotations

from typing import Any

from .errors import ConfigError


def from_spec(spec: Any, registry: dict[str, type], kind: str):
    """``registry[name](**params)`` for a spec that is a name or a dict with ``name`` and params."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{with_article(kind)} is given by its name or a dict with 'name', not {spec!r}")
    params = dict(spec)
    name = params.pop("name", None)
    if name not in registry:
        raise ConfigError(f"unknown {kind} {name!r}; known: {', '.join(registry)}")
    try:
        return registry[name](**params)
    except TypeError as e:
        raise ConfigError(f"{kind} {name!r}: {e}") from None


def with_article(noun: str) -> str:
    """``noun`` after "a" or "an": "an activation", "a cost"."""
    return f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}"
