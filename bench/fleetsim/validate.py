"""The simulation run as the real calibration setups were (see :mod:`bench.fleetsim.calibrate`),
and its figures set beside ``calibration.json``'s.

* ``balancers``: 3 backends, one caller (one grpcio channel: 4 threads share it) sending the
  measured calls per second, all core (``Health/Check``); the FakeProbe's usage is imposed on
  ``used`` (30 %, backend 0 at 90 % for 6 s, then 30 % again); WRR with the test's settings.
  The share and the time until even are computed from the simulated counts exactly as the
  calibration computes them from the real ones (3 s, then 0.25 s windows).
* ``recovery``: one backend under the example's ``inventory`` contract at a 96 MiB budget, 49 MiB
  at start (measured: ``bench/recovery.py``), 24 closed-loop ``Report`` callers for 10 s whose
  memory per call is set from the measured peak, ``(peak * 96 - 49) / 24`` MiB; no cgroup limit.
  After the load, a ``GetStock`` every 0.2 s is admitted at level 3 when the admission credit
  (the fraction the real Recovery returns, added per call) reaches 1, as the guard does.

``python -m bench.fleetsim.validate`` prints both beside the calibration.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from memcontract.contract import Contract

from .calibrate import CALIBRATION, EVEN_RATIO, EVEN_WITHIN_S, WINDOW_S
from .models import MIB, Model
from .sim import Fleet, Variant

ROOT = Path(__file__).resolve().parents[2]
# test_balancers: a contract at sample_interval_ms 100 under grpcio's WRR with these settings;
# the client is plain grpcio (no memcontract interceptor: no fail-fast). Its FakeProbe sets used
# memory only (live memory unknown): the ladder reads used memory alone.
BALANCER_VARIANT = Variant(
    "calibration", shedding=True, release=True, wrr=True, ladder_input="used"
)
BALANCER_WRR = {"blackout": 0.0, "update": 0.1, "expiration": 2.0}
CALM, PRESSURED = 0.3, 0.9
SETTLE_S = MEASURE_S = 3.0
RECOVERY_BUDGET_MIB = 96
RECOVERY_START_MIB = 49.0  # measured: bench/recovery.py, the example server before the load
RECOVERY_LOAD_S = 10.0
RECOVERY_CALLERS = 24
PROBE_EVERY_S = 0.2
#: CPU seconds of one Report of the recovery load (one GIL): measured in one bench/recovery.py
#: round with the server's log timed: the 24 Reports started with the load were all answered
#: when overload() returned, 10 s later; processor sharing among 24: 10 / 24.
REPORT_CPU_S = 10.0 / 24


def simulate_balancers(calls_per_s: float, seed: int = 1) -> dict[str, float | None]:
    """The test_balancers run, simulated: backend 0's share and the seconds until even."""
    model = Model(sample_interval=0.1, capacity=100 * MIB, hard_limit_ratio=100.0, cpu_spread=0.0)
    fleet = Fleet(3, BALANCER_VARIANT, model, seed=seed, callers=1, wrr_config=BALANCER_WRR)
    fleet.core_rate = np.array([calls_per_s])
    fleet.noncore_rate = np.array([0.0])
    fleet.pressure_override = {0: CALM, 1: CALM, 2: CALM}
    ticks: list[tuple[float, np.ndarray]] = []
    fleet.observers.append(lambda now: ticks.append((now, fleet.served_by * fleet.dt)))
    pressured_at = SETTLE_S + MEASURE_S
    calm_at = pressured_at + SETTLE_S + MEASURE_S

    def script(f: Fleet) -> Any:
        yield f.env.timeout(pressured_at)
        f.pressure_override[0] = PRESSURED
        yield f.env.timeout(calm_at - pressured_at)
        f.pressure_override[0] = CALM

    fleet.run(calm_at + EVEN_WITHIN_S + 1, script)
    # a tick at time t samples and serves the flow of [t, t + dt); the real count of a window
    # is what was served within it
    measured = sum(c for t, c in ticks if calm_at - MEASURE_S <= t < calm_at)
    share = float(measured[0] / measured.sum())
    even_after = None
    start = calm_at
    while start < calm_at + EVEN_WITHIN_S:
        counts = sum(c for t, c in ticks if start <= t < start + WINDOW_S)
        if isinstance(counts, np.ndarray) and 0 < counts.max() <= EVEN_RATIO * counts.min():
            even_after = start + WINDOW_S - calm_at
            break
        start += WINDOW_S
    return {"pressured_share": share, "even_after_s": even_after}


def recovery_model(peak_ratio: float) -> Model:
    """The example server's numbers (see the module docstring)."""
    per_call = (peak_ratio * RECOVERY_BUDGET_MIB - RECOVERY_START_MIB) / RECOVERY_CALLERS
    return Model(
        capacity=RECOVERY_BUDGET_MIB * MIB,
        hard_limit_ratio=100.0,
        base_live_ratio=RECOVERY_START_MIB / RECOVERY_BUDGET_MIB,
        noncore_call_bytes=per_call * MIB,
        noncore_service_s=REPORT_CPU_S,
        cores=1.0,  # one GIL
        cpu_spread=0.0,
        base_spread=0.0,
    )


