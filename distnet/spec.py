"""Building objects from their JSON-able descriptions ("specs"), as stored in run directories,
checkpoints and saved networks: ``"relu"`` or ``{"name": "leaky_relu", "alpha": 0.01}``."""
from __future__ import annotations

from typing import Any

from .checks import with_article
from .errors import ConfigError


class Component:
    """A part of a training setup that a spec describes: an activation, a cost, an initializer, an
    optimizer or a schedule. ``name`` is its key in its family's registry (``"leaky_relu"``), and
    its repr is its class called with its settings (``LeakyReLU(alpha=0.01)``)."""

    name: str = ""

    def spec(self) -> dict:
        """A JSON-able description, the name and the settings (subclasses add theirs), from which
        the family's ``*_from_spec`` (:func:`component`) builds an equal part."""
        return {"name": self.name}

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value}" for key, value in self.spec().items() if key != "name")
        return f"{type(self).__name__}({settings})"


def from_spec(spec: Any, registry: dict[str, type], kind: str):
    """``registry[name](**params)`` for a spec that is a name or a dict with ``name`` and params."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{with_article(kind)} is given by its name or a dict with 'name', not {spec!r}")
    params = dict(spec)
    name = params.pop("name", None)
    if not isinstance(name, str) or name not in registry:  # a list, say, cannot even be looked up
        raise ConfigError(f"unknown {kind} {name!r}; known: {', '.join(registry)}")
    try:
        return registry[name](**params)
    except TypeError as e:
        raise ConfigError(f"{kind} {name!r}: {e}") from None


def component(value, base: type, registry: dict[str, type], kind: str):
    """``value`` as an instance of ``base``: an instance as it is, a name or a spec dict built from
    ``registry`` (see :func:`from_spec`); ConfigError, saying what to pass instead, for
    anything else, such as the class itself."""
    if isinstance(value, base):
        return value
    if isinstance(value, type) and issubclass(value, base):
        raise ConfigError(f"{kind} {value.__name__} is a class: pass an instance, {value.__name__}()")
    if isinstance(value, (str, dict)):
        return from_spec(value, registry, kind)
    raise ConfigError(f"{with_article(kind)} is given as {with_article(base.__name__)} instance, by its name "
                      f"({', '.join(registry)}) or as a dict with 'name', not {value!r}")
