"""Level 3 must end (docs/design.md §4): hand memory back, then shed half-open or recycle.

A Python process rarely returns memory to the OS after a spike: freed objects leave pymalloc
arenas and glibc free lists that still count in RSS. Measured on the example service (96 MiB
budget, 24 concurrent ``Report`` calls): 49 MiB at start, ~120 MiB after the load, where it
stays; ``gc.collect()`` then hands back 17 to 31 MiB (25 ms of CPU) and glibc's
``malloc_trim(0)`` another 2 MiB (under 1 ms). A ladder on RSS alone would shed forever, so
:class:`Recovery` watches level 3 sample by sample:

1. **Falling**: usage drops by more than :data:`TOLERANCE` below the lowest it has been this
   episode: wait.
2. **Stalled**: ``stall_samples`` samples without falling or climbing (and the smoothed growth
   below :data:`GROWTH_RATIO` of the promised rate): memory is retained, not used. Release it
   (``gc.collect()`` then ``malloc_trim(0)``) and watch again.
3. **Stuck**: stalled again after the release: with ``on_stuck: half_open`` admit a fraction
   of non-core calls, :data:`FIRST_FRACTION` at first, doubling every sample usage does not
   climb, up to all of them; with ``on_stuck: recycle`` ask the process to recycle itself.
   Where live memory is known (design §3) it decides, as the ladder's live usage (live memory
   plus the calm gap, on the thresholds' scale): half-open never opens while live memory is
   at or above the level-3 threshold, nor, at a hard (cgroup) limit, while it is at or above the
   level-1 threshold (the calls hold the memory: shedding is what keeps usage from climbing, and
   past a hard limit the kernel kills), and ``recycle`` fires only while used memory is at the
   hard limit (the cgroup limit, else the budget) and live memory is below the level-1 threshold
   (retained memory, which shedding cannot shrink). Low live memory away from the limit leaves
   level 3 through the ladder instead (:class:`memcontract.ladder.MemoryLadder`).
   Where live memory is unknown (musl, ``PYTHONMALLOC=malloc``, a preloaded jemalloc or
   tcmalloc, free-threaded builds) half-open and recycle work as described, on used memory.
   While half-open and flat, release again, every ``stall_samples`` samples at first, then
   twice as long each time (up to :data:`MAX_RELEASE_WAIT` samples): memory freed when the
   load ends is handed back soon after, and level 3 can end.
4. **Climbing**: usage rises by more than :data:`TOLERANCE` in one sample: back to shedding
   every non-core call (fraction 0), and the watch starts over.

Everything ends when the level drops below 3. The level and the usage peers see are never
touched here: only what the server admits changes.

>>> from memcontract.contract import ModuleContract
>>> from memcontract.pressure import Pressure, Level
>>> recovery = Recovery(ModuleContract(name="api"), release=lambda: None)
>>> at = lambda usage: Pressure(usage_ratio=usage, level=Level.CRITICAL)
>>> [recovery.update(at(u)) for u in (1.2, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1, 1.1)]
[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.125, 0.25, 0.5]
>>> recovery.update(at(1.2))  # climbing again
0.0
"""

from __future__ import annotations

import ctypes
import enum
import functools
import gc
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from .contract import ON_STUCK_RECYCLE, ModuleContract
from .pressure import Level, Pressure
from .telemetry import RELEASES, Telemetry

log = logging.getLogger("memcontract.guard")

#: Exit status of a process that recycles itself (``on_stuck: recycle``): EX_TEMPFAIL from
#: sysexits.h, "temporary failure, retry" — a supervisor restarts it.
RECYCLE_EXIT_STATUS = 75

#: A change in usage ratio smaller than this (1 % of capacity) between samples is noise.
TOLERANCE = 0.01
#: Smoothed growth below this fraction of the promised allocation rate counts as "about zero".
GROWTH_RATIO = 0.1
#: The fraction of non-core calls admitted when shedding first goes half-open.
FIRST_FRACTION = 0.125
#: Longest wait, in samples, between two releases while half-open and flat.
MAX_RELEASE_WAIT = 64