def simulate_recovery(peak_ratio: float, watch_s: float, seed: int = 1) -> dict[str, float | None]:
    """bench/recovery.py's ``with`` run, simulated: seconds to the first non-core OK and to
    level <= 1 after the load (``None``: not within ``watch_s``).

    The load starts at a random phase of the sampler (``seed``). As ``overload()`` does, it
    ends when the calls in flight when it stops have finished: at once if the server is
    shedding every call then, else after an admitted ``Report``'s sojourn.
    """
    contract = Contract.load(ROOT / "examples/python/memory_contract.yaml", module="inventory")
    module = dataclasses.replace(contract.module, max_heap_mb=RECOVERY_BUDGET_MIB)
    variant = Variant("calibration", shedding=True, release=True)
    model = recovery_model(peak_ratio)
    fleet = Fleet(1, variant, model, seed=seed, contract=module, callers=1)
    fleet.core_rate = np.array([100.0])  # Ping at 100/s
    fleet.noncore_rate = np.array([0.0])
    load_starts = 2.0 + float(np.random.default_rng(seed).uniform(0, fleet.dt))
    seen: dict[str, float | None] = {"first_ok_s": None, "level_le1_s": None}
    state = {"credit": 0.0, "next": math.inf, "ends": math.inf}

    def probe(now: float) -> None:
        """The probes that fall in this tick see the state this tick's sample left."""
        while state["next"] < now + fleet.dt:
            at, state["next"] = state["next"], state["next"] + PROBE_EVERY_S
            level = int(fleet.level[0])
            if seen["level_le1_s"] is None and level <= 1:
                seen["level_le1_s"] = at - state["ends"]
            if seen["first_ok_s"] is None:
                state["credit"] += 1.0 if level < 3 else float(fleet.admit[0])
                if state["credit"] >= 1.0:
                    seen["first_ok_s"] = at - state["ends"]

    def script(f: Fleet) -> Any:
        yield f.env.timeout(load_starts)
        f.closed_loop = f.closed_loop_callers = RECOVERY_CALLERS
        yield f.env.timeout(RECOVERY_LOAD_S)
        f.closed_loop = 0
        while f.in_non[0] > 0.5:  # overload() returns once the Reports in flight are answered
            yield f.env.timeout(f.dt)
        state["ends"] = state["next"] = f.env.now

    fleet.observers.append(probe)
    fleet.run(load_starts + RECOVERY_LOAD_S + 5 + watch_s, script)
    for key, value in seen.items():
        if value is not None and value > watch_s:
            seen[key] = None
    return seen


RUNS = 5


def simulate_recovery_median(peak_ratio: float, watch_s: float) -> dict[str, float | None]:
    """:func:`simulate_recovery` over :data:`RUNS` sampler phases: the median of each figure
    (a figure not within the watch counts as the watch, as the calibration counts it)."""
    runs = [simulate_recovery(peak_ratio, watch_s, seed) for seed in range(1, RUNS + 1)]
    medians: dict[str, float | None] = {}
    for key in ("first_ok_s", "level_le1_s"):
        values = [watch_s if r[key] is None else r[key] for r in runs]
        middle = float(np.median([v for v in values if v is not None]))
        medians[key] = None if middle >= watch_s else middle
    return medians


def compare(calibration: dict[str, Any] | None = None) -> list[tuple[str, float, dict[str, Any]]]:
    """(name, simulated value, the calibration's summary) for every validated figure; a
    ``None`` (not within the watch) is given as the watch, as the calibration counts it."""
    cal = calibration or json.loads(CALIBRATION.read_text())
    b, r = cal["balancers"], cal["recovery"]
    bal = simulate_balancers(b["calls_per_s"]["median"])
    rec = simulate_recovery_median(r["peak_ratio"]["median"], r["watch_s"])

    def filled(value: float | None, censored_at: float) -> float:
        return censored_at if value is None else value

    return [
        ("balancers.pressured_share", float(bal["pressured_share"] or 0), b["pressured_share"]),
        ("balancers.even_after_s", filled(bal["even_after_s"], EVEN_WITHIN_S), b["even_after_s"]),
        ("recovery.first_ok_s", filled(rec["first_ok_s"], r["watch_s"]), r["first_ok_s"]),
        ("recovery.level_le1_s", filled(rec["level_le1_s"], r["watch_s"]), r["level_le1_s"]),
    ]


def slack(name: str) -> float:
    """How far outside the real interquartile range a simulated figure may fall: the
    simulation's own resolution for that figure (a count window of 0.25 s for the balancers'
    time until even, one 0.5 s sample for the recovery's times; none for a share)."""
    if name == "balancers.even_after_s":
        return WINDOW_S
    if name.startswith("recovery."):
        return 0.5
    return 0.0


def within(value: float, summary: dict[str, Any], slack: float = 0.0) -> bool:
    """Whether ``value`` lies in the interquartile range, widened by ``slack`` (absolute)."""
    return bool(summary["q1"] - slack <= value <= summary["q3"] + slack)


def main() -> int:
    for name, value, summary in compare():
        verdict = "within" if within(value, summary, slack(name)) else "OUTSIDE"
        print(
            f"{name:28s} simulated {value:8.4f}   real median {summary['median']:8.4f} "
            f"IQR [{summary['q1']:.4f}, {summary['q3']:.4f}]  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
