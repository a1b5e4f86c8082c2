"""The one place the simulation calls memcontract's decision code (an adapter).

Everything the simulated fleet decides goes through two small interfaces of our own:

* :class:`BackendBrain` — one per simulated backend process: its sampler's decisions. It runs
  the real :class:`memcontract.ladder.MemoryLadder` (used and live memory, the hard limit, the
  growth rate, the retained plateau: what the guard feeds it), the real
  :class:`memcontract.recovery.Recovery` (level 3's way out; its ``release`` callback only
  records that a release was asked for: the simulation's memory model applies it), and builds
  the report a backend would send with :meth:`memcontract.contract.OrcaOptions.reported_rates`
  and :func:`memcontract.wire.orca_load_report` (the ``application_utilization``,
  ``rps_fractional`` and ``eps`` a weighted round robin balancer reads).
* :class:`CallerPolicy` — one per simulated client process (one channel to the service): the
  client side's fail-fast, the real :class:`memcontract.callees.CalleeTable` fed as the client
  interceptor feeds it (``record(target, pressure, pushback, instance_id)``,
  ``fails_fast(target)``, which lets one probe per window through).

The decision objects are pure: no clock of their own, no I/O, no action taken (``release``
and ``recycle`` are callbacks into the simulation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from memcontract.callees import CalleeTable
from memcontract.contract import ModuleContract
from memcontract.ladder import MemoryLadder, MemorySample
from memcontract.pressure import MIB, Level, Pressure
from memcontract.recovery import Phase, Recovery
from memcontract.wire import orca_load_report

#: What a backend's ladder reads. ``"live"``: what the guard does (used memory, live memory and
#: the hard limit: level 3 before the limit, and out of it on live memory). ``"used"``: used
#: memory alone, live memory unknown and no hard limit (the guard before issue 22), for
#: comparison.
LADDER_INPUTS = ("live", "used")


@dataclass(frozen=True, slots=True)
class Sample:
    """What one sample of a backend decides and reports.

    Attributes:
        level: the ladder's level (0-3).
        usage: the usage ratio reported to peers (measured / capacity).
        admit: fraction of non-core calls admitted (1 below level 3 or with shedding off;
            :class:`Recovery`'s fraction at level 3).
        release: whether a release (``gc.collect()`` + ``malloc_trim(0)`` in Python,
            ``debug.FreeOSMemory`` in Go) was asked for in this sample.
        utilization: the ORCA report's ``application_utilization``.
        rps, eps: the ORCA report's ``rps_fractional`` and ``eps``.
    """

    level: int
    usage: float
    admit: float
    release: bool
    utilization: float
    rps: float
    eps: float


class BackendBrain:
    """One backend's sampler decisions: ladder, level-3 recovery, the ORCA report.

    Args:
        module: the contract in force (thresholds, confirm counts, ``orca``, ``on_stuck``).
        shedding: whether level 3 sheds non-core calls (``admit`` < 1); off: admit all.
        release: whether level 3 hands memory back (entering it, and when it stalls).
        ladder_input: what the ladder reads, see :data:`LADDER_INPUTS`.
        reports: whether the ORCA report is built (a balancer reads it).
    """

    def __init__(
        self,
        module: ModuleContract,
        *,
        shedding: bool = True,
        release: bool = True,
        ladder_input: str = "live",
        reports: bool = True,
    ) -> None:
        if ladder_input not in LADDER_INPUTS:
            raise ValueError(f"ladder_input must be one of {LADDER_INPUTS}, not {ladder_input!r}")
        self.module = module
        self.shedding = shedding
        self.releases = release
        self.ladder_input = ladder_input
        self.reports = reports
        self.memory = MemoryLadder(
            module.ladder,
            interval=module.sample_interval,
            promised_rate_bytes_per_sec=module.alloc_rate_bytes_per_sec,
            live_exit=ladder_input == "live",
        )
        self._release_asked = False
        self._recovery = Recovery(module, release=self._ask_release)
        self._promised = module.alloc_rate_bytes_per_sec
        self._last_level = Level.NORMAL
        self._memo: tuple[object, tuple[float, float, float]] | None = None
        # Calm samples skip the ladder's thresholds and Recovery, where feeding them changes
        # nothing: at level 0 without a plateau, after a sample below every level-1 threshold
        # (every streak 0) and away from the hard limit, another such sample leaves the ladder
        # as it is; Recovery below level 3 only stays closed. The growth rate is fed on every
        # sample all the same. A test compares both paths.
        self._calm = True
        self.fast_calm = True
        self._heap_level1 = module.ladder.heap.level1
        self._rate_level1 = module.ladder.alloc_rate.level1

    def _ask_release(self) -> None:
        self._release_asked = True

    def sample(
        self,
        used: float,
        live: float,
        capacity: float,
        limit: float | None,
        now: float,
        rps: float,
        eps: float,
    ) -> Sample:
        """Feed one reading (bytes; ``limit`` the cgroup's hard limit or ``None``; ``now`` in
        seconds; calls and errors per second)."""
        if self.ladder_input == "used":
            live_bytes, limit_bytes = None, None
        else:
            live_bytes = int(live)
            limit_bytes = None if limit is None else int(limit)
        reading = MemorySample(
            now=now,
            used_bytes=int(used),
            capacity_bytes=int(capacity),
            live_bytes=live_bytes,
            limit_bytes=limit_bytes,
        )
        if self.fast_calm and self._calm and self._still_calm(reading):
            # as the ladder's step ends
            self.memory.note_sample(reading.used_bytes, live_bytes, reading.capacity_bytes)
            usage = reading.used_bytes / reading.capacity_bytes  # as the ladder divides
            return self._sample(Level.NORMAL, usage, 1.0, rps, eps)
        step = self.memory.step(reading)
        level = step.level
        self._calm = (
            level == Level.NORMAL
            and step.plateau_bytes is None
            and step.usage_ratio < self._heap_level1
            and step.alloc_rate_ratio < self._rate_level1
        )
        self._release_asked = False
        fraction = 0.0
        if level == Level.CRITICAL or self._recovery.phase is not Phase.CLOSED:
            # below level 3 a closed Recovery only stays closed: fed when it matters
            pressure = Pressure(
                usage_ratio=step.usage_ratio,
                used_bytes=int(used),
                capacity_bytes=int(capacity),
                alloc_rate_bytes_per_sec=step.alloc_rate_bytes_per_sec,
                alloc_rate_ratio=step.alloc_rate_ratio,
                level=level,
                live_bytes=live_bytes,
                plateau_bytes=step.plateau_bytes,
                limit_bytes=limit_bytes,
            )
            fraction = self._recovery.update(
                pressure, at_hard_limit=step.at_hard_limit, live_ratio=step.live_ratio
            )
        if level == Level.CRITICAL and self._last_level != Level.CRITICAL:
            self._release_asked = True  # the guard's collect_garbage action, on entering level 3
        self._last_level = level
        admit = fraction if level == Level.CRITICAL and self.shedding else 1.0
        return self._sample(level, step.usage_ratio, admit, rps, eps)

    def _still_calm(self, reading: MemorySample) -> bool:
        """Feed the growth rate; whether this sample is calm as the last one was (below every
        level-1 threshold, used + margin short of the hard limit): the ladder would not move."""
        growth = self.memory.growth
        growth.update(reading.now, reading.used_bytes)
        limit = reading.limit_bytes
        if limit is not None and reading.used_bytes + growth.margin_bytes() >= limit:
            return False
        return (
            reading.used_bytes / reading.capacity_bytes < self._heap_level1
            and growth.smoothed / self._promised < self._rate_level1
        )

    def _sample(self, level: Level, usage: float, admit: float, rps: float, eps: float) -> Sample:
        utilization, rps_reported, eps_reported = (
            self._report(usage, level, rps, eps) if self.reports else (0.0, 0.0, 0.0)
        )
        return Sample(
            level=int(level),
            usage=usage,
            admit=admit,
            release=self._release_asked and self.releases,
            utilization=utilization,
            rps=rps_reported,
            eps=eps_reported,
        )

    def _report(self, usage: float, level: Level, rps: float, eps: float) -> tuple[float, ...]:
        """The ORCA report's utilization and rates, built by the project's own code.

        The protobuf is built only when what it carries changes by 0.1 % of usage (the
        precision of ``x-memory-usage``) or its rates change: building one per sample for
        1,000 backends would be most of the run time.
        """
        rps_r, eps_r = self.module.orca.reported_rates(rps, eps, usage)
        key = (int(usage * 1000), int(level), int(rps_r * 10000), int(eps_r * 10000))
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        report = orca_load_report(
            Pressure(usage_ratio=usage, level=level),
            rps=rps_r,
            eps=eps_r,
            application_utilization=self.module.orca.reports_memory,
        )
        values = (report.application_utilization, report.rps_fractional, report.eps)
        self._memo = (key, values)
        return values


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer a caller got: from which backend, at what level, and when (seconds);
    ``shed``: a level-3 backend shed the (non-core) call, so the answer carried a pushback
    (False: half-open admitted it)."""

    backend: int
    level: int
    usage: float
    at: float
    shed: bool = True


#: How the client's fail-fast tells backends apart. ``"instance"``: each backend names itself
#: (the instance id in its pressure message): a channel fails fast only while every answer in
#: the window carried level 3, from two backends or more (what the client does). ``"target"``:
#: backends that name no instance (peers older than the instance id), so every answer counts as
#: the channel's only backend: one level-3 answer opens the window, the next calm one closes it.
FAIL_FAST_KEYS = ("instance", "target")


class CallerPolicy:
    """One client process's fail-fast decisions over one service (a channel).

    Args:
        module: the caller's contract (``retry_pushback_ms`` as the callee's pushback,
            ``max_fail_fast_ms``, the sample interval for the table's ttl, as the guard sets
            them).
        key: see :data:`FAIL_FAST_KEYS`.
        target: the channel's target name.
    """

    def __init__(
        self, module: ModuleContract, *, key: str = "instance", target: str = "svc"
    ) -> None:
        if key not in FAIL_FAST_KEYS:
            raise ValueError(f"key must be one of {FAIL_FAST_KEYS}, not {key!r}")
        self.key = key
        self.target = target
        self.pushback_ms = module.retry_pushback_ms
        self._now = 0.0
        self._restarts: dict[int, int] = {}  # backend -> times restarted (a new instance id)
        self.table = CalleeTable(
            ttl=max(2.0, 4 * module.sample_interval),
            max_targets=1 << 20,
            default_pushback_ms=module.retry_pushback_ms,
            max_fail_fast_ms=module.max_fail_fast_ms,
            clock=self._clock,
        )

    def _clock(self) -> float:
        return self._now

    def record(self, answer: Answer) -> None:
        """Feed one answer (in time order), as the client interceptor does."""
        self._now = answer.at
        critical = answer.level == Level.CRITICAL
        pressure = Pressure(usage_ratio=answer.usage, level=Level(answer.level))
        instance = 0  # names none
        if self.key == "instance":
            instance = (self._restarts.get(answer.backend, 0) << 20) | (answer.backend + 1)
        shed = critical and answer.shed
        pushback = self.pushback_ms if shed else None
        self.table.record(
            self.target, pressure, pushback, instance_id=instance, admitted=critical and not shed
        )

    def forget(self, backend: int) -> None:
        """A backend went away (killed or restarted): when it is back it names a new instance
        (a new process); its old one's answers age out of the window as they do in a client."""
        self._restarts[backend] = self._restarts.get(backend, 0) + 1

    def allow(self, is_core: bool, now: float) -> bool:
        """Whether a call is sent: core calls always are; a non-core call unless the target
        fails fast now (one probe per window goes through)."""
        self._now = now
        return is_core or not (self.table.blocked_until and self.table.fails_fast(self.target))


def mib(value: float) -> float:
    """MiB to bytes."""
    return value * MIB


def finite(value: float, default: float = 0.0) -> float:
    """``value`` if finite, else ``default``."""
    return value if math.isfinite(value) else default
