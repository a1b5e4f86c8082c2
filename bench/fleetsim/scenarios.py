"""The scenarios: what happens to the fleet, and when its disturbance ends.

Each starts at :data:`START_S` after a calm start (the balancers' 10 s blackout is over by then)
and sets ``fleet.disturbance.ends_at`` (the time back to level <= 1 is counted from there; a
leak has no end).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from .sim import Fleet, Scenario

START_S = 30.0
SURGE_FACTOR = 3.0
SURGE_S = 60.0
HOT_SHARE = 0.02
HOT_S = 120.0
#: A hot backend's extra non-core calls per second, in units of its calm non-core rate (assumed).
HOT_RATE = 2.0
#: Surge and hot key build up linearly over this long (assumed: traffic triples within 10 s; a
#: key becomes hot over 30 s). A step within one sample interval leaves no sampler any time.
SURGE_RAMP_S = 10.0
HOT_RAMP_S = 30.0
LEAK_SHARE = 0.05
#: A leaking backend's growth: from calm to the hard limit in about 4 minutes (assumed).
LEAK_MINUTES_TO_LIMIT = 4.0
ROLLING_BATCH = 0.10  # of the backends at a time (maxUnavailable 10 %, assumed)
ROLLING_DOWN_S = 5.0  # termination before the new pod starts (its readiness adds ready_delay_s)


def picked(fleet: Fleet, share: float) -> np.ndarray:
    """At least one backend, ``share`` of them, spread over the fleet."""
    count = max(1, round(share * fleet.n))
    chosen = np.zeros(fleet.n, dtype=bool)
    chosen[np.linspace(0, fleet.n - 1, count).round().astype(int)] = True
    return chosen


def ramp(
    fleet: Fleet, seconds: float, apply: Callable[[float], None]
) -> Generator[simpy.Event, Any, None]:
    """Call ``apply`` with 0 to 1 over ``seconds``, once per tick."""
    steps = max(1, round(seconds / fleet.dt))
    for i in range(1, steps + 1):
        apply(i / steps)
        yield fleet.env.timeout(fleet.dt)


def surge(fleet: Fleet) -> Generator[simpy.Event, Any, None]:
    """Every caller sends 3x its calls for 60 s."""
    d = fleet.disturbance
    d.started_at, d.ends_at = START_S, START_S + SURGE_S
    yield fleet.env.timeout(START_S)
    yield from ramp(fleet, SURGE_RAMP_S, lambda x: setattr(d, "surge", 1 + (SURGE_FACTOR - 1) * x))
    yield fleet.env.timeout(SURGE_S - SURGE_RAMP_S)
    d.surge = 1.0


def hot_key(fleet: Fleet) -> Generator[simpy.Event, Any, None]:
    """Heavy calls (``hot_call_bytes_factor`` x a Report's memory) pinned to 2 % of the
    backends for 120 s (a key-affine route no balancer can move)."""
    d = fleet.disturbance
    d.started_at, d.ends_at = START_S, START_S + HOT_S
    yield fleet.env.timeout(START_S)
    d.hot = picked(fleet, HOT_SHARE)
    rate = HOT_RATE * fleet.model.calm_rates()[1]
    yield from ramp(fleet, HOT_RAMP_S, lambda x: setattr(d, "hot_rate", rate * x))
    yield fleet.env.timeout(HOT_S - HOT_RAMP_S)
    d.hot_rate = 0.0


def leak(fleet: Fleet) -> Generator[simpy.Event, Any, None]:
    """5 % of the backends leak live memory from ``START_S`` on (a restart clears it, and the
    new process leaks again)."""
    d = fleet.disturbance
    d.started_at, d.ends_at = START_S, None
    yield fleet.env.timeout(START_S)
    m = fleet.model
    room = m.hard_limit - fleet.live.mean()
    fleet.leak_rate[picked(fleet, LEAK_SHARE)] = room / (LEAK_MINUTES_TO_LIMIT * 60)


def rolling_restart(fleet: Fleet) -> Generator[simpy.Event, Any, None]:
    """Every backend restarted, 10 % at a time, each batch once the previous one is ready."""
    d = fleet.disturbance
    d.started_at, d.ends_at = START_S, None
    yield fleet.env.timeout(START_S)
    batch = max(1, round(ROLLING_BATCH * fleet.n))
    for first in range(0, fleet.n, batch):
        for backend in range(first, min(first + batch, fleet.n)):
            if fleet.up[backend]:
                fleet.take_down(backend, ROLLING_DOWN_S)
        while not fleet.up.all():
            yield fleet.env.timeout(fleet.dt)
    d.ends_at = fleet.env.now


SCENARIOS: dict[str, Scenario] = {
    "surge": surge,
    "hot-key": hot_key,
    "leak": leak,
    "rolling-restart": rolling_restart,
}
