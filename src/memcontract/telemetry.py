"""Telemetry through the OpenTelemetry API only (the user brings the SDK), plus plain counts.

Gauges (observed from the guard's snapshot): ``memcontract.memory.usage_ratio`` (1),
``memcontract.memory.used`` (By), ``memcontract.memory.live`` (By, only where live memory is
known), ``memcontract.memory.capacity`` (By), ``memcontract.level`` (1),
and the non-essential ``memcontract.memory.alloc_rate`` (By/s), ``memcontract.memory.psi``
(%) and ``memcontract.gc.pause_p99`` (ms), which stop reporting while telemetry is paused
(level 2). Counters: see :data:`COUNTERS`. A span event marks each level transition.
"""

from __future__ import annotations

import threading
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

#: Counter name → (unit, description).
COUNTERS: dict[str, tuple[str, str]] = {
    SHEDS: ("{call}", "Calls shed with RESOURCE_EXHAUSTED at level 3"),
    WOULD_SHED: ("{call}", "Calls that would have been shed (dry run)"),
    FAST_FAILS: ("{call}", "Calls failed locally because the target reports level 3"),
    CACHE_DENIED: ("{write}", "Cache writes skipped, by reason"),
    INVALID_HEADERS: ("{header}", "Peer x-memory-* values that did not parse, by key"),
    UNTRUSTED_PEERS: ("{call}", "Calls whose peer pressure was ignored as untrusted"),
    PROBE_FAILURES: ("{failure}", "Memory sources that failed to read, by source"),
    HOOK_ERRORS: ("{error}", "Exceptions from actions and callbacks, by hook"),
    ACTIONS: ("{action}", "Ladder actions engaged or released, by action and dry run"),
    RELEASES: ("{release}", "gc.collect() + malloc_trim(0) runs at level 3, by trim result"),
    HALF_OPEN_ADMITS: ("{call}", "Non-core calls admitted at level 3 while shedding half-open"),
    RECYCLES: ("{recycle}", "Times level 3 was stuck and the process was asked to recycle"),
}


class Telemetry:
    """The guard's instruments; :meth:`add` also keeps plain counts for tests and the CLI."""

    def __init__(
        self,
        snapshot: Callable[[], Pressure],
        *,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._snapshot = snapshot
        self.paused = False
        self.counts: Counter[str] = Counter()
        self.by_attribute: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()
        meter = metrics.get_meter("memcontract", meter_provider=meter_provider)
        self._tracer = trace.get_tracer("memcontract", tracer_provider=tracer_provider)
        self._counters = {
            name: meter.create_counter(name, unit=unit, description=text)
            for name, (unit, text) in COUNTERS.items()
        }
        self._gauges(meter)

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

        gauge(
            "memcontract.memory.usage_ratio",
            "1",
            "Used memory over capacity",
            lambda p: p.usage_ratio,
            True,
        )
        gauge("memcontract.memory.used", "By", "Used memory", lambda p: p.used_bytes, True)
        gauge(
            "memcontract.memory.live",
            "By",
            "Live memory: what the program holds, not what its allocators retain",
            lambda p: p.live_bytes,
            True,
        )
        gauge(
            "memcontract.memory.capacity",
            "By",
            "Effective capacity",
            lambda p: p.capacity_bytes,
            True,
        )
        gauge("memcontract.level", "1", "Breach level in force (0-3)", lambda p: int(p.level), True)
        gauge(
            "memcontract.memory.alloc_rate",
            "By/s",
            "Smoothed growth rate of used memory",
            lambda p: p.alloc_rate_bytes_per_sec,
            False,
        )
        gauge(
            "memcontract.memory.psi",
            "%",
            "Memory PSI some avg10",
            lambda p: p.psi_some_avg10,
            False,
        )
        gauge(
            "memcontract.gc.pause_p99",
            "ms",
            "p99 GC pause over the window",
            lambda p: p.gc_pause_p99_ms,
            False,
        )

    def reset_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at fork)."""
        self._lock = threading.Lock()

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
        attributes: dict[str, AttributeValue] = {
            "memcontract.level.old": int(old),
            "memcontract.level.new": int(new),
            "memcontract.memory.usage_ratio": pressure.usage_ratio,
            "memcontract.module": pressure.module,
        }
        with self._tracer.start_as_current_span("memcontract.level_transition") as span:
            span.add_event("memcontract.level.transition", attributes)
