"""Monitors: where memory readings come from.

A probe only reports; it never decides. ``Probe.read(budget_bytes)`` returns a :class:`Reading`
or raises (the guard counts the failure and holds its level: a failed read is never a zero).
Sources that fail inside a reading (PSI, cgroup files) are skipped and named in
``Reading.failed_sources`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of a probe.

    Attributes:
        used_bytes: memory in use, bytes (RSS, or the cgroup working set when the cgroup binds).
        capacity_bytes: effective capacity, bytes: min(budget, cgroup limit, physical memory).
        psi_some_avg10: memory PSI ``some avg10`` (percent, 0-100) or ``None`` if unreadable.
        gc_pause_p99_ms: p99 GC pause over the window, milliseconds, or ``None`` if no pauses.
        alloc_rate_bytes_per_sec: a growth rate the probe measured itself; ``None`` lets the
            guard estimate it from successive ``used_bytes``.
        failed_sources: names of sources that failed during this reading (counted by the guard).
    """

    used_bytes: int
    capacity_bytes: int
    psi_some_avg10: float | None = None
    gc_pause_p99_ms: float | None = None
    alloc_rate_bytes_per_sec: float | None = None
    failed_sources: tuple[str, ...] = ()


@runtime_checkable
class Probe(Protocol):
    """A source of memory readings (a *monitor* in Envoy's terms)."""

    def read(self, budget_bytes: int) -> Reading:
        """Read memory now; ``budget_bytes`` is the contract's budget. May raise."""
        ...

    def close(self) -> None:
        """Release what the probe installed (e.g. ``gc.callbacks`` hooks)."""
        ...
