"""A registry of extension classes by key, as triggers and steps use: duplicates and unknown keys fail loudly."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """An extension's configuration is wrong; `field` names the key at fault, for the admin to show."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Registry(Generic[T]):
    """Instances of registered classes by key; `what` names the kind in errors ("trigger", "step")."""

    def __init__(self, what: str, unknown: Callable[[str], Exception]) -> None:
        self.what = what
        self._unknown = unknown
        self._items: dict[str, T] = {}

    def register(self, key: str):
        """Return a class decorator that registers one instance of the class under `key`."""

        def decorate(cls: type[T]) -> type[T]:
            if key in self._items:
                raise ValueError(f"{self.what} type {key!r} is registered twice")
            cls.key = key
            self._items[key] = cls()
            return cls

        return decorate

    def get(self, key: str) -> T:
        try:
            return self._items[key]
        except KeyError:
            raise self._unknown(f"unknown {self.what} {key!r}; known: {', '.join(sorted(self._items))}") from None

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))

    def choices(self) -> list[tuple[str, str]]:
        return [(key, item.label) for key, item in self.items()]

    @contextmanager
    def temporarily(self, key: str, cls: type[T]) -> Iterator[T]:
        """Register a class for the duration of a block (tests)."""
        self.register(key)(cls)
        try:
            yield self._items[key]
        finally:
            del self._items[key]
