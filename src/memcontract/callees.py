"""The callees' pressure table (client side): what each target's backends last answered, and
whether its calls fail fast. A plain core object; the client interceptors feed it and read it.

>>> table = CalleeTable(ttl=2.0)
>>> table.record("inventory:50051", Pressure(0.97, level=Level.CRITICAL), pushback_ms=500)
>>> table.blocked("inventory:50051")
True
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from .pressure import Level, Pressure

_NEVER = -math.inf
MAX_INSTANCES = 256
"""Instances remembered per target (the least recently heard from goes first)."""


class _Answers:
    """What one target's backends last answered: one target is one channel, and a channel may
    reach many backends (DNS, xDS, a list of addresses), each naming itself by its instance id.

    ``instances``: each named backend's latest answer, (when, level 3?); 0 is every backend
    that names no instance (text keys only, or a peer older than the instance id). ``calm_at``
    and ``calm_from``: the latest answer that was not level 3, and whose (``None``: an answer
    without keys, which names nobody).
    """

    __slots__ = ("calm_at", "calm_from", "expires_at", "instances", "pressure", "window")

    def __init__(self) -> None:
        self.instances: OrderedDict[int, tuple[float, bool]] = OrderedDict()
        self.calm_at = _NEVER
        self.calm_from: int | None = None
        self.pressure: Pressure | None = None
        self.expires_at = _NEVER
        self.window = 0.0

    def heard(self, instance: int, at: float, critical: bool) -> None:
        self.instances[instance] = (at, critical)
        self.instances.move_to_end(instance)
        if len(self.instances) > MAX_INSTANCES:
            self.instances.popitem(last=False)

    def all_critical(self, since: float) -> bool:
        """Whether every answer since ``since`` carried level 3, from two instances or more,
        or from the only instance ever heard from.

        A calm answer is set aside only when it came from an instance whose own later answer
        carried level 3, or when a single instance answers this target (then an answer
        without keys was that instance's too, before its level-3 one).
        """
        sole = len(self.instances) == 1
        if self.calm_at >= since and not sole:
            latest = self.instances.get(self.calm_from) if self.calm_from is not None else None
            if latest is None or not latest[1] or latest[0] < self.calm_at:
                return False
        critical = 0
        for at, is_critical in self.instances.values():
            if at >= since:
                if not is_critical:
                    return False
                critical += 1
        return critical >= 2 or (sole and critical == 1)


class CalleeTable:
    """What each callee target's backends last reported: bounded (LRU), expiring, and the
    fail-fast decision per target (docs/design.md §7).

    Every completed call is an answer. A target fails non-core calls fast only while every
    answer in the last window (its pushback, at most ``max_fail_fast_ms``) said its backend
    sheds, from two backend instances or more, or from the only one ever heard from; one call
    per window still goes out (a probe), and the first answer that does not say so ends it.
    So one backend at level 3 behind a channel never stops the calls its calm siblings would
    serve. An answer says its backend sheds when it carries level 3 and the call was shed (a
    pushback came with it); a non-core call answered at level 3 without a pushback was admitted
    (half-open, dry run), and its backend is taking calls. A core call is never shed, so its
    answer at level 3 cannot tell: it stands only for a backend not heard from before.

    Args:
        ttl: seconds a reported pressure holds for :meth:`get` (absent or expired: calm).
        max_targets: targets kept; the least recently updated goes first.
        default_pushback_ms: the window when a level-3 report carries no pushback.
        max_fail_fast_ms: the longest window, whatever a callee asks for (its pushback is cut
            to this); 0 turns failing fast off.
        clock: monotonic seconds (``FakeClock().monotonic`` in tests).
    """

    def __init__(
        self,
        *,
        ttl: float = 2.0,
        max_targets: int = 1024,
        default_pushback_ms: int = 1000,
        max_fail_fast_ms: int = 30000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_targets <= 0:
            raise ValueError("ttl and max_targets must be positive")
        if max_fail_fast_ms < 0:
            raise ValueError("max_fail_fast_ms must be 0 or more")
        self.ttl = ttl
        self.max_targets = max_targets
        self.default_pushback_ms = default_pushback_ms
        self.max_fail_fast_ms = max_fail_fast_ms
        self.clock = clock
        """The table's clock (monotonic seconds)."""
        self._targets: OrderedDict[str, _Answers] = OrderedDict()
        self.blocked_until: dict[str, float] = {}
        """Targets failing fast -> when their next probe may go: read it, never write it.
        Empty nearly always, so a caller's per-call check is one truth test."""
        self._lock = threading.Lock()

    def record(
        self,
        target: str,
        pressure: Pressure,
        pushback_ms: int | None = None,
        instance_id: int = 0,
        *,
        admitted: bool = False,
        core: bool = False,
    ) -> None:
        """An answer from ``target`` carrying ``pressure`` (from backend ``instance_id``, 0
        when it names none) and the pushback it asked for, if any. ``admitted``: it answered a
        non-core call that was not shed, so its backend takes calls whatever its level;
        ``core``: it answered a core call (see the class docstring)."""
        now = self.clock()
        critical = pressure.level == Level.CRITICAL and not admitted
        with self._lock:
            answers = self._answers(target)
            answers.pressure = pressure
            answers.expires_at = now + self.ttl
            if critical and core and instance_id in answers.instances:
                return  # the backend's own last word on shedding stands
            answers.heard(instance_id, now, critical)
            if not critical:
                answers.calm_at, answers.calm_from = now, instance_id
                self.blocked_until.pop(target, None)
                return
            answers.window = self._window(pushback_ms)
            blocks = answers.window and target not in self.blocked_until
            if blocks and answers.all_critical(now - answers.window):
                self.blocked_until[target] = now + answers.window

    def record_calm(self, target: str, instance_id: int | None = None) -> None:
        """An answer from ``target`` that was not level 3 without a new report: no keys at all
        (``instance_id`` ``None``), or the same calm report again. Cheap: no lock unless it ends
        a fail-fast window."""
        answers = self._targets.get(target)
        if answers is None:
            return  # nothing heard from it yet: calm already
        now = self.clock()
        answers.calm_at, answers.calm_from = now, instance_id
        if instance_id is not None and instance_id in answers.instances:
            answers.instances[instance_id] = (now, False)
        if target in self.blocked_until:
            self.blocked_until.pop(target, None)

    def _window(self, pushback_ms: int | None) -> float:
        ms = self.default_pushback_ms if pushback_ms is None else pushback_ms
        return max(0, min(ms, self.max_fail_fast_ms)) / 1000

    def _answers(self, target: str) -> _Answers:
        answers = self._targets.get(target)
        if answers is None:
            answers = self._targets[target] = _Answers()
            while len(self._targets) > self.max_targets:
                old, _ = self._targets.popitem(last=False)
                self.blocked_until.pop(old, None)
        else:
            self._targets.move_to_end(target)
        return answers

    def fails_fast(self, target: str) -> bool:
        """Whether a non-core call to ``target`` fails locally now. While it fails fast, one
        call per window goes out anyway (this returns ``False`` for it): a probe, so that
        recovery is noticed."""
        until = self.blocked_until.get(target)
        if until is None:
            return False
        now = self.clock()
        if now < until:
            return True
        with self._lock:
            until = self.blocked_until.get(target)
            if until is None:
                return False
            if now < until:
                return True
            answers = self._targets.get(target)
            window = answers.window if answers is not None else self._window(None)
            self.blocked_until[target] = now + window
        return False

    def reset_after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at fork)."""
        self._lock = threading.Lock()

    def get(self, target: str) -> Pressure | None:
        """The target's last unexpired pressure (any of its backends), or ``None``."""
        answers = self._targets.get(target)
        if answers is None or answers.expires_at <= self.clock():
            return None
        return answers.pressure

    def blocked(self, target: str) -> bool:
        """Whether ``target`` fails non-core calls fast (its probe aside)."""
        return target in self.blocked_until

    def blocked_for(self, target: str) -> float:
        """Seconds until the target's next probe may go (0 when not failing fast)."""
        until = self.blocked_until.get(target)
        return 0.0 if until is None else max(0.0, until - self.clock())

    def instances(self, target: str) -> int:
        """How many backend instances of ``target`` have answered with keys (0 counts as one)."""
        answers = self._targets.get(target)
        return 0 if answers is None else len(answers.instances)

    def __len__(self) -> int:
        return len(self._targets)

    def snapshot(self) -> dict[str, Pressure]:
        """Every unexpired entry, for display."""
        now = self.clock()
        with self._lock:
            return {
                t: a.pressure
                for t, a in self._targets.items()
                if a.pressure is not None and a.expires_at > now
            }
