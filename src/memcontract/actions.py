"""Actions of the breach ladder (docs/design.md §4): each engages when its condition starts to
hold and is reversed when it stops. They fire on changes only; :class:`ActionRunner` runs each
behind a guard that logs and counts its exceptions, so an action can never break the sampler.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
import tracemalloc
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from typing import Protocol

from .allocations import (
    MIN_WINDOW,
    AllocationReport,
    Sites,
    group_sites,
    start_tracing,
    take_report,
)
from .pressure import Level, Pressure
from .recovery import release_memory
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
    """At level 2: sample allocations; log one report of the top allocation sites by growth on
    entering level 2 and one on entering level 3, nothing more while the level holds or until
    the level drops below 2 (one episode). The latest report stays in :attr:`report`.

    Each report covers one sampling window: ``tracemalloc`` starts when the level is entered
    and stops at the next sample, once its snapshot is taken. Traces kept across a whole
    episode would cost what they measure (about 60 bytes per live block: tens of MiB under
    load, holding level 3 up) and a snapshot of them would copy every one (2.2 M traces took
    2.5 s with the GIL held and 350 MiB). The window bounds both by what one sample interval
    allocates; the report is built on a worker thread, never on the sampler (which runs on the
    event loop in aio programs), and groups at most ``max_traces`` traces (an evenly spaced
    sample; see :mod:`memcontract.allocations`). A program that traces allocations itself
    keeps its tracing: then the report is the growth since the level was entered.
    """

    name = "sample_allocations"
    level = Level.DEGRADED

    def __init__(self, top: int = 5, frames: int = 1, max_traces: int = 50_000) -> None:
        self.top = top
        self.frames = frames
        self.max_traces = max_traces
        self.report: AllocationReport | None = None
        self.worker: threading.Thread | None = None
        self._reported: set[int] = set()  # levels whose window opened this episode
        self._pending: int | None = None  # the level whose window is open
        self._window = 0  # numbers the windows, so a late worker never stops a newer one
        self._episode = 0  # numbers the episodes (level 2 entered to level 2 left)
        self._started = False  # whether the tracing in force is ours
        self._started_at = 0.0  # time.monotonic() when ours started
        self._baseline: Sites = {}
        self._tracing = threading.Lock()  # starting and stopping tracemalloc
        self._building = threading.Lock()  # one report at a time

    def engage(self, pressure: Pressure) -> None:
        self._reported.clear()
        self._open(min(int(pressure.level), int(Level.CRITICAL)))

    def tick(self, pressure: Pressure) -> None:
        if self._pending is not None:
            level, window, self._pending = self._pending, self._window, None
            episode = self._episode
            self._in_worker(lambda: self._report(level, window, episode))
        elif pressure.level >= Level.CRITICAL and Level.CRITICAL not in self._reported:
            self._open(int(Level.CRITICAL))

    def release(self) -> None:
        self._pending = None
        self._stop_tracing(self._window)
        self._episode += 1  # a report not started yet belongs to a finished episode

    def _open(self, level: int) -> None:
        self._reported.update(range(int(Level.DEGRADED), level + 1))
        with self._tracing:
            self._window += 1
            self._baseline = {}
            if not tracemalloc.is_tracing():
                start_tracing(self.frames)
                self._started = True
                self._started_at = time.monotonic()
            elif not self._started:  # the program's own tracing: growth from now on
                self._in_worker(self._take_baseline)
        self._pending = level

    def _stop_tracing(self, window: int) -> None:
        with self._tracing:
            if self._started and self._window == window:
                # only with samples under MIN_WINDOW apart: see start_tracing
                time.sleep(max(0.0, self._started_at + MIN_WINDOW - time.monotonic()))
                tracemalloc.stop()
                self._started = False

    def _in_worker(self, work: Callable[[], None]) -> None:
        self.worker = threading.Thread(target=work, name="memcontract-allocations", daemon=True)
        self.worker.start()

    def _take_baseline(self) -> None:
        with self._building:
            if tracemalloc.is_tracing():
                self._baseline = group_sites(tracemalloc.take_snapshot(), self.max_traces)[0]

    def _report(self, level: int, window: int, episode: int) -> None:
        try:
            with self._building:
                if episode != self._episode or not tracemalloc.is_tracing():
                    return  # recovered before the worker ran
                began = time.perf_counter()
                snapshot = tracemalloc.take_snapshot()
                self._stop_tracing(window)
                report = take_report(
                    level, snapshot, self._baseline, top=self.top, max_traces=self.max_traces
                )
                del snapshot
                report = dataclasses.replace(report, seconds=time.perf_counter() - began)
            self.report = report
            log.warning("memcontract: %s", report.format())
        except Exception:  # a worker has nobody to raise to
            log.exception("memcontract: allocation report failed")


class CollectGarbage(Action):
    """At level 3: on entry, hand freed memory back (``gc.collect()``, then glibc's
    ``malloc_trim(0)`` where present; see :func:`memcontract.recovery.release_memory`)."""

    name = "collect_garbage"
    level = Level.CRITICAL

    def __init__(self, telemetry: Telemetry | None = None) -> None:
        self.telemetry = telemetry
        self.collections = 0

    def engage(self, pressure: Pressure) -> None:
        release_memory(self.telemetry)
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
