"""Name -> factory registries used to select datasets, models, losses and optimizers by config.

A registry also owns its components' defaults: ``register(name, factory, **defaults)``
declares them once, and :meth:`Registry.default_config` collects them into the config group
``config.<kind>s.<name>`` (DEVELOPERS.md "Seams"), which keeps configs locked and overridable.
"""

from __future__ import annotations

from typing import Generic, Sequence, TypeVar

import ml_collections

from ferjax.errors import ConfigError

T = TypeVar("T")


def plural(noun: str) -> str:
    """English plural of a registry kind: loss -> losses, model -> models."""
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


class Registry(Generic[T]):
    """A mapping from config names to factories and their default hyperparameters, with
    one-line errors for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._defaults: dict[str, dict] = {}

    def register(self, name: str, factory: T | None = None, /, *, aliases: Sequence[str] = (), **defaults):
        """Register ``factory`` under ``name`` and ``aliases``, with its hyperparameter ``defaults``.

        The defaults become ``config.<kind>s.<name>``; aliases select the same factory and share
        that group. Without ``factory`` this returns a decorator.
        """
        if factory is None:
            return lambda f: self.register(name, f, aliases=aliases, **defaults)
        for key in (name, *aliases):
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} registered twice")
            self._entries[key] = factory
        self._defaults[name] = defaults
        return factory

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries))
            raise ConfigError(f"unknown {self.kind} {name!r}; valid {plural(self.kind)}: {valid}") from None

    def names(self) -> list[str]:
        """Every registered name, aliases included, sorted."""
        return sorted(self._entries)

    def default_config(self) -> ml_collections.ConfigDict:
        """``{name: defaults}`` for every registered name but aliases (the ``config.<kind>s`` group)."""
        return ml_collections.ConfigDict({name: dict(d) for name, d in self._defaults.items()})

    def __contains__(self, name: str) -> bool:
        return name in self._entries
