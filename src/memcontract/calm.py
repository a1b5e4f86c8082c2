"""Calm is free (docs/design.md §5): while a process is quiet, its keys travel only when what
they say changed.

A process is *quiet* at level 0 with usage and growth below their level-1 thresholds. What its
keys say changes when the level changes, when it stops or starts being quiet, or when usage
moves by :data:`USAGE_STEP` or more since it last changed; each change bumps a version number.
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
"""

from __future__ import annotations

from dataclasses import dataclass

from .contract import ModuleContract
from .pressure import Level, Pressure

USAGE_STEP = 0.05
"""Usage moved this much (5 points of the budget) since the last change: a change."""
_STEP_TENTHS = round(USAGE_STEP * 1000)
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
    """

    number: int
    quiet: bool
    level: Level
    usage_ratio: float


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
    previous: WireVersion | None, pressure: Pressure, module: ModuleContract
) -> WireVersion:
    """The version of what ``pressure``'s keys say: ``previous`` itself when nothing a peer
    must hear again has changed, else a new one."""
    quiet = is_quiet(pressure, module)
    if (
        previous is not None
        and previous.quiet == quiet
        and previous.level == pressure.level
        and _tenths_of_points(pressure.usage_ratio - previous.usage_ratio) < _STEP_TENTHS
    ):
        return previous
    number = 0 if previous is None else previous.number + 1
    return WireVersion(number, quiet, pressure.level, pressure.usage_ratio)


def _tenths_of_points(delta: float) -> int:
    """``delta`` of usage in tenths of a percent point, as ``x-memory-usage`` resolves it (so
    0.47 - 0.42 is 50, not 49.99...)."""
    return round(abs(delta) * 1000)
