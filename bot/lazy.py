"""One process-wide instance, built on first use: the guide service, the ticket store.

Building either is expensive or touches the outside world (loading a model, migrating a
database), so nothing is built at import time; the first caller builds it, under a lock, and
every later caller shares it. Servers and tests may put their own in place with ``install``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def install(self, value: T | None) -> None:
        """Use ``value`` from now on (None: build again on next use)."""
        with self._lock:
            self._value = value

    def get(self) -> T:
        """The instance, built on the first call (a failed build is retried next time)."""
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value
