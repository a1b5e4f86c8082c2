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

    def _step_down_if_recovered(self, signals: Mapping[str, float]) -> None:
        above = any(v >= self._thresholds[n].at(self.level) for n, v in signals.items())
        self._below = 0 if above else self._below + 1
        if self._below >= self._config.recover_after:
            self.level, self._below = Level(self.level - 1), 0
