"""Calls and errors counted per call, turned into rates once per sample (docs/design.md §10).

A call costs one C-level ``next()`` on an :func:`itertools.count`: no lock, no system call, no
Python frame. The sampler reads the counts (``next()`` again, its own reads subtracted) and
divides by the time since its last read: the calls and errors per second over the last sample,
which the ORCA report turns into the headroom form (``orca.rates: headroom``, the default: the
error ratio is what it needs) or carries as measured (``orca.rates: calls``).

>>> calls = CallCounter()
>>> for _ in range(30):
...     _ = calls.count_call()
>>> _ = calls.count_error()
>>> calls.rates(10.0)  # the first read only sets the start
(0.0, 0.0)
>>> for _ in range(50):
...     _ = calls.count_call()
>>> calls.rates(12.0)
(25.0, 0.0)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

# Reads closer together than this keep the previous rates (a rate over a few microseconds is
# noise): a second publication within one sample does not reset the window.
MIN_WINDOW_S = 0.01


class CallCounter:
    """Counts a server's calls and errors; :meth:`rates` turns them into per-second rates.

    Attributes:
        count_call: call once per call (any thread; returns nothing useful).
        count_error: call once per call that ends with a non-OK status.
    """

    __slots__ = ("_calls", "_errors", "_last", "_rates", "_reads", "count_call", "count_error")

    def __init__(self) -> None:
        self._calls = itertools.count()
        self._errors = itertools.count()
        # Bound C methods: the interceptors call these directly.
        self.count_call: Callable[[], object] = self._calls.__next__
        self.count_error: Callable[[], object] = self._errors.__next__
        self._reads = 0  # next() calls made by totals() itself, on each counter
        self._last: tuple[float, int, int] | None = None
        self._rates = (0.0, 0.0)

    def totals(self) -> tuple[int, int]:
        """Calls and errors counted so far."""
        # count's next() returns how many times next() was called before: ours included.
        calls = next(self._calls) - self._reads
        errors = next(self._errors) - self._reads
        self._reads += 1
        return calls, errors

    def rates(self, now: float) -> tuple[float, float]:
        """Calls and errors per second since the previous read at monotonic time ``now``.

        The first read returns ``(0.0, 0.0)`` and starts the window. Only the sampler reads.
        """
        last = self._last
        if last is not None and now - last[0] < MIN_WINDOW_S:
            return self._rates
        calls, errors = self.totals()
        if last is not None:
            elapsed = now - last[0]
            self._rates = ((calls - last[1]) / elapsed, (errors - last[2]) / elapsed)
        self._last = (now, calls, errors)
        return self._rates
