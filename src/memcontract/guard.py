"""The guard: samples a probe, runs the ladder, fires actions, publishes a snapshot.

Everything a call needs is in :attr:`Guard.snapshot`, an immutable object replaced by the sampler
(one attribute read per call, no lock, no system call).

>>> from memcontract.testing import FakeProbe, FakeClock
>>> from memcontract import Contract
>>> probe, clock = FakeProbe(), FakeClock()
>>> guard = Guard(Contract.from_yaml("modules: [{name: api, max_heap_mb: 100}]"),
...               probe=probe, clock=clock)
>>> for _ in range(3):
...     _ = probe.set(usage=0.97); _ = guard.sample_once(); clock.advance(0.5)
>>> guard.level
<Level.CRITICAL: 3>
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Protocol

from opentelemetry import metrics, trace

from . import wire
from .actions import (
    Action,
    ActionRunner,
    CollectGarbage,
    PauseTelemetry,
    QuietLoggers,
    SampleAllocations,
    Shrinkable,
    ShrinkCaches,
    TightenGC,
)
from .allocations import AllocationReport
from .callees import CalleeTable
from .calls import CallCounter
from .contract import ON_STUCK_RECYCLE, Contract, ModuleContract
from .errors import GuardStateError
from .ladder import MemoryLadder, MemorySample
from .pressure import Level, Pressure
from .probe import LiveWatch, Probe, Reading
from .publish import Publisher
from .publish import Snapshot as Snapshot  # re-exported: callers import it from here
from .recovery import Recovery, release_memory
from .telemetry import HOOK_ERRORS, PROBE_FAILURES, RECYCLES, Telemetry

log = logging.getLogger("memcontract.guard")

TransitionCallback = Callable[[Level, Level, Pressure], object]
RecycleCallback = Callable[[Pressure], object]


class Clock(Protocol):
    """Where the guard gets time (``memcontract.testing.FakeClock`` in tests)."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds."""
        ...


class _SystemClock:
    @staticmethod
    def time() -> float:
        return time.time()

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


def _reading_problem(reading: Reading) -> str | None:
    """What makes a reading unusable (a bad reading holds the level, like a failed read)."""
    used, capacity = reading.used_bytes, reading.capacity_bytes
    if type(used) is not int or used < 0:
        return f"used_bytes must be a non-negative integer, got {used!r}"
    if type(capacity) is not int or capacity <= 0:
        return f"capacity_bytes must be a positive integer, got {capacity!r}"
    for name in ("live_bytes", "limit_bytes"):
        value = getattr(reading, name)
        if value is not None and (type(value) is not int or value < 0):
            return f"{name} must be a non-negative integer or None, got {value!r}"
    for name in ("alloc_rate_bytes_per_sec", "psi_some_avg10", "gc_pause_p99_ms"):
        value = getattr(reading, name)
        if value is not None and not (isinstance(value, int | float) and 0 <= value < math.inf):
            return f"{name} must be a finite non-negative number or None, got {value!r}"
    return None


