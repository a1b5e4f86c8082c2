"""The fleet: SimPy processes over a vectorized state of backends and callers.

Discrete events (SimPy): the fleet's tick (one per sample interval: every backend's sampler
runs, flows move), each caller's weight update (every ``weightUpdatePeriod``, at its own phase),
each OOM kill's restart (after the CrashLoopBackOff delay and readiness), and each scenario's
changes (surge on and off, hot key, leak, rolling restart batches). Requests are **flows per
tick**, never events: at 1,000 backends and ~19 calls per second each, per-request events would
be 11 million per simulated minute. Where a discrete answer matters (which answers a caller's
fail-fast sees, in what order; whether a caller got a backend's load report this tick) it is
drawn from the flow (Poisson).

Backends' decisions go through :mod:`bench.fleetsim.decisions` only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import simpy

from memcontract.contract import LadderConfig, LevelCounts, ModuleContract, OrcaOptions

from .balancers import Array, Mask, WeightedRoundRobin, round_robin
from .decisions import Answer, BackendBrain, CallerPolicy
from .models import Model

# The real Recovery logs each backend's half-open decision: thousands of lines per run.
logging.getLogger("memcontract").setLevel(logging.ERROR)

#: Answers per caller per tick replayed through the caller's fail-fast table (in time order).
ANSWERS_PER_TICK = 4
#: The PS stretch factor 1 / (1 - rho) is capped at rho = 0.8: a steady queue near rho = 1 takes
#: longer than a tick to build; above rho = 1 the fluid backlog takes over (assumed).
RHO_CAP = 0.8
#: A shed call's round trip on loopback, seconds (assumed: about a millisecond of grpc plus
#: the interceptor; used only by the closed-loop load of the recovery calibration).
CLOSED_LOOP_SHED_S = 0.002


@dataclass(frozen=True, slots=True)
class Variant:
    """Which of memcontract's levers are on."""

    name: str
    shedding: bool = False
    release: bool = False
    wrr: bool = False
    fail_fast: bool = False
    fail_fast_key: str = "instance"
    ladder_input: str = "live"
    #: contract settings (memcontract's defaults): samples to confirm level 3, and samples
    #: below a level's threshold before stepping down one level
    confirm_level3: int = 3
    recover_after: int = 5
    #: the contract's ``orca`` settings: what the report's utilization and rates carry
    orca_utilization: str = "memory"
    orca_rates: str = "headroom"


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("none"),
        Variant("memcontract", shedding=True, release=True, wrr=True, fail_fast=True),
        Variant("shedding", shedding=True),
        Variant("fail-fast", fail_fast=True),
        Variant("wrr-orca", wrr=True),
        Variant("gc-release", release=True),
    )
}


@dataclass
class Disturbance:
    """What a scenario does to the fleet now (read by the tick)."""

    surge: float = 1.0
    hot: Mask | None = None  # backends a hot key's calls are pinned to
    hot_rate: float = 0.0  # non-core calls/s to each hot backend, besides the balanced flow
    ends_at: float | None = None  # when the disturbance is over (time back to level <= 1)
    started_at: float = 0.0


Scenario = Callable[["Fleet"], Generator[simpy.Event, Any, None]]


@dataclass
class Totals:
    """Counts over the run (calls, not rates)."""

    core_sent: float = 0.0
    core_ok: float = 0.0
    noncore_wanted: float = 0.0
    noncore_ok: float = 0.0
    noncore_shed: float = 0.0  # RESOURCE_EXHAUSTED at the server
    noncore_failed_fast: float = 0.0  # failed at the caller, never sent
    oom_kills: int = 0
    # latency: mean sojourn (s) -> calls, per class, as log-spaced histograms
    core_latency: Array = field(default_factory=lambda: np.zeros(LAT_BINS.size + 1))


LAT_BINS = np.geomspace(1e-3, 60.0, 160)


@dataclass
class Result:
    """One run's figures and time series."""

    scenario: str
    backends: int
    variant: str
    seconds: float
    oom_kills: int
    core_success: float
    noncore_shed: float
    noncore_ok: float
    core_p99_ms: float
    time_back_s: float | None  # None: the scenario has no end; inf: not within the run
    herd_max: int
    callers: int
    ends_at: float | None = None
    wall_s: float = 0.0
    series: dict[str, list[float]] = field(default_factory=dict)


