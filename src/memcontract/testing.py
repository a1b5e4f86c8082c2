"""Test doubles for deterministic guard tests, shipped for users' own tests too.

>>> from memcontract import Contract, Guard
>>> probe, clock = FakeProbe(), FakeClock()
>>> guard = Guard(Contract.from_yaml("modules: [{name: a, max_heap_mb: 100}]"),
...               probe=probe, clock=clock)
>>> _ = probe.set(usage=0.5)
>>> guard.sample_once().usage_ratio
0.5
"""

from __future__ import annotations

from .pressure import MIB
from .probe import Reading


class ProbeFailure(OSError):
    """What a :class:`FakeProbe` raises after :meth:`FakeProbe.fail`."""


class FakeProbe:
    """A probe whose readings the test sets: ``probe.set(usage=0.95)``.

    Usage is relative to the capacity: the contract budget unless ``capacity_mb`` is set
    (a smaller cgroup limit, say). ``alloc_rate_mb`` reports a growth rate directly (default 0);
    with ``estimate_rate=True`` the probe reports none and the guard estimates it from the
    successive used bytes, as with the system probe. ``live`` (a ratio of capacity) or
    ``live_mb`` set live memory for the next reads (unknown unless given, on every ``set``);
    ``limit_mb`` a hard (cgroup) limit, kept until changed (0 removes it).

    >>> probe = FakeProbe().set(used_mb=90, live_mb=20, limit_mb=160)
    >>> reading = probe.read(1024 * MIB)
    >>> reading.live_bytes // MIB, reading.limit_bytes // MIB
    (20, 160)
    """

    def __init__(self, *, estimate_rate: bool = False) -> None:
        self.estimate_rate = estimate_rate
        self.used_bytes: int | None = None
        self.usage: float | None = 0.0
        self.capacity_bytes: int | None = None
        self.alloc_rate_bytes_per_sec: float | None = None
        self.psi_some_avg10: float | None = None
        self.gc_pause_p99_ms: float | None = None
        self.live: float | None = None
        self.live_bytes: int | None = None
        self.limit_bytes: int | None = None
        self.failing = False
        self.reads = 0
        self.closed = False

    def set(
        self,
        *,
        usage: float | None = None,
        used_mb: float | None = None,
        capacity_mb: float | None = None,
        alloc_rate_mb: float | None = None,
        psi: float | None = None,
        gc_pause_p99_ms: float | None = None,
        live: float | None = None,
        live_mb: float | None = None,
        limit_mb: float | None = None,
    ) -> FakeProbe:
        """Set what the next reads return (usage ratio, or used MiB); clears a failure."""
        if usage is not None:
            self.usage, self.used_bytes = usage, None
        if used_mb is not None:
            self.used_bytes, self.usage = int(used_mb * MIB), None
        if capacity_mb is not None:
            self.capacity_bytes = int(capacity_mb * MIB)
        if limit_mb is not None:
            self.limit_bytes = int(limit_mb * MIB) or None
        self.alloc_rate_bytes_per_sec = (alloc_rate_mb or 0.0) * MIB
        self.psi_some_avg10 = psi
        self.gc_pause_p99_ms = gc_pause_p99_ms
        self.live = live
        self.live_bytes = None if live_mb is None else int(live_mb * MIB)
        if limit_mb is not None:
            self.limit_bytes = int(limit_mb * MIB) or None
        self.failing = False
        return self

    def fail(self) -> FakeProbe:
        """Make the following reads raise :class:`ProbeFailure` until :meth:`set`."""
        self.failing = True
        return self

    def read(self, budget_bytes: int) -> Reading:
        """Return the reading set by the test (or raise after :meth:`fail`)."""
        self.reads += 1
        if self.failing:
            raise ProbeFailure("fake probe failure")
        capacity = min(budget_bytes, self.capacity_bytes or budget_bytes)
        if self.used_bytes is not None:
            used = self.used_bytes
        else:
            used = round((self.usage or 0.0) * capacity)
        live = self.live_bytes
        if self.live is not None:
            live = round(self.live * capacity)
        return Reading(
            used_bytes=used,
            capacity_bytes=capacity,
            psi_some_avg10=self.psi_some_avg10,
            gc_pause_p99_ms=self.gc_pause_p99_ms,
            alloc_rate_bytes_per_sec=None if self.estimate_rate else self.alloc_rate_bytes_per_sec,
            live_bytes=live,
            live_source="" if live is None else "fake",
            limit_bytes=self.limit_bytes,
        )

    def close(self) -> None:
        """Mark the probe closed."""
        self.closed = True


class FakeClock:
    """A clock that moves only when told: ``clock.advance(0.5)``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._wall = start
        self._mono = 1000.0

    def time(self) -> float:
        """Wall-clock seconds since the epoch."""
        return self._wall

    def monotonic(self) -> float:
        """Monotonic seconds."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self._wall += seconds
        self._mono += seconds
