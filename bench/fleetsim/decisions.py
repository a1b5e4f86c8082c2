"""The one place the simulation calls memcontract's decision code (an adapter).

Everything the simulated fleet decides goes through two small interfaces of our own:

* :class:`BackendBrain` — one per simulated backend process: its sampler's decisions. It runs
  the real :class:`memcontract.ladder.Ladder`, the guard's :class:`memcontract.guard.RateEstimator`,
  the real :class:`memcontract.recovery.Recovery` (level 3's way out; its ``release``
  callback only records that a release was asked for: the simulation's memory model applies
  it), and builds the report a backend would send with
  :meth:`memcontract.contract.OrcaOptions.reported_rates` and
  :func:`memcontract.wire.orca_load_report` (the ``application_utilization``, ``rps_fractional``
  and ``eps`` a weighted round robin balancer reads).
* :class:`CallerPolicy` — one per simulated client process (one channel to the service): the
  client side's fail-fast, the real :class:`memcontract.peers.PeerTable` fed as the client
  interceptor feeds it (``record(target, pressure, pushback)``, ``blocked(target)``).

Two branches are changing exactly this code (issue 22: the ladder reads live memory as well as
used; issue 23: the client tracks pressure per backend instance and fails fast only when every
answer is level 3). When they land, only this module changes; the simulation already models used
*and* live memory and passes both here (today's ladder sees ``used`` only: see
:data:`LADDER_INPUTS`).

The decision objects are pure: no clock of their own, no I/O, no action taken (``release``
and ``recycle`` are callbacks into the simulation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from memcontract.contract import ModuleContract
from memcontract.guard import RateEstimator
from memcontract.ladder import ALLOC_RATE, HEAP, Ladder
from memcontract.peers import PeerTable
from memcontract.pressure import MIB, Level, Pressure
from memcontract.recovery import Phase, Recovery
from memcontract.wire import orca_load_report

#: What a backend measures, for its ladder and the usage it reports. ``"used"``: today's guard
#: (RSS or the cgroup working set over capacity). ``"live"``: a what-if of issue 22 (the bytes
#: the program still references over capacity), fed to today's ladder and report unchanged.
LADDER_INPUTS = ("used", "live")


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
        ladder_input: what the backend measures, for its ladder and its reports alike:
            ``"used"`` (today) or ``"live"`` (issue 22's what-if).
        reports: whether the ORCA report is built (a balancer reads it).
    """

    def __init__(
        self,
        module: ModuleContract,
        *,
        shedding: bool = True,
        release: bool = True,
        ladder_input: str = "used",
        reports: bool = True,
    ) -> None:
        if ladder_input not in LADDER_INPUTS:
            raise ValueError(f"ladder_input must be one of {LADDER_INPUTS}, not {ladder_input!r}")
        self.module = module
        self.shedding = shedding
        self.releases = release
        self.ladder_input = ladder_input
        self.reports = reports
        self._ladder = Ladder(module.ladder)
        self._rate = RateEstimator()
        self._release_asked = False
        self._recovery = Recovery(module, release=self._ask_release)
        self._promised = module.alloc_rate_bytes_per_sec
        self._last_level = Level.NORMAL
        self._memo: tuple[object, tuple[float, float, float]] | None = None
        # Calm samples skip the ladder and Recovery, where feeding them changes nothing: the
        # ladder enters a level only after samples at or above its threshold, so at level 0,
        # after a sample below every level-1 threshold (every streak 0), another such sample
        # leaves it as it is; Recovery below level 3 only stays closed. Exact for today's
        # ladder (a test compares both paths); revisit when the ladder changes (issue 22).
        self._calm = True
        self.fast_calm = True
        self._heap_level1 = module.ladder.heap.level1
        self._rate_level1 = module.ladder.alloc_rate.level1

    def _ask_release(self) -> None:
        self._release_asked = True

    def sample(
        self, used: float, live: float, capacity: float, now: float, rps: float, eps: float
    ) -> Sample:
        """Feed one reading (bytes; ``now`` in seconds; calls and errors per second)."""
        measured = used if self.ladder_input == "used" else live
        rate = self._rate.update(now, int(measured))
        usage = measured / capacity
        rate_ratio = rate / self._promised
        calm = usage < self._heap_level1 and rate_ratio < self._rate_level1
        if calm and self._calm and self.fast_calm:
            return self._sample(Level.NORMAL, usage, 1.0, rps, eps)
        level = self._ladder.step({HEAP: usage, ALLOC_RATE: rate_ratio})
        self._calm = calm and level == Level.NORMAL
        self._release_asked = False
        fraction = 0.0
        if level == Level.CRITICAL or self._recovery.phase is not Phase.CLOSED:
            # below level 3 a closed Recovery only stays closed: fed when it matters
            pressure = Pressure(
                usage_ratio=usage,
                used_bytes=int(measured),
                capacity_bytes=int(capacity),
                alloc_rate_bytes_per_sec=rate,
                alloc_rate_ratio=rate_ratio,
                level=level,
            )
            fraction = self._recovery.update(pressure)
        if level == Level.CRITICAL and self._last_level != Level.CRITICAL:
            self._release_asked = True  # the guard's collect_garbage action, on entering level 3
        self._last_level = level
        admit = fraction if level == Level.CRITICAL and self.shedding else 1.0
        return self._sample(level, usage, admit, rps, eps)

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
    """One answer a caller got: from which backend, at what level, and when (seconds)."""

    backend: int
    level: int
    usage: float
    at: float


