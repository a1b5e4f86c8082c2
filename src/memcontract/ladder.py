"""The breach ladder (docs/design.md §4): signals in, a level out. Pure state, no clock, no I/O.

Each signal (heap ratio, allocation-rate ratio) has thresholds for levels 1..3. A level is
entered after ``confirm[level]`` consecutive samples at or above its threshold on one signal;
the level in force is the highest over signals. Stepping down is one level at a time, after
``recover_after`` consecutive samples with every signal below the current level's threshold.

>>> from memcontract.contract import LadderConfig
>>> ladder = Ladder(LadderConfig())
>>> [ladder.step({"heap": 0.96, "alloc_rate": 0.0}) for _ in range(3)]
[<Level.ALERT: 1>, <Level.DEGRADED: 2>, <Level.CRITICAL: 3>]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .contract import LadderConfig, LevelThresholds
from .pressure import Level

HEAP = "heap"
ALLOC_RATE = "alloc_rate"
_LEVELS = (Level.ALERT, Level.DEGRADED, Level.CRITICAL)


class Ladder:
    """Turns one sample of signal ratios into the level in force (a *trigger*)."""

    def __init__(self, config: LadderConfig) -> None:
        self._config = config
        self._thresholds: dict[str, LevelThresholds] = {
            HEAP: config.heap,
            ALLOC_RATE: config.alloc_rate,
        }
        # streaks[signal][i]: consecutive samples at or above the threshold of level i+1
        self._streaks = {name: [0, 0, 0] for name in self._thresholds}
        self._below = 0
        self.level = Level.NORMAL

    def step(self, signals: Mapping[str, float]) -> Level:
        """Feed one sample (``{"heap": ratio, "alloc_rate": ratio}``) and return the level."""
        confirmed = max(self._confirmed(name, value) for name, value in signals.items())
        if confirmed > self.level:
            self.level, self._below = confirmed, 0
        elif self.level > Level.NORMAL:
            self._step_down_if_recovered(signals)
        return self.level

    def _confirmed(self, name: str, value: float) -> Level:
        """Update the signal's streaks; the highest level it has confirmed."""
        thresholds, streaks = self._thresholds[name], self._streaks[name]
        confirmed = Level.NORMAL
        for i, level in enumerate(_LEVELS):
            streaks[i] = streaks[i] + 1 if value >= thresholds.at(level) else 0
            if streaks[i] >= self._config.confirm.at(level):
                confirmed = level
        return confirmed

    def force(self, level: Level) -> None:
        """Put ``level`` in force now, without confirmations (a hard limit is near)."""
        self.level, self._below = level, 0

    def settle(self, signals: Mapping[str, float]) -> Level:
        """Put in force, at once, the highest level any signal is at or above now (leaving
        level 3 on live memory: live memory is the truth, no one-step-at-a-time descent)."""
        self._streaks = {name: [0, 0, 0] for name in self._thresholds}
        self.level, self._below = Level.NORMAL, 0
        for name, value in signals.items():
            for level in _LEVELS:
                if value >= self._thresholds[name].at(level):
                    self.level = max(self.level, level)
        return self.level

    def _step_down_if_recovered(self, signals: Mapping[str, float]) -> None:
        above = any(v >= self._thresholds[n].at(self.level) for n, v in signals.items())
        self._below = 0 if above else self._below + 1
        if self._below >= self._config.recover_after:
            self.level, self._below = Level(self.level - 1), 0


# -- used and live memory (design §4: entering level 3 before a hard limit, leaving it on live) --

