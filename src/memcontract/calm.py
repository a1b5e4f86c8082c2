"""Calm is free (docs/design.md §5): while a process is quiet, its keys travel only when what
they say changed.

A process is *quiet* at level 0 with usage and growth below their level-1 thresholds. What its
keys say changes when the level changes, when it stops or starts being quiet, or when usage
or the error ratio its ORCA report carries (errors over calls) moves by :data:`USAGE_STEP`
(:data:`PLATEAU_USAGE_STEP` while a retained plateau is recorded) or more since it last
changed; each change bumps a version number. (A balancer weighs both alike: a report told once
while errors ran high, say the shed calls just before level 3 ended, would otherwise hold a
backend's weight down until the refresh.)
While quiet, a server sends its keys (text, ``-bin`` and ORCA) on a connection's first call,
after a change, and at least every :data:`REFRESH_S` seconds per connection; a client sends
its own once per change per channel. Not quiet (level 1 and up), every call carries them, as
before. A receiver reads absent or expired keys as calm.

>>> from memcontract.contract import ModuleContract
>>> module = ModuleContract(name="api")
>>> first = version_of(None, Pressure(usage_ratio=0.30), module)
>>> first.quiet, version_of(first, Pressure(usage_ratio=0.34), module) is first
(True, True)
>>> version_of(first, Pressure(usage_ratio=0.35), module).number
1
>>> version_of(first, Pressure(usage_ratio=0.30), module, error_ratio=0.05).number
1
"""

from __future__ import annotations

from dataclasses import dataclass

from .contract import ModuleContract
from .pressure import Level, Pressure

USAGE_STEP = 0.05
"""Usage moved this much (5 points of the budget) since the last change: a change."""
PLATEAU_USAGE_STEP = 0.01
"""The step (usage and error ratio) while a retained plateau is recorded: the live usage told
then settles, and the calls shed just before fall out of the error ratio, over the first
seconds after a level was left on live memory; a balancer's weight at about 50 % usage moves
4 % per point of either (5 points would hold a backend up to 20 % off its share until the
refresh)."""
_STEP_TENTHS = round(USAGE_STEP * 1000)
_PLATEAU_STEP_TENTHS = round(PLATEAU_USAGE_STEP * 1000)
REFRESH_S = 30.0
"""A quiet server resends its keys on a connection at least this often (seconds)."""


@dataclass(frozen=True, slots=True)
class WireVersion:
    """What a process's keys say, as far as its peers need to hear it again.

    Attributes:
        number: bumped on every change (0 first).
        quiet: level 0 and below every level-1 threshold: keys travel on a change only.
        level: the level at the last change.
        usage_ratio: the usage at the last change.
        error_ratio: errors over calls at the last change.
    """

    number: int
    quiet: bool
    level: Level
    usage_ratio: float
    error_ratio: float = 0.0


FIRST_VERSION = WireVersion(0, False, Level.NORMAL, 0.0)
"""Before anything was measured: not quiet, so the first keys always travel."""


def is_quiet(pressure: Pressure, module: ModuleContract) -> bool:
    """Level 0 with usage and growth below their level-1 thresholds, and an ORCA report that
    follows memory alone (``orca.rates: calls`` reports rates that move with every sample, so
    such a process is never quiet)."""
    ladder = module.ladder
    return (
        module.orca.rates != "calls"
        and pressure.level == Level.NORMAL
        and pressure.usage_ratio < ladder.heap.level1
        and pressure.alloc_rate_ratio < ladder.alloc_rate.level1
    )


def version_of(
    previous: WireVersion | None,
    pressure: Pressure,
    module: ModuleContract,
    error_ratio: float = 0.0,
) -> WireVersion:
    """The version of what ``pressure``'s keys (and an ORCA report with ``error_ratio``) say:
    ``previous`` itself when nothing a peer must hear again has changed, else a new one."""
    quiet = is_quiet(pressure, module)
    usage_step = _STEP_TENTHS if pressure.plateau_bytes is None else _PLATEAU_STEP_TENTHS
    if (
        previous is not None
        and previous.quiet == quiet
        and previous.level == pressure.level
        and _tenths_of_points(pressure.usage_ratio - previous.usage_ratio) < usage_step
        and _tenths_of_points(error_ratio - previous.error_ratio) < usage_step
    ):
        return previous
    number = 0 if previous is None else previous.number + 1
    return WireVersion(number, quiet, pressure.level, pressure.usage_ratio, error_ratio)


def _tenths_of_points(delta: float) -> int:
    """``delta`` of usage in tenths of a percent point, as ``x-memory-usage`` resolves it (so
    0.47 - 0.42 is 50, not 49.99...)."""
    return round(abs(delta) * 1000)