class Phase(enum.Enum):
    """Where level 3 stands (``CLOSED``: not at level 3)."""

    CLOSED = "closed"
    SHEDDING = "shedding"
    RELEASED = "released"
    HALF_OPEN = "half_open"
    RECYCLING = "recycling"


@dataclass(frozen=True, slots=True)
class Released:
    """What one release handed back.

    Attributes:
        collected: unreachable objects ``gc.collect()`` found.
        trimmed: ``malloc_trim(0)``'s result (True: memory returned), or None where glibc's
            ``malloc_trim`` is absent (musl, macOS, Windows).
        cpu_seconds: the process CPU time the release took.
    """

    collected: int
    trimmed: bool | None
    cpu_seconds: float


@functools.cache
def malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` through ctypes, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


def release_memory(telemetry: Telemetry | None = None) -> Released:
    """``gc.collect()``, then ``malloc_trim(0)`` where glibc has it; counted by result.

    The collection also empties the interpreter's free lists, which lets pymalloc return whole
    arenas; the trim returns glibc's free heap pages. Costs tens of milliseconds of CPU.
    """
    start = time.process_time()
    collected = gc.collect()
    trim = malloc_trim()
    trimmed = None if trim is None else bool(trim(0))
    released = Released(collected, trimmed, time.process_time() - start)
    if telemetry is not None:
        result = {None: "unavailable", True: "released", False: "nothing"}[trimmed]
        telemetry.add(RELEASES, 1, {"result": result})
    return released


class Recovery:
    """Level 3's way out: decides, sample by sample, the fraction of non-core calls admitted.

    Args:
        module: the contract in force (``on_stuck``, ``ladder.confirm.level3``, rates).
        release: hands freed memory back (see :func:`release_memory`); called when level 3
            stalls.
        recycle: asked once per episode when level 3 is stuck and ``on_stuck`` is ``recycle``;
            returns whether someone will recycle the process (if not, shedding goes half-open).
        dry_run: decide and log, but neither release nor recycle.
    """

    def __init__(
        self,
        module: ModuleContract,
        *,
        release: Callable[[], object],
        recycle: Callable[[Pressure], bool] | None = None,
        dry_run: bool = False,
    ) -> None:
        self.recycles = module.on_stuck == ON_STUCK_RECYCLE
        self.stall_samples = max(2, module.ladder.confirm.level3)
        self._live_low = module.ladder.heap.level1  # below it, live memory is low
        self._live_high = module.ladder.heap.level3  # at or above it, half-open stays shut
        self._release = release
        self._recycle = recycle
        self._dry_run = dry_run
        self.phase = Phase.CLOSED
        self.fraction = 0.0
        self._floor = self._last = 0.0
        self._still = 0
        self._wait = self.stall_samples  # samples without falling before the next step
        self._live_usage: float | None = None  # this sample's live usage, from the ladder

    def update(
        self, pressure: Pressure, *, at_hard_limit: bool = False, live_ratio: float | None = None
    ) -> float:
        """Feed one sample; return the fraction of non-core calls to admit (0 to 1).

        ``at_hard_limit``: used memory is at the hard limit (see
        :attr:`memcontract.ladder.MemoryStep.at_hard_limit`). ``live_ratio``: the live usage
        (:attr:`memcontract.ladder.MemoryStep.live_ratio`: live memory plus the calm gap),
        weighed against the thresholds instead of the pressure's bare live memory, which leaves
        out what a process holds besides its heap (code, stacks, the allocators' own): half-open
        weighing the bare figure let used memory climb that gap past the level-3 threshold.
        """
        self._live_usage = live_ratio
        usage = pressure.usage_ratio
        if pressure.level < Level.CRITICAL:
            self.phase, self.fraction = Phase.CLOSED, 0.0
            return 0.0
        if self.phase is Phase.CLOSED:
            self._shed(usage)
            return 0.0
        climbing = usage > self._last + TOLERANCE or pressure.alloc_rate_ratio >= GROWTH_RATIO
        self._last = usage
        if self.phase is Phase.HALF_OPEN and self._calls_hold_it(pressure, at_hard_limit):
            log.info(
                "memcontract: live memory held by the calls (level-3 threshold, or a hard "
                "limit): shedding every call"
            )
            self._shed(usage)
            return 0.0
        if climbing:
            if self.phase is Phase.HALF_OPEN:
                log.info("memcontract: usage climbing again at level 3: shedding every call")
            if self.phase is not Phase.RECYCLING:
                self._shed(usage)
            return 0.0
        if usage < self._floor - TOLERANCE:
            self._floor, self._still = usage, 0
        else:
            self._still += 1
        if self.phase is Phase.HALF_OPEN:
            self.fraction = min(1.0, self.fraction * 2)
        if self.phase is not Phase.RECYCLING and self._still >= self._wait:
            self._still = 0
            if self.phase is Phase.SHEDDING:
                self._stalled(pressure)
            elif self.phase is Phase.RELEASED:
                self._stuck(pressure, at_hard_limit)
            else:  # half-open and flat: hand back what the admitted calls freed, less often
                self._wait = min(2 * self._wait, MAX_RELEASE_WAIT)
                self._hand_back()
        return self.fraction

    def _shed(self, usage: float) -> None:
        self.phase, self.fraction = Phase.SHEDDING, 0.0
        self._floor = self._last = usage
        self._still = 0
        self._wait = self.stall_samples

    def _hand_back(self) -> None:
        if not self._dry_run:
            self._release()

    def _stalled(self, pressure: Pressure) -> None:
        self.phase = Phase.RELEASED
        log.info(
            "memcontract: level 3 usage stalled at %.1f%% with nothing growing: "
            "handing freed memory back",
            pressure.usage_ratio * 100,
        )
        self._hand_back()

    def _live(self, pressure: Pressure, *, usage: bool) -> float | None:
        """The live memory recovery weighs: with ``usage``, the ladder's live usage (live plus
        the calm gap: what used memory would be with nothing retained, the scale of the
        thresholds), else the bare live ratio (what the program holds). Infinite for a reading
        that failed the plausibility check (a named source read more live than used memory, as
        a stale pymalloc block size does while a spike's small objects pile up: take it all as
        held); ``None`` where live memory cannot be read on this platform."""
        live = pressure.live_ratio
        if live is None:
            return math.inf if pressure.live_source else None
        return self._live_usage if usage and self._live_usage is not None else live

    def _calls_hold_it(self, pressure: Pressure, at_hard_limit: bool) -> bool:
        """Whether live memory says the calls hold the memory, so admitting more would take it
        over the limit: live at or above the level-3 threshold, or, at a hard (cgroup) limit,
        not below the level-1 threshold (not retained memory: there the kernel kills, where a
        budget only sheds)."""
        live = self._live(pressure, usage=True)  # admitting more grows used memory
        if live is None:
            return False
        return live >= self._live_high or (
            at_hard_limit and pressure.limit_bytes is not None and live >= self._live_low
        )

    def _retained(self, pressure: Pressure, at_hard_limit: bool) -> bool:
        """Whether recycling is the way out: live memory unknown (used alone decides, as it
        always did), or used memory at the hard limit while live memory is low. The bare live
        ratio: the question is whether the program holds little of what is used (a restart
        gives the rest back), and in a small budget the calm gap alone can be most of it."""
        live = self._live(pressure, usage=False)
        return live is None or (at_hard_limit and live < self._live_low)

    def _stuck(self, pressure: Pressure, at_hard_limit: bool) -> None:
        if (
            self.recycles
            and not self._dry_run
            and self._recycle
            and self._retained(pressure, at_hard_limit)
            and self._recycle(pressure)
        ):
            self.phase = Phase.RECYCLING
            return
        if self._calls_hold_it(pressure, at_hard_limit):
            # The calls in flight hold the memory: admitting more would take it over the
            # limit. Stay shed; hand back again later (less often), as half-open does.
            self._wait = min(2 * self._wait, MAX_RELEASE_WAIT)
            self._hand_back()
            return
        self.phase, self.fraction = Phase.HALF_OPEN, FIRST_FRACTION
        log.warning(
            "memcontract: level 3 stuck at %.1f%% (memory retained, not growing): "
            "admitting %.0f%% of non-core calls, more while usage does not climb",
            pressure.usage_ratio * 100,
            self.fraction * 100,
        )
