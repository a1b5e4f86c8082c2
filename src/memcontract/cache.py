"""``PressureAwareCache``: a cachetools cache that stops growing under pressure (docs/design.md §7).

Reads always work. A write is skipped when the current caller reports usage above
``peer_admission_threshold`` (the article's rule: a caller near its limit should not make this
service hold more for it), or when the local level is 2 or more. At level 3 the cache sheds
entries down to ``shrink_to`` of its size; it grows back by ordinary writes after recovery.

>>> import cachetools
>>> cache = PressureAwareCache(cachetools.LRUCache(maxsize=100))
>>> cache.put("sku-1", 7)
True
>>> cache.get("sku-1"), cache.stats.hits
(7, 1)
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import cachetools

from .caller import peer_pressure
from .pressure import Level, Pressure
from .telemetry import CACHE_DENIED

if TYPE_CHECKING:
    from .guard import Guard

K = TypeVar("K")
V = TypeVar("V")

PEER_PRESSURE = "peer_pressure"
LOCAL_PRESSURE = "local_pressure"
TOO_LARGE = "too_large"


@dataclass
class CacheStats:
    """Hits, misses, admitted writes and denied writes by reason."""

    hits: int = 0
    misses: int = 0
    admitted: int = 0
    denied: Counter[str] = field(default_factory=Counter)
    shrinks: int = 0


class PressureAwareCache(Generic[K, V]):
    """Wraps any ``cachetools`` cache; thread-safe (one lock around the inner cache).

    Args:
        cache: the cache to wrap (``LRUCache``, ``TTLCache``, ...).
        guard: the local guard: level >= 2 denies writes, level 3 shrinks (registered here).
        peer_admission_threshold: caller usage ratio above which writes are skipped (0-1).
        shrink_to: fraction of ``maxsize`` kept at level 3 (0-1).
        caller: where the caller's pressure comes from (default ``peer_pressure``).
    """

    def __init__(
        self,
        cache: cachetools.Cache[K, V],
        guard: Guard | None = None,
        *,
        peer_admission_threshold: float = 0.80,
        shrink_to: float = 0.25,
        caller: Callable[[], Pressure | None] = peer_pressure,
    ) -> None:
        if not 0 < peer_admission_threshold <= 10:
            raise ValueError("peer_admission_threshold must be a usage ratio above 0")
        if not 0 <= shrink_to <= 1:
            raise ValueError("shrink_to must be a fraction between 0 and 1")
        self.cache = cache
        self.guard = guard
        self.peer_admission_threshold = peer_admission_threshold
        self.shrink_to = shrink_to
        self.stats = CacheStats()
        self._caller = caller
        self._lock = threading.RLock()
        _LIVE_CACHES.add(self)
        if guard is not None:
            guard.register_cache(self)

    def get(self, key: K, default: Any = None) -> Any:
        """The cached value, or ``default`` (counts a hit or a miss)."""
        with self._lock:
            try:
                value = self.cache[key]
            except KeyError:
                self.stats.misses += 1
                return default
            self.stats.hits += 1
            return value

    def denial(self) -> str | None:
        """Why a write would be skipped now (``"local_pressure"``, ``"peer_pressure"``) or None."""
        if self.guard is not None and self.guard.level >= Level.DEGRADED:
            return LOCAL_PRESSURE
        caller = self._caller()
        if caller is not None and caller.usage_ratio > self.peer_admission_threshold:
            return PEER_PRESSURE
        return None

    def put(self, key: K, value: V) -> bool:
        """Store ``value`` unless pressure says not to; return whether it was stored."""
        reason = self.denial()
        if reason is None:
            with self._lock:
                try:
                    self.cache[key] = value
                except ValueError:  # larger than a size-limited cache can hold (cachetools)
                    reason = TOO_LARGE
                else:
                    self.stats.admitted += 1
                    return True
        with self._lock:
            self.stats.denied[reason] += 1
        if self.guard is not None:
            self.guard.telemetry.add(CACHE_DENIED, 1, {"reason": reason})
        return False

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self.cache

    def __len__(self) -> int:
        with self._lock:
            return len(self.cache)

    def pop(self, key: K, default: Any = None) -> Any:
        """Remove and return an entry (or ``default``)."""
        with self._lock:
            return self.cache.pop(key, default)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self.cache.clear()

    def shrink(self) -> None:
        """Evict (by the cache's own policy) down to ``shrink_to`` of ``maxsize``."""
        with self._lock:
            target = self.cache.maxsize * self.shrink_to
            while self.cache.currsize > target and len(self.cache):
                self.cache.popitem()
            self.stats.shrinks += 1

    def restore(self) -> None:
        """Recovery: nothing to undo; the cache refills through admitted writes."""


# A forked child gets every cache's lock as it was at fork: one held by another thread then
# would never be released in the child.
_LIVE_CACHES: weakref.WeakSet[PressureAwareCache[Any, Any]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_LIVE_CACHES):
        cache._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
