"""GC pause measurement through ``gc.callbacks``.

>>> monitor = GcPauseMonitor()
>>> _ = gc.collect()
>>> monitor.p99_ms() is not None
True
>>> monitor.close()
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections import deque
from typing import Any

__all__ = ["GcPauseMonitor"]


class GcPauseMonitor:
    """Records the duration of each garbage collection and reports their p99.

    Installs a hook in ``gc.callbacks`` when built; :meth:`close` removes it. Keeps the last
    ``maxlen`` pauses (at least 1), optionally only those that ended within the last
    ``window_seconds``. Durations are wall time between the ``"start"`` and ``"stop"`` phases
    measured with :func:`time.perf_counter`, so a pause includes time the collecting thread
    spent descheduled, which is also time the process could not serve.
    """

    def __init__(self, *, maxlen: int = 256, window_seconds: float | None = None) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {maxlen}")
        if window_seconds is not None and window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds}")
        self._window = window_seconds
        self._start: float | None = None
        # (end time, duration) pairs, seconds; deque.append is atomic under the GIL, so the
        # hook (which runs in whichever thread triggered the collection) needs no lock.
        self._pauses: deque[tuple[float, float]] = deque(maxlen=maxlen)
        self._installed = True
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside every collection: one clock read and one append, nothing else.
        now = time.perf_counter()
        if phase == "start":
            self._start = now
        elif self._start is not None:
            self._pauses.append((now, now - self._start))
            self._start = None

    def pause_count(self) -> int:
        """Number of pauses currently held (0 to ``maxlen``), ignoring the time window."""
        return len(self._pauses)

    def p99_ms(self) -> float | None:
        """p99 pause over the held pauses, milliseconds (>= 0), or ``None`` if there are none.

        Nearest-rank percentile: with fewer than 100 pauses this is the largest one.
        """
        durations = self._recent_durations()
        if not durations:
            return None
        durations.sort()
        rank = math.ceil(0.99 * len(durations)) - 1
        return durations[rank] * 1000.0

    def _recent_durations(self) -> list[float]:
        for _ in range(3):
            try:
                # A collection in another thread may append while we copy; retry then.
                pauses = tuple(self._pauses)
                break
            except RuntimeError:
                continue
        else:
            return []
        if self._window is None:
            return [duration for _, duration in pauses]
        cutoff = time.perf_counter() - self._window
        return [duration for end, duration in pauses if end >= cutoff]

    @property
    def installed(self) -> bool:
        """Whether the hook is still in ``gc.callbacks``."""
        return self._installed

    def close(self) -> None:
        """Remove the hook from ``gc.callbacks``; idempotent."""
        if not self._installed:
            return
        self._installed = False
        # Someone else may already have removed it: nothing left to undo then.
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
