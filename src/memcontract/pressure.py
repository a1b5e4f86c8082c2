"""The memory state of one process: :class:`Level` and :class:`Pressure`."""

from __future__ import annotations

import enum
from dataclasses import dataclass

MIB = 1024 * 1024


class Level(enum.IntEnum):
    """A rung of the breach ladder, 0 (inside the contract) to 3 (shedding).

    >>> Level(3).name
    'CRITICAL'
    """

    NORMAL = 0
    ALERT = 1
    DEGRADED = 2
    CRITICAL = 3


@dataclass(frozen=True, slots=True)
class Pressure:
    """One sample of a process's memory state; immutable, cheap to share between threads.

    Attributes:
        usage_ratio: the usage the ladder weighs and peers are told (``x-memory-usage``, ORCA):
            used / capacity (0 and up; above 1.0 means over budget), or live / capacity while a
            retained plateau is recorded (``plateau_bytes``; design §4).
        used_bytes: resident memory, or the cgroup working set when the cgroup limit binds.
        capacity_bytes: the effective budget, bytes: min(contract, cgroup limit, physical).
        alloc_rate_bytes_per_sec: smoothed growth rate of used memory, bytes/s, never negative.
        alloc_rate_ratio: growth rate over the contract's promised rate (1.0 = at the promise).
        level: breach level in force.
        contract_version: the contract's ``version``.
        module: the module whose contract is in force.
        sampled_at: when the sample was taken, Unix seconds.
        psi_some_avg10: memory PSI "some avg10" (percent) where readable, else ``None``.
        gc_pause_p99_ms: p99 of GC pauses over the window, milliseconds, else ``None``.
        live_bytes: memory the program holds (allocated objects, not what the allocators
            retain), bytes, or ``None`` where unknown (design §3).
        live_source: where ``live_bytes`` comes from (e.g. ``"pymalloc+mallinfo2"``); empty
            where no source exists.
        plateau_bytes: the used bytes recorded when level 3 was left on live memory (memory
            the process retains but does not use), or ``None``: while recorded, the usage
            peers see is the live usage (live plus the calm gap, design §4).
        limit_bytes: the hard limit the kernel enforces (the cgroup memory limit), bytes, else
            ``None``; ``capacity_bytes`` is at most this. Local only: not on the wire.
    """

    usage_ratio: float = 0.0
    used_bytes: int = 0
    capacity_bytes: int = 0
    alloc_rate_bytes_per_sec: float = 0.0
    alloc_rate_ratio: float = 0.0
    level: Level = Level.NORMAL
    contract_version: str = ""
    module: str = ""
    sampled_at: float = 0.0
    psi_some_avg10: float | None = None
    gc_pause_p99_ms: float | None = None
    live_bytes: int | None = None
    live_source: str = ""
    plateau_bytes: int | None = None
    limit_bytes: int | None = None

    @property
    def used_ratio(self) -> float:
        """Used memory over capacity (``usage_ratio`` is this unless a plateau is recorded)."""
        return self.used_bytes / self.capacity_bytes if self.capacity_bytes > 0 else 0.0

    @property
    def live_ratio(self) -> float | None:
        """Live memory over capacity, or ``None`` where live memory is unknown."""
        if self.live_bytes is None or self.capacity_bytes <= 0:
            return None
        return self.live_bytes / self.capacity_bytes

    @property
    def capacity_mib(self) -> int:
        """Capacity in whole MiB (rounded down), as sent in ``x-memory-capacity``."""
        return self.capacity_bytes // MIB