#: Used memory moving by less than this fraction of capacity between two samples is flat.
FLAT_TOLERANCE = 0.01
#: Used memory may climb this fraction of capacity above a retained plateau before level 3
#: comes back (the retained memory is in use again). Larger than one sample's noise
#: (``FLAT_TOLERANCE``), small enough that the limit is still far.
PLATEAU_TOLERANCE = 0.05
#: What calls already in flight allocate after shedding starts, in seconds of the last growth
#: (2 s: 40 MiB at 20 MiB/s, what a server's in-flight calls were measured to add).
IN_FLIGHT_SECONDS = 2.0
#: "At the hard limit" for ``on_stuck: recycle``: within this fraction of the limit.
AT_LIMIT_FRACTION = 0.02
#: A gap between samples longer than this many intervals (a stopped process, VM steal)
#: restarts the growth baseline instead of reading as growth.
GAP_INTERVALS = 3.0
#: Samples closer than this fraction of the interval leave the growth rate as it was.
MIN_GAP_FRACTION = 0.5


class Growth:
    """Growth of used memory, bytes/s: the raw rate over the last interval (its actual elapsed
    time, as the sampler may run late) and an EWMA of it. Never negative.

    A sample closer than half an interval to the previous one changes nothing (a division by
    a tiny time would read as a spike); one more than three intervals after it restarts the
    baseline (a stopped process did not grow at the average rate of the gap).
    """

    def __init__(self, interval: float, alpha: float = 0.5) -> None:
        self.interval = interval
        self.alpha = alpha
        self.raw = 0.0
        self.smoothed = 0.0
        #: The actual elapsed time of the last interval measured, seconds (0: none yet).
        self.elapsed = 0.0
        self._last: tuple[float, int] | None = None

    def update(self, now: float, used_bytes: int) -> None:
        """Feed used bytes read at monotonic time ``now`` (seconds)."""
        if self._last is None:
            self._last = (now, used_bytes)
            return
        then, previous = self._last
        elapsed = now - then
        if elapsed < MIN_GAP_FRACTION * self.interval:
            return
        self._last = (now, used_bytes)
        if elapsed > GAP_INTERVALS * self.interval:
            self.raw, self.elapsed = 0.0, 0.0
            return
        self.raw = max(0.0, (used_bytes - previous) / elapsed)
        self.smoothed = self.alpha * self.raw + (1 - self.alpha) * self.smoothed
        self.elapsed = elapsed

    def margin_bytes(self) -> float:
        """How far used memory may still grow before shedding takes hold: the raw rate times
        (two intervals + the sampler's lag + one interval for shedding to act + the in-flight
        allowance)."""
        lag = max(0.0, self.elapsed - self.interval)
        return self.raw * (3 * self.interval + lag + IN_FLIGHT_SECONDS)


@dataclass(frozen=True, slots=True)
class MemorySample:
    """One reading, as the memory ladder takes it.

    Attributes:
        now: monotonic seconds.
        used_bytes: used memory (RSS, or the cgroup working set).
        capacity_bytes: the effective capacity (> 0).
        live_bytes: live memory, or ``None`` where unknown (or implausible).
        limit_bytes: the hard limit (the cgroup's), or ``None`` without one.
        alloc_rate_bytes_per_sec: a growth rate measured by the probe, or ``None``: then the
            smoothed growth of ``used_bytes`` is the allocation-rate signal.
    """

    now: float
    used_bytes: int
    capacity_bytes: int
    live_bytes: int | None = None
    limit_bytes: int | None = None
    alloc_rate_bytes_per_sec: float | None = None


@dataclass(frozen=True, slots=True)
class MemoryStep:
    """What one sample did to the memory ladder.

    Attributes:
        level: the level in force.
        usage_ratio: the heap signal the ladder weighed, and the usage peers are told: used /
            capacity, or the live usage (:class:`MemoryLadder`) while a plateau is recorded.
        alloc_rate_bytes_per_sec, alloc_rate_ratio: the allocation-rate signal.
        plateau_bytes: the retained plateau, or ``None``.
        margin_bytes: how far used memory may still grow before shedding would take hold.
        at_hard_limit: used memory is at the hard limit (the cgroup's; without one, the
            budget), within :data:`AT_LIMIT_FRACTION` or the margin.
        live_ratio: the live usage (live memory plus the calm gap, over capacity: what used
            memory would be if nothing were retained) where this sample read live memory, else
            ``None``. Recovery weighs this, on the scale of the thresholds it is held to.
    """

    level: Level
    usage_ratio: float
    alloc_rate_bytes_per_sec: float
    alloc_rate_ratio: float
    plateau_bytes: int | None
    margin_bytes: float
    at_hard_limit: bool
    live_ratio: float | None = None