#: How the client keys its fail-fast window. ``"target"``: today's client interceptor (one
#: PeerTable entry per channel target, i.e. per service behind a balancer: the last answer
#: decides). ``"instance"``: one entry per backend, blocked only while *every* backend that
#: answered is at level 3 (what issue 23 does; approximated here with today's table).
FAIL_FAST_KEYS = ("target", "instance")


class CallerPolicy:
    """One client process's fail-fast decisions over one service (a channel).

    Args:
        module: the caller's contract (``retry_pushback_ms`` as the callee's pushback,
            ``max_fail_fast_ms``).
        key: see :data:`FAIL_FAST_KEYS`.
        target: the channel's target name.
    """

    def __init__(self, module: ModuleContract, *, key: str = "target", target: str = "svc") -> None:
        if key not in FAIL_FAST_KEYS:
            raise ValueError(f"key must be one of {FAIL_FAST_KEYS}, not {key!r}")
        self.key = key
        self.target = target
        self.pushback_ms = module.retry_pushback_ms
        self._now = 0.0
        self.table = PeerTable(
            ttl=2.0 * module.sample_interval * 4,
            max_targets=1 << 20,
            max_fail_fast_ms=module.max_fail_fast_ms,
            clock=self._clock,
        )
        self._critical: set[int] = set()  # "instance": backends whose last answer was level 3
        self._answered: set[int] = set()

    def _clock(self) -> float:
        return self._now

    def record(self, answer: Answer) -> None:
        """Feed one answer (in time order)."""
        self._now = answer.at
        pressure = Pressure(usage_ratio=answer.usage, level=Level(answer.level))
        if self.key == "target":
            pushback = self.pushback_ms if answer.level == Level.CRITICAL else None
            self.table.record(self.target, pressure, pushback)
            return
        self._answered.add(answer.backend)
        if answer.level == Level.CRITICAL:
            self._critical.add(answer.backend)
        else:
            self._critical.discard(answer.backend)
        everyone = self._critical == self._answered
        level = Level.CRITICAL if everyone else Level(min(answer.level, Level.DEGRADED))
        self.table.record(self.target, Pressure(answer.usage, level=level), self.pushback_ms)

    def forget(self, backend: int) -> None:
        """A backend went away (killed or restarted): its answers no longer count."""
        self._answered.discard(backend)
        self._critical.discard(backend)

    def allow(self, is_core: bool, now: float) -> bool:
        """Whether a call is sent (core calls always are; a non-core call fails fast while the
        target's window is open)."""
        self._now = now
        return is_core or not (self.table.blocked_until and self.table.blocked(self.target))


def mib(value: float) -> float:
    """MiB to bytes."""
    return value * MIB


def finite(value: float, default: float = 0.0) -> float:
    """``value`` if finite, else ``default``."""
    return value if math.isfinite(value) else default
