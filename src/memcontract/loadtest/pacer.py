"""The open-loop pacer: when to fire the next call, from an absolute schedule (no clock inside).

Like vegeta's ``Pacer.Pace(elapsed, hits)``, the answer depends only on the time elapsed and the
calls already fired, so the pace never drifts and the pacer is tested without a clock. A worker
that falls behind is told to fire at once (wait 0): the calls keep their intended starts, and
latency is measured from those (no coordinated omission).

>>> from memcontract.loadtest.schedule import Schedule
>>> pacer = Pacer(Schedule.constant(10), duration=1.0)
>>> pacer.pace(0.0, 0), pacer.pace(0.05, 1), pacer.pace(0.5, 3), pacer.pace(1.0, 10)
((0.0, False), (0.05, False), (0.0, False), (0.0, True))
"""

from __future__ import annotations

import math

from .schedule import Schedule


class Pacer:
    """Intended starts of one worker's calls.

    ``duration`` (s) and ``total`` (calls) bound the run (either may be ``None``, not both).
    ``phase`` in [0, 1) shifts this worker's calls by a fraction of a call so that ``W`` workers
    sharing a schedule (each at ``1/W`` of the rate, phases ``k/W``) interleave evenly.
    """

    def __init__(
        self,
        schedule: Schedule,
        *,
        duration: float | None = None,
        total: int | None = None,
        phase: float = 0.0,
    ) -> None:
        if duration is None and total is None:
            raise ValueError("Pacer needs a duration or a total")
        self.schedule = schedule
        self.duration = duration
        self.total = total
        self.phase = phase

    def intended(self, hits: int) -> float | None:
        """Intended start (s from the start) of call number ``hits``, or ``None``: no more calls."""
        if self.total is not None and hits >= self.total:
            return None
        start = self.schedule.time_of(hits + self.phase)
        if self.duration is not None and start >= self.duration:
            return None
        return start

    def calls_before(self, t: float) -> int:
        """How many of this worker's calls are intended before ``t`` s from the start (the
        index of the first one at or after it), within the bounds."""
        if self.duration is not None:
            t = min(t, self.duration)
        n = max(0, math.ceil(self.schedule.count(t) - self.phase))
        if self.total is not None:
            n = min(n, self.total)
        # count() and time_of() round apart by a call at most: trust intended(), which
        # bounds the run.
        while n > 0 and ((start := self.intended(n - 1)) is None or start >= t):
            n -= 1
        while (start := self.intended(n)) is not None and start < t:
            n += 1
        return n

    def pace(self, elapsed: float, hits: int) -> tuple[float, bool]:
        """(seconds to wait before the next call, stop): vegeta's contract, for ``hits`` fired."""
        start = self.intended(hits)
        if start is None:
            return 0.0, True
        return max(0.0, start - elapsed), False
