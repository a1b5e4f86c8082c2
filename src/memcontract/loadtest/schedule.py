"""Open-loop rate schedules: how many calls per second at each moment, and when each call starts.

A schedule is a list of linear segments followed by a rate held for ever after. Every call has
an **intended start**, computed from the schedule alone (absolute time since the start of the
run), so a late worker never shifts the calls after it and the pace never drifts.

Forms accepted by :func:`parse_schedule` (durations ``30s``, ``500ms``, ``2m`` or plain seconds)::

    const:500                  500 calls/s
    ramp:100->2000:30s         linear from 100 to 2000 calls/s over 30 s, then 2000
    step:100,500,1000:10s      100 calls/s for 10 s, 500 for 10 s, 1000 for 10 s

A run lasts ``--duration`` if given, else the schedule's own length; past it the last rate holds.

>>> s = parse_schedule("ramp:0->100:10s")
>>> s.count(10.0), round(s.time_of(50), 6), s.time_of(550)
(500.0, 3.162278, 10.5)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import LoadTestError

_DURATION_RE = re.compile(r"([0-9]*\.?[0-9]+)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in ``text`` (``30s``, ``500ms``, ``2m``, ``1h`` or plain seconds); > 0."""
    match = _DURATION_RE.fullmatch(text.strip())
    if not match:
        raise LoadTestError(f"{what}: {text!r} is not a duration (e.g. 30s, 500ms, 2m)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise LoadTestError(f"{what}: {text!r} must be > 0")
    return seconds


@dataclass(frozen=True)
class Segment:
    """Rate going linearly from ``start_rps`` to ``end_rps`` (calls/s, >= 0) over ``seconds``."""

    seconds: float
    start_rps: float
    end_rps: float

    @property
    def calls(self) -> float:
        """Calls the segment intends (the area under its rate)."""
        return self.seconds * (self.start_rps + self.end_rps) / 2

    def rate(self, t: float) -> float:
        """Rate at ``t`` seconds into the segment (calls/s)."""
        return self.start_rps + (self.end_rps - self.start_rps) * t / self.seconds

    def count(self, t: float) -> float:
        """Calls intended in the first ``t`` seconds of the segment."""
        slope = (self.end_rps - self.start_rps) / self.seconds
        return self.start_rps * t + slope * t * t / 2

    def time_of(self, n: float) -> float:
        """Seconds into the segment at which ``n`` calls are intended (``0 <= n <= calls``)."""
        slope = (self.end_rps - self.start_rps) / self.seconds
        if abs(slope) < 1e-12:
            return n / self.start_rps
        # Solve slope/2 t^2 + start t - n = 0 for the root in [0, seconds].
        disc = max(0.0, self.start_rps**2 + 2 * slope * n)
        return min(self.seconds, (math.sqrt(disc) - self.start_rps) / slope)


@dataclass(frozen=True)
class Schedule:
    """An open-loop schedule: ``segments`` in order, then ``hold_rps`` for ever (calls/s > 0).

    ``text`` is how it was written (kept in reports).
    """

    segments: tuple[Segment, ...]
    hold_rps: float
    text: str

    @classmethod
    def constant(cls, rps: float) -> Schedule:
        """A fixed rate (calls/s > 0)."""
        _check_rate(rps, "rps")
        return cls((), float(rps), f"const:{rps:g}")

    @property
    def seconds(self) -> float:
        """Length of the segments (s); the natural duration of a run with this schedule."""
        return sum(s.seconds for s in self.segments)

    def rate(self, t: float) -> float:
        """Intended rate at ``t`` seconds from the start (calls/s)."""
        for segment in self.segments:
            if t < segment.seconds:
                return segment.rate(t)
            t -= segment.seconds
        return self.hold_rps

    def count(self, t: float) -> float:
        """Calls intended in the first ``t`` seconds (a real number)."""
        total = 0.0
        for segment in self.segments:
            if t < segment.seconds:
                return total + segment.count(t)
            total += segment.calls
            t -= segment.seconds
        return total + self.hold_rps * t

    def time_of(self, n: float) -> float:
        """Intended start (s from the start) of call number ``n`` (from 0; real ``n`` allowed)."""
        offset = 0.0
        for segment in self.segments:
            if n <= segment.calls:
                return offset + segment.time_of(n)
            n -= segment.calls
            offset += segment.seconds
        return offset + n / self.hold_rps

    def scaled(self, factor: float) -> Schedule:
        """The same shape at ``factor`` times the rate (one worker's share of the load)."""
        segments = tuple(
            Segment(s.seconds, s.start_rps * factor, s.end_rps * factor) for s in self.segments
        )
        return Schedule(segments, self.hold_rps * factor, self.text)


def _check_rate(rate: float, what: str, *, zero_ok: bool = False) -> None:
    if not math.isfinite(rate):
        raise LoadTestError(f"{what}: {rate:g} is not a rate: give a finite number of calls/s")
    if rate < 0 or (rate == 0 and not zero_ok):
        raise LoadTestError(f"{what}: {rate:g} calls/s must be {'>= 0' if zero_ok else '> 0'}")


def _rate(text: str, what: str, *, zero_ok: bool = False) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise LoadTestError(f"{what}: {text!r} is not a rate (calls/s)") from None
    _check_rate(rate, what, zero_ok=zero_ok)
    return rate


def parse_schedule(text: str) -> Schedule:
    """Parse ``const:R``, ``ramp:A->B:D`` or ``step:R1,R2,...:D`` (see the module docstring).

    Raises :class:`LoadTestError` naming what is wrong.
    """
    where = f"--schedule {text!r}"
    kind, _, rest = text.strip().partition(":")
    if kind == "const":
        schedule = Schedule.constant(_rate(rest, where))
        return Schedule((), schedule.hold_rps, text)
    parts = rest.rsplit(":", 1)
    if kind not in ("ramp", "step") or len(parts) != 2:
        raise LoadTestError(
            f"{where}: expected const:RPS, ramp:FROM->TO:DURATION or step:R1,R2,...:DURATION"
        )
    rates_text, duration_text = parts
    seconds = parse_duration(duration_text, what=where)
    if kind == "ramp":
        ends = rates_text.split("->")
        if len(ends) != 2:
            raise LoadTestError(f"{where}: a ramp is FROM->TO:DURATION, e.g. ramp:100->2000:30s")
        start, end = _rate(ends[0], where, zero_ok=True), _rate(ends[1], where)
        return Schedule((Segment(seconds, start, end),), end, text)
    rates = [_rate(r, where) for r in rates_text.split(",")]
    return Schedule(tuple(Segment(seconds, r, r) for r in rates), rates[-1], text)
