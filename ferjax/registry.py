"""Name -> factory registries used to select datasets, models, losses and optimizers by config."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from ferjax.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from config names to factories, with one-line errors for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, *names: str) -> Callable[[T], T]:
        """Decorator registering a factory under one or more names (aliases)."""

        def decorator(factory: T) -> T:
            for name in names:
                if name in self._entries:
                    raise ValueError(f"{self.kind} {name!r} registered twice")
                self._entries[name] = factory
            return factory

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries))
            raise ConfigError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
