"""A server-wide cache bounded in bytes as well as entries: Streamlit's caches count entries only, and eight datasets
of up to 2 GiB each, or sixteen big models, do not fit in one server's memory."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class ByteBudgetCache(Generic[V]):
    """At most `max_entries` least recently used values whose sizes add up to at most `budget` bytes (the newest one is
    kept however big); thread-safe, and one load per key at a time (a second session asking for a key being loaded
    waits for it)."""

    def __init__(self, budget: int, size_of: Callable[[V], int], max_entries: int = 16):
        self.budget, self.size_of, self.max_entries = budget, size_of, max_entries
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._loading: dict[Hashable, threading.Lock] = {}

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """The value for key, calling load() once if it is not cached (an exception caches nothing)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:  # loaded by whoever held key_lock before us
                    return self._items[key][0]
            try:
                value = load()
                with self._lock:
                    self._items[key] = (value, int(self.size_of(value)))
                    self._evict()
            finally:
                with self._lock:
                    self._loading.pop(key, None)
        return value

    def _evict(self) -> None:
        total = sum(size for _, size in self._items.values())
        while (total > self.budget or len(self._items) > self.max_entries) and len(self._items) > 1:
            _, (_, size) = self._items.popitem(last=False)
            total -= size