class MemoryLadder:
    """The breach ladder over used and live memory (design §4). Pure state, no clock, no I/O.

    1. Level 3 is entered on used memory through :class:`Ladder` (confirmations), and at once
       when a hard limit exists and used + :meth:`Growth.margin_bytes` reaches it; level 3
       entered so is held while used memory stays at or above the level-2 heap threshold of
       that limit (growth stopping is shedding working, not room to admit again).
    2. At level 1 and up, once used memory has been flat (within :data:`FLAT_TOLERANCE` of
       capacity) for ``confirm.level3`` samples — at level 3, the release on entering it has
       happened — and the live usage is known and below the level-1 heap threshold, the ladder
       goes straight to the level the live usage indicates and records used memory as the
       retained plateau (memory a spike left behind latches any level, not only level 3). Used
       memory below that threshold is not retained memory: the ladder steps down as usual.
    3. While a plateau is recorded the heap signal is the live usage (below). Used memory
       climbing more than :data:`PLATEAU_TOLERANCE` of capacity above the plateau is at once
       the level used memory indicates (the retained memory is used up), and reaching the hard
       limit is level 3 at once; the plateau is dropped then, and when used memory falls below
       the level-1 threshold by itself.

    *Live* here is the live usage: live memory plus the calm gap — the gap between used and
    live memory at the last calm, steady sample (level 0, no plateau, used flat since the
    sample before; until there is one, at the last calm sample): what the process holds
    outside its heap (code, stacks, the interpreter) — over capacity. A process just out of
    level 3 then tells a usage its calm siblings' used memory can be weighed against (a
    balancer's weights compare them); before any calm sample the gap is 0.

    The live exit waits while used memory is at a cgroup limit, and at the budget when
    ``recycles`` (``on_stuck: recycle``: retained memory there is what recycling is for).
    ``live_exit=False`` leaves levels on used memory only (as before; for comparisons).
    """

    def __init__(
        self,
        config: LadderConfig,
        *,
        interval: float,
        promised_rate_bytes_per_sec: float,
        live_exit: bool = True,
        recycles: bool = False,
    ) -> None:
        self.config = config
        self.recycles = recycles
        self.ladder = Ladder(config)
        self.growth = Growth(interval)
        self._promised = promised_rate_bytes_per_sec
        self.live_exit = live_exit
        self.plateau_bytes: int | None = None
        self._live_ratio: float | None = None  # the last known live usage, held while a plateau is
        self.calm_gap = 0  # used - live bytes at the last calm, steady sample
        self._steady_gap = False  # calm_gap was taken at a steady sample
        self._last_used: int | None = None
        self._flat = 0
        self._used_before: int | None = None  # used memory at the sample before (flat count)
        self._limit_episode = False  # level 3 forced by the projection to the hard limit

    @property
    def level(self) -> Level:
        """The level in force."""
        return self.ladder.level

    def step(self, sample: MemorySample) -> MemoryStep:
        """Feed one sample; return the level and the signals it was decided on."""
        capacity = max(1, sample.capacity_bytes)
        self.growth.update(sample.now, sample.used_bytes)
        rate = sample.alloc_rate_bytes_per_sec
        if rate is None:
            rate = self.growth.smoothed
        rate_ratio = rate / self._promised
        live = sample.live_bytes
        if live is not None:
            self._live_ratio = (live + self.calm_gap) / capacity
        margin = self.growth.margin_bytes()
        limit = sample.limit_bytes
        near_limit = limit is not None and (
            sample.used_bytes + margin >= limit
            # Once the projection forced level 3, growth stopping (shedding works) is no reason
            # to admit again this close to the limit: one burst of admitted calls would cross it
            # before the next sample. Held while used is at the level-2 threshold of the limit.
            or (self._limit_episode and sample.used_bytes >= self.config.heap.level2 * limit)
        )
        self._limit_episode = near_limit
        hard = limit if limit is not None else capacity
        at_hard_limit = near_limit or sample.used_bytes >= (1 - AT_LIMIT_FRACTION) * hard
        # The live exit waits at a cgroup limit (any growth is level 3 again at once), and at
        # the budget when on_stuck is recycle (retained memory there is the recycle case).
        holds = at_hard_limit and (sample.limit_bytes is not None or self.recycles)
        reentry = self._check_plateau(sample.used_bytes, capacity)
        usage = sample.used_bytes / capacity
        if self.plateau_bytes is not None and self._live_ratio is not None:
            usage = self._live_ratio
        was_critical = self.ladder.level == Level.CRITICAL
        self.ladder.step({HEAP: usage, ALLOC_RATE: rate_ratio})
        if near_limit:
            self.ladder.force(Level.CRITICAL)
        elif reentry:  # the level used memory indicates, at once
            self.ladder.settle({HEAP: usage, ALLOC_RATE: rate_ratio})
        if self.ladder.level == Level.CRITICAL and not was_critical:
            self.plateau_bytes = None  # level 3 is about used memory again
            self._flat, self._used_before = 0, sample.used_bytes
        elif near_limit:
            self._flat, self._used_before = 0, sample.used_bytes
        elif self.ladder.level != Level.NORMAL and self.plateau_bytes is None:
            if self._leave_on_live(sample, rate_ratio, holds):
                usage = self._live_ratio if self._live_ratio is not None else usage
        else:
            self._flat, self._used_before = 0, None
        self.note_sample(sample.used_bytes, live, capacity)
        return MemoryStep(
            level=self.ladder.level,
            usage_ratio=usage,
            alloc_rate_bytes_per_sec=rate,
            alloc_rate_ratio=rate_ratio,
            plateau_bytes=self.plateau_bytes,
            margin_bytes=margin,
            at_hard_limit=at_hard_limit,
            live_ratio=self._live_ratio if live is not None else None,
        )

    def note_sample(self, used: int, live: int | None, capacity: int) -> None:
        """After each sample: at a calm one (level 0, no plateau) the gap between used and
        live memory becomes the calm gap if used memory is steady (flat since the sample
        before: not warming up, not a load starting), or if no steady one was seen yet."""
        last, self._last_used = self._last_used, used
        if live is None or self.plateau_bytes is not None or self.ladder.level != Level.NORMAL:
            return
        steady = last is not None and abs(used - last) <= FLAT_TOLERANCE * capacity
        if steady or not self._steady_gap:
            self.calm_gap, self._steady_gap = max(0, used - live), steady

    def _check_plateau(self, used: int, capacity: int) -> bool:
        """Drop the plateau where it no longer holds; whether level 3 must come back."""
        if self.plateau_bytes is None:
            return False
        if used / capacity < self.config.heap.level1:
            self.plateau_bytes = None  # retained memory went back by itself
            return False
        if used > self.plateau_bytes + PLATEAU_TOLERANCE * capacity:
            self.plateau_bytes = None  # the retained memory is used up: used is the truth
            return True
        return False

    def _leave_on_live(self, sample: MemorySample, rate_ratio: float, holds: bool) -> bool:
        """At level 1 and up: count flat samples; leave when the live usage is low."""
        capacity = max(1, sample.capacity_bytes)
        used, last = sample.used_bytes, self._used_before
        flat = last is not None and abs(used - last) <= FLAT_TOLERANCE * capacity
        self._flat = self._flat + 1 if flat else 0
        self._used_before = used
        live = self._live_ratio if sample.live_bytes is not None else None
        if (
            not self.live_exit
            or live is None
            or holds
            or self._flat < self.config.confirm.level3
            or live >= self.config.heap.level1
            or used / capacity < self.config.heap.level1  # not retained: the usual way down
        ):
            return False
        self.plateau_bytes = used
        self._flat, self._used_before = 0, None
        self.ladder.settle({HEAP: live, ALLOC_RATE: rate_ratio})
        return True
