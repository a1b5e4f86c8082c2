"""Telemetry through the OpenTelemetry API only (the user brings the SDK), plus plain counts.

Gauges, observed from the guard's snapshot when a reader collects (no I/O):
``memcontract.memory.usage_ratio`` (1), ``memcontract.memory.used``, ``.live``,
``.retained_plateau``, ``.capacity``, ``.budget`` and ``.limit`` (By; live and the plateau only
where the snapshot has them, the limit only under a cgroup limit), ``memcontract.level``,
``memcontract.contract.info`` (1, with the module and contract version), and the
non-essential ``memcontract.memory.alloc_rate`` (By/s), ``memcontract.memory.psi_ratio`` (1)
and ``memcontract.gc.pause_p99`` (s), which stop reporting while telemetry is paused
(level 2). Counters: see :data:`COUNTERS`, and ``memcontract.time_at_level`` (s, by level).
A span event marks each level transition.

With the ``prometheus`` extra these become the ``memcontract_*`` families of
:mod:`memcontract.metrics` (``memcontract_memory_used_bytes``, ``memcontract_shed_total``, ...).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import AttributeValue

from .pressure import Level, Pressure

SHEDS = "memcontract.shed"
WOULD_SHED = "memcontract.shed.dry_run"
FAST_FAILS = "memcontract.fast_fail"
CACHE_DENIED = "memcontract.cache.admission_denied"
INVALID_HEADERS = "memcontract.peer.invalid_headers"
UNTRUSTED_PEERS = "memcontract.peer.untrusted"
PROBE_FAILURES = "memcontract.probe.failures"
HOOK_ERRORS = "memcontract.hook.errors"
ACTIONS = "memcontract.actions"
RELEASES = "memcontract.memory.releases"
HALF_OPEN_ADMITS = "memcontract.shed.half_open_admitted"
RECYCLES = "memcontract.recycles"
TIME_AT_LEVEL = "memcontract.time_at_level"

#: Counter name → (unit, description).
COUNTERS: dict[str, tuple[str, str]] = {
    SHEDS: ("{call}", "Calls shed with RESOURCE_EXHAUSTED at level 3, by method class"),
    WOULD_SHED: ("{call}", "Calls that would have been shed (dry run), by method class"),
    FAST_FAILS: (
        "{call}",
        "Calls failed locally because the target reports level 3, by method class",
    ),
    CACHE_DENIED: ("{write}", "Cache writes skipped, by reason"),
    INVALID_HEADERS: ("{header}", "Peer x-memory-* values that did not parse, by key"),
    UNTRUSTED_PEERS: ("{call}", "Calls whose peer pressure was ignored as untrusted"),
    PROBE_FAILURES: ("{failure}", "Memory sources that failed to read, by source"),
    HOOK_ERRORS: ("{error}", "Exceptions from actions and callbacks, by hook"),
    ACTIONS: ("{action}", "Ladder actions engaged or released, by action and dry run"),
    RELEASES: (
        "{release}",
        "Memory releases at level 3 (gc.collect() + malloc_trim(0)), by result",
    ),
    HALF_OPEN_ADMITS: ("{call}", "Non-core calls admitted at level 3 while shedding half-open"),
    RECYCLES: ("{recycle}", "Times level 3 was stuck and the process was asked to recycle"),
}

#: The ``class`` attribute of sheds and fast-fails: whether the method is core (never shed by
#: this library; a gateway may refuse one when no upstream serves) or not.
CORE = {"class": "core"}
NONCORE = {"class": "noncore"}

#: Counters reported from the start at 0 for these attributes, so that ``rate()`` and
#: ``increase()`` see their first increment (Prometheus's advice for known label values).
ZEROED: dict[str, tuple[dict[str, str] | None, ...]] = {
    SHEDS: (CORE, NONCORE),
    WOULD_SHED: (CORE, NONCORE),
    FAST_FAILS: (CORE, NONCORE),
    HALF_OPEN_ADMITS: (None,),
    RECYCLES: (None,),
    UNTRUSTED_PEERS: (None,),
}


class LevelClock:
    """Seconds spent at each level (the ``memcontract.time_at_level`` counter)."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._level = Level.NORMAL
        self._since = monotonic()
        self._spent = dict.fromkeys(Level, 0.0)

    def enter(self, level: Level) -> None:
        """The level in force is now ``level``."""
        with self._lock:
            now = self._monotonic()
            self._spent[self._level] += max(0.0, now - self._since)
            self._level, self._since = level, now

    def seconds(self) -> dict[Level, float]:
        """Seconds at each level until now, the current stretch included."""
        with self._lock:
            spent = dict(self._spent)
            spent[self._level] += max(0.0, self._monotonic() - self._since)
        return spent

    def reset_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at fork)."""
        self._lock = threading.Lock()


class Telemetry:
    """The guard's instruments; :meth:`add` also keeps plain counts for tests and the CLI.

    Args:
        snapshot: returns the pressure in force (cached; called when a reader collects).
        budget_bytes: the contract's budget (``memcontract.memory.budget``), or None.
        monotonic: the clock of ``memcontract.time_at_level`` (the guard's).
        meter_provider, tracer_provider: OpenTelemetry providers (default: the global ones).
    """

    def __init__(
        self,
        snapshot: Callable[[], Pressure],
        *,
        budget_bytes: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._budget_bytes = budget_bytes
        self.paused = False
        self.counts: Counter[str] = Counter()
        self.by_attribute: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()
        self.level_clock = LevelClock(monotonic)
        meter = metrics.get_meter("memcontract", meter_provider=meter_provider)
        self._tracer = trace.get_tracer("memcontract", tracer_provider=tracer_provider)
        self._counters = {
            name: meter.create_counter(name, unit=unit, description=text)
            for name, (unit, text) in COUNTERS.items()
        }
        for name, attribute_sets in ZEROED.items():
            for attributes in attribute_sets:
                self._counters[name].add(0, attributes)
        self._gauges(meter)
        meter.create_observable_counter(
            TIME_AT_LEVEL,
            callbacks=[self._observe_time_at_level],
            unit="s",
            description="Time spent at each breach level, by level",
        )

    def _observe_time_at_level(self, _: CallbackOptions) -> Iterable[Observation]:
        seconds = self.level_clock.seconds()
        return [Observation(seconds[level], {"level": str(int(level))}) for level in Level]

    def _gauges(self, meter: metrics.Meter) -> None:
        def gauge(
            name: str, unit: str, text: str, read: Callable[[Pressure], Any], essential: bool
        ) -> None:
            def observe(_: CallbackOptions) -> Iterable[Observation]:
                if self.paused and not essential:
                    return ()
                value = read(self._snapshot())
                return () if value is None else (Observation(value),)

            meter.create_observable_gauge(name, callbacks=[observe], unit=unit, description=text)

        for name, unit, text, read, essential in _GAUGES:
            gauge(name, unit, text, read, essential)
        gauge(
            "memcontract.memory.budget",
            "By",
            "The contract's memory budget (max_heap_mb)",
            lambda _: self._budget_bytes,
            True,
        )
        meter.create_observable_gauge(
            "memcontract.contract.info",
            callbacks=[self._observe_info],
            unit="1",
            description="Always 1; the module and contract version in force as attributes",
        )

    def _observe_info(self, _: CallbackOptions) -> Iterable[Observation]:
        pressure = self._snapshot()
        return (Observation(1, {"module": pressure.module, "version": pressure.contract_version}),)

    def reset_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at fork)."""
        self._lock = threading.Lock()
        self.level_clock.reset_after_fork()

    def add(self, name: str, amount: int = 1, attributes: dict[str, str] | None = None) -> None:
        """Add to counter ``name`` (one of :data:`COUNTERS`); never raises into the caller."""
        with self._lock:
            self.counts[name] += amount
            if attributes:
                for key, value in attributes.items():
                    self.by_attribute[(name, key, value)] += amount
        self._counters[name].add(amount, attributes)

    def transition(self, old: Level, new: Level, pressure: Pressure) -> None:
        """Record a level transition as a span event (``memcontract.level.transition``)."""
        self.level_clock.enter(new)
        attributes: dict[str, AttributeValue] = {
            "memcontract.level.old": int(old),
            "memcontract.level.new": int(new),
            "memcontract.memory.usage_ratio": pressure.usage_ratio,
            "memcontract.module": pressure.module,
        }
        with self._tracer.start_as_current_span("memcontract.level_transition") as span:
            span.add_event("memcontract.level.transition", attributes)


def _ms_to_seconds(value: float | None) -> float | None:
    return None if value is None else value / 1000


def _percent_to_ratio(value: float | None) -> float | None:
    return None if value is None else value / 100


#: The snapshot's gauges: (name, unit, description, read, essential). Non-essential ones stop
#: reporting while telemetry is paused (level 2).
_GAUGES: tuple[tuple[str, str, str, Callable[[Pressure], Any], bool], ...] = (
    (
        "memcontract.memory.usage_ratio",
        "1",
        "Used memory over capacity",
        lambda p: p.usage_ratio,
        True,
    ),
    (
        "memcontract.memory.used",
        "By",
        "Used memory (RSS, or the cgroup working set)",
        lambda p: p.used_bytes,
        True,
    ),
    (
        "memcontract.memory.live",
        "By",
        "Live memory: what the program holds",
        lambda p: p.live_bytes,
        True,
    ),
    (
        "memcontract.memory.retained_plateau",
        "By",
        "Used memory retained after level 3 was left on live memory",
        lambda p: p.plateau_bytes,
        True,
    ),
    (
        "memcontract.memory.capacity",
        "By",
        "Effective capacity: min(budget, cgroup limit, physical)",
        lambda p: p.capacity_bytes,
        True,
    ),
    (
        "memcontract.memory.limit",
        "By",
        "The cgroup memory limit (the kernel's hard limit)",
        lambda p: p.limit_bytes,
        True,
    ),
    ("memcontract.level", "{level}", "Breach level in force (0-3)", lambda p: int(p.level), True),
    (
        "memcontract.memory.alloc_rate",
        "By/s",
        "Smoothed growth rate of used memory",
        lambda p: p.alloc_rate_bytes_per_sec,
        False,
    ),
    (
        "memcontract.memory.psi_ratio",
        "1",
        "Memory PSI some avg10, as a ratio (0-1)",
        lambda p: _percent_to_ratio(p.psi_some_avg10),
        False,
    ),
    (
        "memcontract.gc.pause_p99",
        "s",
        "p99 GC pause over the window",
        lambda p: _ms_to_seconds(p.gc_pause_p99_ms),
        False,
    ),
)