class Fleet:
    """N backends of one service and C callers with a channel each."""

    def __init__(
        self,
        backends: int,
        variant: Variant,
        model: Model,
        *,
        seed: int = 1,
        contract: ModuleContract | None = None,
        callers: int | None = None,
        wrr_config: dict[str, float] | None = None,
    ) -> None:
        self.env = simpy.Environment()
        self.n = backends
        self.c = callers or min(backends, model.callers_max)
        self.model = model
        self.variant = variant
        self.rng = np.random.default_rng(seed)
        ladder = LadderConfig(
            confirm=LevelCounts(1, min(2, variant.confirm_level3), variant.confirm_level3),
            recover_after=variant.recover_after,
        )
        orca = OrcaOptions(
            application_utilization=variant.orca_utilization, rates=variant.orca_rates
        )
        self.module = contract or ModuleContract(name="fleet", ladder=ladder, orca=orca)
        self.dt = model.sample_interval
        core, noncore = model.calm_rates()
        # each caller's calm demand (calls/s): the fleet's calm load split evenly
        self.core_rate = np.full(self.c, core * backends / self.c)
        self.noncore_rate = np.full(self.c, noncore * backends / self.c)
        self.disturbance = Disturbance()
        n = backends
        self.up = np.ones(n, dtype=bool)
        # Backends differ a little (assumed spreads; a fleet of identical backends in lockstep
        # would make every lever look alike): CPU speed and base memory.
        spread = self.rng.standard_normal((2, n))
        self.cores = model.cores * np.clip(1 + model.cpu_spread * spread[0], 0.7, 1.3)
        base = model.base_live_ratio * np.clip(1 + model.base_spread * spread[1], 0.8, 1.2)
        self.base_live = base * model.capacity
        self.live = self.base_live.copy()
        self.retained = self.live.copy()
        # bytes of used - live that have been through a release already (Python: a later
        # release returns less of them than the first did)
        self.seasoned = np.zeros(n)
        self.leak = np.zeros(n)
        self.leak_rate = np.zeros(n)
        self.backlog = np.zeros(n)
        self.kills = np.zeros(n, dtype=int)
        self.level = np.zeros(n, dtype=int)
        self.admit = np.ones(n)
        self.report = np.full(n, np.nan)  # the WRR weight each backend's report gives
        self.pressure_override: dict[int, float] = {}  # backend -> used ratio (calibration)
        self.brains = [self._brain() for _ in range(n)]
        wrr = wrr_config or {}
        self.wrr = WeightedRoundRobin(
            self.c,
            n,
            blackout=wrr.get("blackout", model.wrr_blackout_s),
            expiration=wrr.get("expiration", model.wrr_expiration_s),
            penalty=model.wrr_error_penalty,
        )
        self.wrr_update = wrr.get("update", model.wrr_update_s)
        self.shares = np.tile(round_robin(self.up), (self.c, 1))
        self.pickers_stale = False
        #: Called with the time after every tick (the calibration's counters).
        self.observers: list[Callable[[float], None]] = []
        #: Non-core callers calling back to back (0: open loop, the flows above).
        self.closed_loop = 0
        self.closed_loop_callers = 0  # the largest closed_loop so far (its calls' sojourn)
        self.in_non = np.zeros(backends)  # non-core calls in flight (balanced)
        self.in_hot = np.zeros(backends)  # hot-key calls in flight
        self.policies = [
            CallerPolicy(self.module, key=variant.fail_fast_key) for _ in range(self.c)
        ]
        self.hot_policy = CallerPolicy(self.module, key=variant.fail_fast_key, target="hot")
        self.failed_fast = np.zeros(self.c)  # fraction of each caller's non-core failing fast
        self.hot_failed_fast = 0.0
        self.totals = Totals()
        self.moved = np.zeros(self.c, dtype=bool)  # callers that moved load since the last tick
        self.herd_max = 0
        self.time_back: float | None = None
        self.served_by: Array = np.zeros(n)  # calls each backend served this tick
        self.series: dict[str, list[float]] = {
            k: []
            for k in (
                "t",
                "level3",
                "down",
                "used_p99",
                "core_ok",
                "noncore_ok",
                "failed_fast",
                "moves",
                "oom",
            )
        }

    # --- processes ----------------------------------------------------------------------

    def run(self, seconds: float, scenario: Scenario | None = None) -> None:
        """Run the fleet for ``seconds`` of simulated time under ``scenario``."""
        self.env.process(self._ticks())
        if self.variant.wrr:
            for caller in range(self.c):
                self.env.process(self._weight_updates(caller))
        if scenario is not None:
            self.env.process(scenario(self))
        self.env.run(until=seconds)

    def _ticks(self) -> Generator[simpy.Event, Any, None]:
        while True:
            self._tick(self.env.now)
            yield self.env.timeout(self.dt)

    def _weight_updates(self, caller: int) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(float(self.rng.uniform(0, self.wrr_update)))
        while True:
            self._rebuild(caller)
            yield self.env.timeout(self.wrr_update)

    def _rebuild(self, caller: int) -> None:
        """A new picker for ``caller`` (a weight update, or a backend going or coming)."""
        if self.variant.wrr:
            shares = self.wrr.shares(caller, self.up, self.env.now)
        else:
            shares = round_robin(self.up)
        moved = 0.5 * float(np.abs(shares - self.shares[caller]).sum())
        if moved >= self.model.herd_threshold:
            self.moved[caller] = True
        self.shares[caller] = shares

    def _rebuild_all(self) -> None:
        """Every caller's picker anew (a backend went or came); batched once per tick."""
        self.pickers_stale = True

    def _rebuild_now(self) -> None:
        self.pickers_stale = False
        if self.variant.wrr:
            shares = self.wrr.shares_all(self.up, self.env.now)
        else:
            shares = np.tile(round_robin(self.up), (self.c, 1))
        moved = 0.5 * np.abs(shares - self.shares).sum(axis=1)
        self.moved |= moved >= self.model.herd_threshold
        self.shares = shares

    def _restart(self, backend: int, delay: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(delay + self.model.ready_delay_s)
        self.live[backend] = self.retained[backend] = self.base_live[backend]
        self.seasoned[backend] = 0.0
        self.leak[backend] = 0.0
        self.backlog[backend] = 0.0
        self.in_non[backend] = self.in_hot[backend] = 0.0
        self.level[backend], self.admit[backend] = 0, 1.0
        self.report[backend] = np.nan
        self.brains[backend] = self._brain()
        self.wrr.reset(backend)
        self.up[backend] = True
        self._rebuild_all()

    def take_down(self, backend: int, delay: float) -> None:
        """Stop a backend (killed or restarted) and bring it back after ``delay`` + ready."""
        self.up[backend] = False
        for policy in (*self.policies, self.hot_policy):
            policy.forget(backend)
        self._rebuild_all()
        self.env.process(self._restart(backend, delay))

    def _brain(self) -> BackendBrain:
        return BackendBrain(
            self.module,
            shedding=self.variant.shedding,
            release=self.variant.release,
            ladder_input=self.variant.ladder_input,
            reports=self.variant.wrr,
        )

    # --- one tick -----------------------------------------------------------------------

    def _tick(self, now: float) -> None:
        m, dt, up = self.model, self.dt, self.up
        surge = self.disturbance.surge
        if self.pickers_stale:
            self._rebuild_now()
        shares = self.shares
        core_c = self.core_rate * surge
        noncore_c = self.noncore_rate * surge
        sent_noncore_c = noncore_c * (1 - self.failed_fast)
        t = self.totals
        t.core_sent += core_c.sum() * dt
        t.noncore_wanted += noncore_c.sum() * dt
        t.noncore_failed_fast += (noncore_c * self.failed_fast).sum() * dt
        lam_core = core_c @ shares
        lam_non = sent_noncore_c @ shares
        hot = self._hot_rates()
        lam_hot = hot * (1 - self.hot_failed_fast)
        t.noncore_wanted += hot.sum() * dt
        t.noncore_failed_fast += (hot * self.hot_failed_fast).sum() * dt
        if not up.any():  # nothing to send to: every call sent fails (UNAVAILABLE)
            zeros = np.zeros(self.n)
            self._record(now, zeros, zeros, zeros, hot)
            for observe in self.observers:
                observe(now)
            return
        admit = np.where(up, self.admit, 0.0)
        shed = (lam_non + lam_hot) * (1 - admit)
        lam_non_in, lam_hot_in = lam_non * admit, lam_hot * admit
        t.noncore_shed += shed.sum() * dt
        work = lam_core * m.core_service_s + (lam_non_in + lam_hot_in) * m.noncore_service_s
        cores = self.cores
        self.backlog = np.clip(self.backlog + (work - cores) * dt, 0.0, cores * m.deadline_s)
        rho = np.minimum(work / cores, RHO_CAP)
        delay = self.backlog / cores
        sojourn_core = m.core_service_s / (1 - rho) + delay
        sojourn_non = m.noncore_service_s / (1 - rho) + delay
        late_core = np.exp(-m.deadline_s / sojourn_core)
        late_non = np.exp(-m.deadline_s / sojourn_non)
        in_core = lam_core * np.minimum(sojourn_core, m.deadline_s)
        stay = np.minimum(sojourn_non, m.deadline_s)
        target_non, target_hot = lam_non_in * stay, lam_hot_in * stay
        # Calls in flight follow their steady state (Little's law): rising at once (a call
        # allocates early, as the example's Report does), falling over one sojourn (a call
        # shed now does not stop those running).
        follow = -np.expm1(-dt / np.maximum(stay, 1e-3))
        if self.closed_loop_callers:
            self._closed_loop_step(admit)
        else:
            rising = target_non > self.in_non
            self.in_non += (target_non - self.in_non) * np.where(rising, 1, follow)
        self.in_hot += (target_hot - self.in_hot) * np.where(target_hot > self.in_hot, 1, follow)
        in_non, in_hot = self.in_non, self.in_hot
        if m.max_in_flight:  # a concurrency cap: calls beyond it wait, holding (almost) nothing
            running = np.minimum(1.0, m.max_in_flight / np.maximum(in_non + in_hot, 1e-9))
            in_non, in_hot = in_non * running, in_hot * running
        self.leak += self.leak_rate * dt
        before = self.live
        self.live = (
            self.base_live
            + in_core * m.core_call_bytes
            + (in_non + in_hot * m.hot_call_bytes_factor) * m.noncore_call_bytes
            + self.leak
        )
        used = self._used(before)
        killed = up & (used > m.hard_limit)
        served = up & ~killed
        t.core_ok += float((lam_core * (1 - late_core))[served].sum() * dt)
        t.noncore_ok += float(((lam_non_in + lam_hot_in) * (1 - late_non))[served].sum() * dt)
        # calls in flight at a kill fail; calls sent to a killed backend this tick too
        weights = np.where(served, lam_core * dt, 0.0)
        t.core_latency += np.bincount(
            np.searchsorted(LAT_BINS, sojourn_core), weights, LAT_BINS.size + 1
        )
        self.served_by = np.where(served, lam_core + lam_non + lam_hot, 0.0)
        self._sample(now, used, served, lam_core + lam_non + lam_hot, shed + lam_non_in * late_non)
        for backend in np.flatnonzero(killed):
            t.oom_kills += 1
            self.kills[backend] += 1
            delay_s = min(m.restart_delay_s * 2 ** (self.kills[backend] - 1), m.restart_delay_max_s)
            self.take_down(int(backend), delay_s)
        calls = (core_c[:, None] + sent_noncore_c[:, None]) * shares * dt
        if self.variant.wrr:
            got = self.rng.random(calls.shape) < -np.expm1(-calls)
            self.wrr.on_reports(got & self.up[None, :], self.report, now)
        if self.variant.fail_fast:
            self._fail_fast(now, calls, hot * dt)
        noncore_ok = (lam_non_in + lam_hot_in) * (1 - late_non) * served
        self._record(now, used, lam_core * (1 - late_core) * served, noncore_ok, hot)
        for observe in self.observers:
            observe(now)

    def _closed_loop_step(self, admit: Array) -> None:
        """The closed-loop load's calls in flight: up at once to what admission lets in; down
        linearly over one sojourn (calls started together under processor sharing end
        together, spread by their start)."""
        per_backend = self.closed_loop_callers / self.n
        target = self._closed_loop_in_flight(admit) if self.closed_loop else np.zeros(self.n)
        drain = per_backend * self.dt / self.closed_loop_sojourn()
        self.in_non = np.where(
            target > self.in_non, target, np.maximum(target, self.in_non - drain)
        )

    def _closed_loop_in_flight(self, admit: Array) -> Array:
        """``closed_loop`` callers calling back to back (``bench/recovery.py``'s load): a shed
        call returns at once and is repeated, an admitted one holds its memory for the
        processor-sharing sojourn ``callers * service / cores``; in flight is the share of
        the callers' time spent in admitted calls."""
        per_backend = self.closed_loop / self.n
        sojourn = self.closed_loop_sojourn()
        busy = admit * sojourn
        share = np.divide(busy, busy + (1 - admit) * CLOSED_LOOP_SHED_S, where=busy > 0,
                          out=np.zeros(self.n))  # fmt: skip
        return per_backend * share * self.up

    def closed_loop_sojourn(self) -> float:
        """An admitted call's sojourn under the closed-loop load: processor sharing among
        every caller's call (the callers are almost always in an admitted call)."""
        m = self.model
        return self.closed_loop_callers / self.n * m.noncore_service_s / float(self.cores.mean())

    def _hot_rates(self) -> Array:
        d = self.disturbance
        if d.hot is None or not d.hot_rate:
            return np.zeros(self.n)
        return np.where(d.hot & self.up, d.hot_rate, 0.0)

    def _used(self, before: Array) -> Array:
        """Update the retained memory from ``live`` (was ``before``); return ``used`` (bytes)."""
        m = self.model
        if m.runtime == "python":
            freed = np.maximum(before - self.live, 0.0)
            self.retained = np.maximum(self.retained - m.py_return_on_free * freed, self.live)
            self.seasoned = np.minimum(self.seasoned, self.retained - self.live)
        else:
            target = self.live * (1 + m.go_gogc / 100)
            soft = m.go_soft_limit_ratio * m.capacity
            if self.variant.release:  # the Go library's soft_memory_limit action
                target = np.maximum(self.live, np.minimum(target, soft))
            above = self.retained > (soft if self.variant.release else np.inf)
            tau = np.where(above, m.go_return_above_s, m.go_return_below_s)
            decayed = target + (self.retained - target) * np.exp(-self.dt / tau)
            self.retained = np.where(target > self.retained, target, decayed)
        used = self.retained.copy()
        for backend, ratio in self.pressure_override.items():
            used[backend] = ratio * m.capacity
        return used

    def _sample(self, now: float, used: Array, served: Mask, rps: Array, eps: Array) -> None:
        """Every serving backend's sampler: level, admission, report, release."""
        capacity, limit = self.model.capacity, self.model.hard_limit
        used_l, live_l, rps_l, eps_l = used.tolist(), self.live.tolist(), rps.tolist(), eps.tolist()
        for b in np.flatnonzero(served).tolist():
            s = self.brains[b].sample(
                used_l[b], live_l[b], capacity, limit, now, rps_l[b], eps_l[b]
            )
            self.level[b] = s.level
            self.admit[b] = s.admit
            self.report[b] = (
                s.rps / (s.utilization + s.eps / s.rps * self.model.wrr_error_penalty)
                if s.utilization > 0 and s.rps > 0
                else np.nan
            )
            if s.release:
                self._release(b)

    def _release(self, b: int) -> None:
        m = self.model
        if m.runtime == "python":
            excess = self.retained[b] - self.live[b]
            seasoned = min(self.seasoned[b], excess)
            kept = (excess - seasoned) * m.py_keep_first + seasoned * m.py_keep_later
            self.retained[b] = self.live[b] + kept
            self.seasoned[b] = kept
        else:  # debug.FreeOSMemory: a collection, every free page back
            self.retained[b] = self.live[b]

    def _fail_fast(self, now: float, calls: Array, hot_calls: Array) -> None:
        """Replay a few of each caller's answers, in time order, through its policy."""
        critical = self.up & (self.level >= 3)
        old = self.failed_fast.copy()
        for caller, policy in enumerate(self.policies):
            if not critical.any() and not policy.table.blocked_until:
                self.failed_fast[caller] = 0.0  # calm: no answer can open a window
                continue
            self.failed_fast[caller] = self._replay(policy, calls[caller], now)
        self.moved |= np.abs(self.failed_fast - old) >= self.model.herd_threshold
        if hot_calls.any() and (critical.any() or self.hot_policy.table.blocked_until):
            self.hot_failed_fast = self._replay(self.hot_policy, hot_calls, now)
        else:
            self.hot_failed_fast = 0.0

    def _replay(self, policy: CallerPolicy, calls: Array, now: float) -> float:
        total = float(calls.sum())
        if total <= 0:
            return 0.0
        k = ANSWERS_PER_TICK
        picks = self.rng.choice(self.n, size=k, p=calls / total)
        blocked = 0
        for i, backend in enumerate(picks):
            b = int(backend)
            if self.up[b]:
                at = now + (i + 0.5) * self.dt / k
                shed = bool(self.rng.random() >= self.admit[b])  # half-open admits its fraction
                policy.record(Answer(b, int(self.level[b]), 0.0, at, shed))
            blocked += not policy.allow(False, now + (i + 1) * self.dt / k)
        return blocked / k

    def _record(
        self, now: float, used: Array, core_ok: Array, noncore_ok: Array, hot: Array
    ) -> None:
        d = self.disturbance
        level3 = float((self.up & (self.level >= 3)).mean())
        down = float((~self.up).mean())
        settled = bool(self.up.all()) and int(self.level[self.up].max(initial=0)) <= 1
        if d.ends_at is not None and now >= d.ends_at and self.time_back is None and settled:
            self.time_back = now - d.ends_at
        moves = int(self.moved.sum())
        self.moved[:] = False
        self.herd_max = max(self.herd_max, moves)
        s = self.series
        s["t"].append(now)
        s["level3"].append(level3)
        s["down"].append(down)
        s["used_p99"].append(
            float(np.quantile(used[self.up] / self.model.capacity, 0.99)) if self.up.any() else 0
        )
        wanted = float((self.core_rate * self.disturbance.surge).sum())
        s["core_ok"].append(float(core_ok.sum()) / wanted if wanted else 1.0)
        wanted_non = float((self.noncore_rate * self.disturbance.surge).sum() + hot.sum())
        s["noncore_ok"].append(float(noncore_ok.sum()) / wanted_non if wanted_non else 1.0)
        s["failed_fast"].append(float(self.failed_fast.mean()))
        s["moves"].append(moves)
        s["oom"].append(self.totals.oom_kills)

    # --- results ------------------------------------------------------------------------

    def result(self, scenario: str, seconds: float) -> Result:
        t = self.totals
        d = self.disturbance
        if d.ends_at is None:
            back: float | None = None
        else:
            back = self.time_back if self.time_back is not None else math.inf
        return Result(
            scenario=scenario,
            backends=self.n,
            variant=self.variant.name,
            seconds=seconds,
            oom_kills=t.oom_kills,
            core_success=t.core_ok / t.core_sent if t.core_sent else 1.0,
            noncore_shed=(t.noncore_shed + t.noncore_failed_fast) / t.noncore_wanted,
            noncore_ok=t.noncore_ok / t.noncore_wanted if t.noncore_wanted else 1.0,
            core_p99_ms=1000 * p99_of_exponentials(t.core_latency, self.model.deadline_s),
            time_back_s=back,
            herd_max=self.herd_max,
            callers=self.c,
            ends_at=d.ends_at,
            series=self.series,
        )


def p99_of_exponentials(histogram: Array, cap: float) -> float:
    """The 99th percentile of a mixture of exponential latencies (means in ``LAT_BINS``,
    weights in ``histogram``), capped at ``cap`` (a call past its deadline ends there)."""
    total = histogram.sum()
    if total <= 0:
        return 0.0
    means = np.append(LAT_BINS, LAT_BINS[-1])
    lo, hi = 0.0, cap
    if (histogram * np.exp(-hi / means)).sum() > 0.01 * total:
        return cap
    for _ in range(50):
        mid = (lo + hi) / 2
        if (histogram * np.exp(-mid / means)).sum() > 0.01 * total:
            lo = mid
        else:
            hi = mid
    return hi


def with_model(model: Model, **changes: float | str) -> Model:
    """``model`` with some numbers changed."""
    return replace(model, **changes)  # type: ignore[arg-type]
