"""Actions of the breach ladder (SPEC §4): each engages when its condition starts to hold and
is reversed when it stops. They fire on changes only; :class:`ActionRunner` runs each behind a
guard that logs and counts its exceptions, so an action can never break the sampler.
"""

from __future__ import annotations

import gc
import logging
import threading
import tracemalloc
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from typing import Protocol

from .pressure import Level, Pressure
from .telemetry import ACTIONS, HOOK_ERRORS, Telemetry

log = logging.getLogger("memcontract.guard")


class Action:
    """Engaged while the level is at least :attr:`level`; subclasses override the hooks."""

    name = "action"
    level = Level.CRITICAL

    def wanted(self, pressure: Pressure) -> bool:
        """Whether the action should be engaged for this sample."""
        return pressure.level >= self.level

    def engage(self, pressure: Pressure) -> None:
        """Take the action (called once, when :meth:`wanted` becomes true)."""

    def tick(self, pressure: Pressure) -> None:
        """Called on every sample while engaged."""

    def release(self) -> None:
        """Reverse the action (called once, when :meth:`wanted` becomes false or on stop)."""


class TightenGC(Action):
    """At ``usage >= gc_trigger_ratio``: lower the gen0 GC threshold; restore below it."""

    name = "tighten_gc"

    def __init__(self, trigger_ratio: float, factor: int = 4) -> None:
        self.trigger_ratio = trigger_ratio
        self.factor = factor
        self._saved: tuple[int, ...] | None = None

    def wanted(self, pressure: Pressure) -> bool:
        return pressure.usage_ratio >= self.trigger_ratio

    def engage(self, pressure: Pressure) -> None:
        self._saved = gc.get_threshold()
        gen0, *rest = self._saved
        gc.set_threshold(max(1, gen0 // self.factor), *rest)

    def release(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None


class QuietLoggers(Action):
    """At level 1: raise the non-critical loggers to WARNING; restore their levels after."""

    name = "quiet_loggers"
    level = Level.ALERT

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self._saved: dict[str, int] = {}

    def engage(self, pressure: Pressure) -> None:
        for name in self.names:
            logger = logging.getLogger(name)
            self._saved[name] = logger.level
            if logger.getEffectiveLevel() < logging.WARNING:
                logger.setLevel(logging.WARNING)

    def release(self) -> None:
        for name, level in self._saved.items():
            logging.getLogger(name).setLevel(level)
        self._saved.clear()


class PauseTelemetry(Action):
    """At level 2: the non-essential gauges stop reporting."""

    name = "pause_telemetry"
    level = Level.DEGRADED

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def engage(self, pressure: Pressure) -> None:
        self.telemetry.paused = True

    def release(self) -> None:
        self.telemetry.paused = False


class SampleAllocations(Action):
    """At level 2: trace allocations and log the top sites once per sample; stop on recovery."""

    name = "sample_allocations"
    level = Level.DEGRADED

    def __init__(self, top: int = 5, frames: int = 1) -> None:
        self.top = top
        self.frames = frames
        self._started = False

    def engage(self, pressure: Pressure) -> None:
        # A program that traces allocations itself keeps its tracing; we only stop ours.
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
            self._started = True

    def tick(self, pressure: Pressure) -> None:
        if not tracemalloc.is_tracing():
            return
        stats = tracemalloc.take_snapshot().statistics("lineno")[: self.top]
        sites = "; ".join(f"{s.traceback[0]} {s.size / 1048576:.1f} MiB" for s in stats)
        log.warning("memcontract: top allocation sites at level %d: %s", pressure.level, sites)

    def release(self) -> None:
        if self._started:
            tracemalloc.stop()
            self._started = False


class CollectGarbage(Action):
    """At level 3: one full ``gc.collect()`` on entry."""

    name = "collect_garbage"
    level = Level.CRITICAL

    def __init__(self) -> None:
        self.collections = 0

    def engage(self, pressure: Pressure) -> None:
        gc.collect()
        self.collections += 1


class Shrinkable(Protocol):
    """A cache that can shrink under pressure and grow back (e.g. PressureAwareCache)."""

    def shrink(self) -> None:
        """Drop entries down to the reduced size."""

    def restore(self) -> None:
        """Return to the configured size."""


class ShrinkCaches(Action):
    """At level 3: registered caches shrink; they grow back on recovery.

    Caches register from any thread (:meth:`add`) while the sampler walks them: the set is
    copied under a lock, and one cache that fails (logged) does not keep the others back.
    """

    name = "shrink_caches"
    level = Level.CRITICAL

    def __init__(self) -> None:
        self.caches: weakref.WeakSet[Shrinkable] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, cache: Shrinkable) -> None:
        """Register ``cache`` (held weakly)."""
        with self._lock:
            self.caches.add(cache)

    def _each(self, what: str) -> None:
        with self._lock:
            caches = list(self.caches)
        for cache in caches:
            try:
                getattr(cache, what)()
            except Exception:  # one cache failing does not keep the others from shrinking
                log.exception("memcontract: cache %r failed to %s", cache, what)

    def engage(self, pressure: Pressure) -> None:
        self._each("shrink")

    def release(self) -> None:
        self._each("restore")

    def reset_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at fork)."""
        self._lock = threading.Lock()


class ActionRunner:
    """Engages and releases actions on changes; in dry run it only counts what it would do."""

    def __init__(self, actions: Iterable[Action], telemetry: Telemetry, *, dry_run: bool) -> None:
        self.actions = tuple(actions)
        self.telemetry = telemetry
        self.dry_run = dry_run
        self.engaged: set[str] = set()

    def update(self, pressure: Pressure) -> None:
        """Apply one sample: engage, tick or release each action as its condition says."""
        for action in self.actions:
            try:  # called directly: this runs for every action on every sample
                wanted = action.wanted(pressure)
            except Exception:
                self._failed(action, "wanted")
                wanted = False
            engaged = action.name in self.engaged
            if wanted and not engaged:
                self._fire(action, "engage", partial(action.engage, pressure))
            elif engaged and not wanted:
                self._fire(action, "release", action.release)
            elif engaged and not self.dry_run:
                self._safe(action, "tick", partial(action.tick, pressure))

    def release_all(self) -> None:
        """Reverse every engaged action (the guard stops)."""
        for action in self.actions:
            if action.name in self.engaged:
                self._fire(action, "release", action.release)

    def _fire(self, action: Action, what: str, hook: Callable[[], object]) -> None:
        if what == "engage":
            self.engaged.add(action.name)
        else:
            self.engaged.discard(action.name)
        dry_run = "true" if self.dry_run else "false"
        self.telemetry.add(ACTIONS, 1, {"action": f"{action.name}.{what}", "dry_run": dry_run})
        if not self.dry_run:
            self._safe(action, what, hook)

    def _safe(self, action: Action, what: str, hook: Callable[[], object]) -> object:
        try:
            return hook()
        except Exception:
            self._failed(action, what)
            return False

    def _failed(self, action: Action, what: str) -> None:
        self.telemetry.add(HOOK_ERRORS, 1, {"hook": f"{action.name}.{what}"})
        log.exception("memcontract: action %s.%s failed", action.name, what)