_LIVE_GUARDS: weakref.WeakSet[Guard] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for guard in list(_LIVE_GUARDS):
        try:
            guard._after_fork_in_child()
        except Exception:  # a child must never fail to start because of memcontract
            log.exception("memcontract: resetting a guard after fork failed")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Guard:
    """Keeps a process inside its memory contract (docs/design.md §4).

    Args:
        contract: the loaded contract; its ``module`` is the one in force.
        probe: where readings come from (default: :class:`memcontract.probe.SystemProbe`).
        clock: where time comes from (default: the system clocks).
        actions: replaces the default actions (see :meth:`default_actions`).
        disable: names of default actions to leave out, e.g. ``{"sample_allocations"}``;
            ``"recover"`` leaves out level 3's way out (:mod:`memcontract.recovery`): level 3
            then sheds until usage falls below its threshold; ``"live_exit"`` leaves level 3
            on used memory only, never on live memory (:class:`memcontract.ladder.MemoryLadder`).
        meter_provider, tracer_provider: OpenTelemetry providers (default: the global ones).
    """

    def __init__(
        self,
        contract: Contract,
        *,
        probe: Probe | None = None,
        clock: Clock | None = None,
        actions: Iterable[Action] | None = None,
        disable: Iterable[str] = (),
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.contract = contract
        self.module: ModuleContract = contract.module
        self._owns_probe = probe is None
        self._probe = probe
        self._clock: Clock = clock or _SystemClock()
        self._memory = MemoryLadder(
            self.module.ladder,
            interval=self.module.sample_interval,
            promised_rate_bytes_per_sec=self.module.alloc_rate_bytes_per_sec,
            live_exit="live_exit" not in set(disable),
            recycles=self.module.on_stuck == ON_STUCK_RECYCLE,
        )
        self._at_hard_limit = False
        self._live_ratio: float | None = None  # the last step's live usage (MemoryStep)
        self._callbacks: list[TransitionCallback] = []
        self._recycle_callbacks: list[RecycleCallback] = []
        self._sample_lock = threading.Lock()
        self._failed_once: set[str] = set()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        #: Counted by the server interceptors per call; turned into rates per sample.
        self.calls = CallCounter()
        # The thread taking a sample now (its callbacks may call stop(): see there).
        self._sampling_thread: int | None = None
        self._stop_after_sample = False
        self._publisher = Publisher(self.module, self.calls, clock=self._clock.monotonic)
        budget = self.module.max_heap_bytes
        self.snapshot = self._publish(
            Pressure(
                capacity_bytes=budget,
                contract_version=contract.version,
                module=self.module.name,
                sampled_at=self._clock.time(),
            )
        )
        self.telemetry = Telemetry(
            lambda: self.snapshot.pressure,
            budget_bytes=budget,
            monotonic=self._clock.monotonic,
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
        )
        self._caches = ShrinkCaches()
        chosen = self.default_actions() if actions is None else list(actions)
        self._actions = ActionRunner(
            (a for a in chosen if a.name not in set(disable)),
            self.telemetry,
            dry_run=self.module.dry_run,
        )
        self._recovery = (
            None
            if "recover" in set(disable)
            else Recovery(
                self.module,
                release=functools.partial(release_memory, self.telemetry),
                recycle=self._recycle,
                dry_run=self.module.dry_run,
            )
        )
        _LIVE_GUARDS.add(self)

    def default_actions(self) -> list[Action]:
        """The actions of docs/design.md §4's table, configured from the contract."""
        return [
            TightenGC(self.module.gc_trigger_ratio),
            QuietLoggers(self.module.noncritical_loggers),
            PauseTelemetry(self.telemetry),
            SampleAllocations(),
            CollectGarbage(self.telemetry),
            self._caches,
        ]

    # -- reading the state: one attribute read, safe from any thread ---------------------------

    @property
    def pressure(self) -> Pressure:
        """The last sample (cached; no I/O)."""
        return self.snapshot.pressure

    @property
    def level(self) -> Level:
        """The level in force (cached; no I/O)."""
        return self.snapshot.pressure.level

    @property
    def actions(self) -> tuple[Action, ...]:
        """The actions in force, in the order they are applied."""
        return self._actions.actions

    @property
    def dry_run(self) -> bool:
        """Whether the contract says evaluate and report only."""
        return self.module.dry_run

    # -- extension points -------------------------------------------------------------------------

    @functools.cached_property
    def peers(self) -> CalleeTable:
        """The pressure each callee last reported to this process's client interceptors.

        Entries hold for four sample intervals (at least 2 s); a level-3 report without a
        pushback blocks its target for this contract's ``retry_pushback_ms``, and no report
        blocks it for longer than ``max_fail_fast_ms``.
        """
        return CalleeTable(
            ttl=max(2.0, 4 * self.module.sample_interval),
            default_pushback_ms=self.module.retry_pushback_ms,
            max_fail_fast_ms=self.module.max_fail_fast_ms,
            clock=self._clock.monotonic,
        )

    def on_transition(self, callback: TransitionCallback) -> TransitionCallback:
        """Call ``callback(old, new, pressure)`` on every level change (usable as a decorator).

        Callbacks run on the sampler; their exceptions are logged and counted, never raised.
        """
        self._callbacks.append(callback)
        return callback

    def on_recycle(self, callback: RecycleCallback) -> RecycleCallback:
        """With ``on_stuck: recycle``: call ``callback(pressure)`` once when level 3 is stuck on
        retained memory (usage not falling, nothing growing, a release did not help).

        The callback should turn health to NOT_SERVING, drain and exit with
        :data:`memcontract.recovery.RECYCLE_EXIT_STATUS` so a supervisor restarts the process
        (see ``examples/python/server.py``). It runs on the sampler; exceptions are logged and
        counted. With nothing registered, level 3 sheds half-open instead.
        """
        self._recycle_callbacks.append(callback)
        return callback

    def allocation_report(self) -> AllocationReport | None:
        """The latest allocation report (taken on entering level 2 or 3), or None."""
        for action in self.actions:
            if isinstance(action, SampleAllocations) and action.report is not None:
                return action.report
        return None

    def register_cache(self, cache: Shrinkable) -> None:
        """Shrink ``cache`` at level 3 and restore it on recovery (held weakly; any thread)."""
        self._caches.add(cache)

    # -- sampling ---------------------------------------------------------------------------------

    def sample_once(self) -> Pressure:
        """Take one sample now, update the level, fire actions; return the new pressure.

        Never raises. A failed read, or a reading that makes no sense (negative bytes, a rate
        that is no number), holds the level and returns the previous pressure; an exception in
        any later step is counted (``memcontract.hook.errors``, hook ``sample.<step>``) and
        logged once, and the sample goes on without that step.
        """
        with self._sample_lock:
            self._sampling_thread = threading.get_ident()
            try:
                pressure = self._sample_locked()
            finally:
                self._sampling_thread = None
        if self._stop_after_sample:  # a callback of this sample asked to stop
            self._stop_after_sample = False
            self.stop()
        return pressure

    def _sample_locked(self) -> Pressure:
        reading = self._read()
        if reading is None:
            return self.snapshot.pressure
        before = self.snapshot.pressure
        old = before.level
        try:
            pressure = self._evaluate(reading)
            snapshot = self._publish(pressure, self._admit(pressure))
        except Exception as err:
            self._step_failed("evaluate", err)
            return self.snapshot.pressure
        self.snapshot = snapshot
        self._guarded("actions", self._actions.update, pressure)
        if pressure.level != old:
            self._guarded("transition", self._transition, old, pressure)
        plateau = pressure.plateau_bytes is not None
        if isinstance(self._probe, LiveWatch) and (
            pressure.level != old or plateau != (before.plateau_bytes is not None)
        ):
            # While a plateau is recorded peers are told the live usage: keep it fresh then too
            self._guarded("probe", self._probe.watch_live, 2 if plateau else pressure.level)
        return pressure

    def _guarded(self, step: str, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception as err:
            self._step_failed(step, err)

    def _step_failed(self, step: str, err: BaseException) -> None:
        self.telemetry.add(HOOK_ERRORS, 1, {"hook": f"sample.{step}"})
        if f"sample.{step}" not in self._failed_once:
            self._failed_once.add(f"sample.{step}")
            log.error(
                "memcontract: the %s step of a sample failed; counted, further failures not logged",
                step,
                exc_info=err,
            )

    def _read(self) -> Reading | None:
        if self._probe is None:
            from .probe import SystemProbe

            self._probe = SystemProbe()
        try:
            reading = self._probe.read(self.module.max_heap_bytes)
            problem = _reading_problem(reading)
            failed_sources = tuple(reading.failed_sources)
        except Exception as err:
            self._count_failure("read", err)
            return None
        if problem is not None:
            self._count_failure("reading", problem)
            return None
        for source in failed_sources:
            self._count_failure(str(source), None)
        return reading

    def _count_failure(self, source: str, err: BaseException | str | None) -> None:
        self.telemetry.add(PROBE_FAILURES, 1, {"source": source})
        if source not in self._failed_once:
            self._failed_once.add(source)
            log.warning("memcontract: memory source %r failed (%s); holding the level", source, err)

    def _evaluate(self, reading: Reading) -> Pressure:
        capacity = max(1, reading.capacity_bytes)
        live = self._plausible_live(reading)
        step = self._memory.step(
            MemorySample(
                now=self._clock.monotonic(),
                used_bytes=reading.used_bytes,
                capacity_bytes=capacity,
                live_bytes=live,
                limit_bytes=reading.limit_bytes,
                alloc_rate_bytes_per_sec=reading.alloc_rate_bytes_per_sec,
            )
        )
        self._at_hard_limit = step.at_hard_limit
        self._live_ratio = step.live_ratio
        return Pressure(
            usage_ratio=step.usage_ratio,
            used_bytes=reading.used_bytes,
            capacity_bytes=capacity,
            alloc_rate_bytes_per_sec=step.alloc_rate_bytes_per_sec,
            alloc_rate_ratio=step.alloc_rate_ratio,
            level=step.level,
            contract_version=self.contract.version,
            module=self.module.name,
            sampled_at=self._clock.time(),
            psi_some_avg10=reading.psi_some_avg10,
            gc_pause_p99_ms=reading.gc_pause_p99_ms,
            live_bytes=live,
            live_source=reading.live_source,
            plateau_bytes=step.plateau_bytes,
            limit_bytes=reading.limit_bytes,
        )

    def _plausible_live(self, reading: Reading) -> int | None:
        """Live bytes, or None where unknown or implausible (more live than used: a source
        that counts what is not resident), counted as a failure of source "live"."""
        live = reading.live_bytes
        if live is not None and live > reading.used_bytes:
            self._count_failure("live", f"live {live} > used {reading.used_bytes} bytes")
            return None
        return live

    def _admit(self, pressure: Pressure) -> float:
        """The fraction of non-core calls admitted at level 3 (0 when anything goes wrong)."""
        if self._recovery is None:
            return 0.0
        try:
            return self._recovery.update(
                pressure, at_hard_limit=self._at_hard_limit, live_ratio=self._live_ratio
            )
        except Exception:
            self.telemetry.add(HOOK_ERRORS, 1, {"hook": "recover"})
            log.exception("memcontract: level 3 recovery failed")
            return 0.0

    def _recycle(self, pressure: Pressure) -> bool:
        if not self._recycle_callbacks:
            log.warning(
                "memcontract: on_stuck is recycle but nothing is registered with "
                "guard.on_recycle(): shedding half-open instead"
            )
            return False
        log.warning(
            "memcontract: %s stuck at level 3 (usage %s, memory retained): recycling",
            self.module.name,
            wire.format_usage(pressure.usage_ratio),
        )
        self.telemetry.add(RECYCLES, 1)
        self._call_hooks("on_recycle", self._recycle_callbacks, pressure)
        return True

    def _call_hooks(self, hook: str, callbacks: list[Callable[..., object]], *args: object) -> None:
        for callback in list(callbacks):
            try:
                callback(*args)
            except Exception:
                self.telemetry.add(HOOK_ERRORS, 1, {"hook": hook})
                log.exception("memcontract: %s callback %r failed", hook, callback)

    def _publish(self, pressure: Pressure, admit: float = 0.0) -> Snapshot:
        return self._publisher.publish(pressure, admit)

    def _transition(self, old: Level, pressure: Pressure) -> None:
        new = pressure.level
        if new > old:
            log.warning(
                "memcontract: %s entered level %d (%s): usage %s of %d MiB, growth %.1f MiB/s",
                self.module.name,
                new,
                new.name,
                wire.format_usage(pressure.usage_ratio),
                pressure.capacity_mib,
                pressure.alloc_rate_bytes_per_sec / 1048576,
            )
        else:
            log.info(
                "memcontract: %s stepped down to level %d (%s)", self.module.name, new, new.name
            )
        try:
            self.telemetry.transition(old, new, pressure)
        except Exception:
            log.exception("memcontract: telemetry transition failed")
        self._call_hooks("on_transition", self._callbacks, old, new, pressure)

    # -- running: a daemon thread, or an asyncio task -----------------------------------------

    def start(self) -> Guard:
        """Sample every ``sample_interval_ms`` on a daemon thread (first sample at once)."""
        if self.running:
            raise GuardStateError("guard is already running")
        self._stop.clear()
        self.sample_once()
        if self._stop.is_set():  # the first sample's callback stopped the guard
            return self
        self._thread = threading.Thread(
            target=self._run_thread, name="memcontract-guard", daemon=True
        )
        self._thread.start()
        return self

    def _run_thread(self, sample_first: bool = False) -> None:
        if sample_first:
            self._sample_in_loop()
        while not self._stop.wait(self.module.sample_interval):
            self._sample_in_loop()

    def _after_fork_in_child(self) -> None:
        """In a forked child: locks the parent's threads may have held are made anew, and a
        sampler thread that ran in the parent runs again here, sampling the child at once.
        (An asyncio sampler is a task of its loop: it runs wherever that loop runs.)"""
        stopped = self._stop.is_set()
        self._sample_lock = threading.Lock()
        self._stop = threading.Event()
        if stopped:
            self._stop.set()
        self._sampling_thread = None
        self._stop_after_sample = False
        self.telemetry.reset_after_fork()
        self._caches.reset_after_fork()
        # The child is another instance: its trailers name it from its first call on.
        self.snapshot = self._publish(self.snapshot.pressure, self.snapshot.admit)
        if "peers" in self.__dict__:  # a cached_property, made on first use
            self.peers.reset_after_fork()
        if self._thread is not None and not stopped:
            self._thread = threading.Thread(
                target=self._run_thread, args=(True,), name="memcontract-guard", daemon=True
            )
            self._thread.start()

    def _sample_in_loop(self) -> None:
        # sample_once() never raises; this is the last line that keeps the sampler alive.
        try:
            self.sample_once()
        except Exception as err:
            with contextlib.suppress(Exception):
                self._step_failed("loop", err)

    async def start_async(self) -> Guard:
        """Sample every ``sample_interval_ms`` in an asyncio task on the running loop."""
        if self.running:
            raise GuardStateError("guard is already running")
        self._stop.clear()
        self.sample_once()
        if self._stop.is_set():  # the first sample's callback stopped the guard
            return self
        self._task = asyncio.get_running_loop().create_task(
            self._run_task(), name="memcontract-guard"
        )
        return self

    async def _run_task(self) -> None:
        while True:
            await asyncio.sleep(self.module.sample_interval)
            self._sample_in_loop()

    @property
    def running(self) -> bool:
        """Whether a sampler thread or task is running."""
        return (self._thread is not None and self._thread.is_alive()) or (
            self._task is not None and not self._task.done()
        )

    def stop(self) -> None:
        """Stop sampling and reverse every engaged action. Safe to call twice, and from an
        ``on_transition`` callback (then the sample in progress ends first)."""
        self._stop.set()
        if self._sampling_thread == threading.get_ident():
            # Called from this sample's own callback: the sample holds the lock the shutdown
            # takes, so it finishes first and stops on its way out (sample_once).
            self._stop_after_sample = True
            return
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._shutdown()

    async def stop_async(self) -> None:
        """Stop the asyncio sampler, wait for it, and reverse every engaged action."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.stop()

    def _shutdown(self) -> None:
        with self._sample_lock:
            self._actions.release_all()
            if self._owns_probe and self._probe is not None:
                self._probe.close()
                self._probe = None

    def __enter__(self) -> Guard:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Guard:
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_async()
