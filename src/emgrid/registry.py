"""A registry of providers by name: the one shape behind `judge.backend` and `generate.backend`.

Each provider module registers a factory under the name the config uses; the caller asks for the configured name
and gets the factory, or a ConfigError naming the config key and the known names (Inspect AI's model-provider layer
has the same shape: one interface, a registry by name).
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from emgrid.errors import ConfigError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Factories by name; `key` is the config key whose value names one (for the error)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._factories: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Class decorator: the decorated factory builds the provider `name`."""

        def deco(factory: F) -> F:
            self._factories[name] = factory
            return factory

        return deco

    def get(self, name: str) -> F:
        if name not in self._factories:
            raise ConfigError(f"{self.key}: {name!r} is not one of {sorted(self._factories)}")
        return self._factories[name]

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._factories))
