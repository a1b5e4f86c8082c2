"""``python -m bench.fleetsim``: every scenario at 10, 100 and 1,000 backends, with and without
memcontract and each lever alone, the sensitivity of the headline to its assumptions, the
validation against the real runs, and the speed figure; writes the ``## Fleet simulation``
section of ``docs/benchmarks.md`` and ``docs/fleetsim.html``.

    .venv/bin/python -m bench.fleetsim                 # everything (~20 min on 2 loaded cores)
    .venv/bin/python -m bench.fleetsim --quick         # 10 and 100 backends, no 1,000 (~3 min)
    .venv/bin/python -m bench.fleetsim --speed         # only: 1,000 backends x 10 min, timed
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import report, validate
from .models import Model
from .scenarios import SCENARIOS
from .sim import VARIANTS, Fleet, Result, Variant

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "docs/benchmarks.md"
PAGE = ROOT / "docs/fleetsim.html"
BEGIN, END = "<!-- fleetsim:begin -->", "<!-- fleetsim:end -->"
SIZES = (10, 100, 1000)
SECONDS = 300.0
SPEED = (1000, 600.0, "surge", "memcontract")


def seeds_for(backends: int) -> tuple[int, ...]:
    """Fleets drawn per cell: three below 1,000 backends (a small fleet's outcome depends on
    which backends are slow), one at 1,000 (already an average over many)."""
    return (1, 2, 3) if backends < 1000 else (1,)


def cell(scenario: str, backends: int, variant: Variant, model: Model, seconds: float) -> Result:
    """One table cell: the median of each figure over :func:`seeds_for` fleets (the first
    fleet's time series for the charts)."""
    runs = [run(scenario, backends, variant, model, seconds, s) for s in seeds_for(backends)]
    if len(runs) == 1:
        return runs[0]

    def median(values: list[float]) -> float:
        return float(statistics.median(values))

    backs = [r.time_back_s for r in runs]
    return dataclasses.replace(
        runs[0],
        oom_kills=round(median([r.oom_kills for r in runs])),
        core_success=median([r.core_success for r in runs]),
        noncore_shed=median([r.noncore_shed for r in runs]),
        noncore_ok=median([r.noncore_ok for r in runs]),
        core_p99_ms=median([r.core_p99_ms for r in runs]),
        time_back_s=None if None in backs else median([b for b in backs if b is not None]),
        herd_max=round(median([r.herd_max for r in runs])),
        wall_s=sum(r.wall_s for r in runs),
    )


def run(
    scenario: str, backends: int, variant: Variant, model: Model, seconds: float, seed: int = 1
) -> Result:
    fleet = Fleet(backends, variant, model, seed=seed)
    began = time.perf_counter()
    fleet.run(seconds, SCENARIOS[scenario])
    result = fleet.result(scenario, seconds)
    result.wall_s = time.perf_counter() - began
    return result


#: The assumptions the headline depends on most, and the values tried (the first is the
#: default). Each row: (what, Model changes, Variant changes).
SENSITIVITY: tuple[tuple[str, dict[str, float | str], dict[str, str | int]], ...] = (
    ("defaults (Python, hard limit 1.25x, 12 MiB per call)", {}, {}),
    ("hard limit 1.10x the budget", {"hard_limit_ratio": 1.10}, {}),
    ("hard limit 1.50x the budget", {"hard_limit_ratio": 1.50}, {}),
    ("server concurrency capped at 16 (a sync server's thread pool)", {"max_in_flight": 16}, {}),
    ("memory per non-core call x0.5 (6 MiB)", {"noncore_call_bytes": 6 * 2**20}, {}),
    ("memory per non-core call x2 (24 MiB)", {"noncore_call_bytes": 24 * 2**20}, {}),
    (
        "retention: Python keeps nothing (py_keep_* = 0)",
        {"py_keep_first": 0.0, "py_keep_later": 0.0},
        {},
    ),
    ("retention: Go runtime (GOGC 100; soft limit with memcontract)", {"runtime": "go"}, {}),
    (
        "the ladder reads used memory alone, no hard limit (before issue 22)",
        {},
        {"ladder_input": "used"},
    ),
    (
        "fail-fast per channel: backends name no instance (before issue 23)",
        {},
        {"fail_fast_key": "target"},
    ),
    ("contract: ladder.confirm.level3 1 (level 3 on one sample)", {}, {"confirm_level3": 1}),
    ("contract: ladder.recover_after 20 (10 s per step down)", {}, {"recover_after": 20}),
    ("contract: orca.rates calls (measured rates)", {}, {"orca_rates": "calls"}),
    (
        "contract: orca.application_utilization none (no memory in the report: round robin here)",
        {},
        {"orca_utilization": "none"},
    ),
)
SENSITIVITY_VARIANTS = ("none", "memcontract", "shedding")


def sensitivity(backends: int, seconds: float, scenarios: Sequence[str]) -> list[str]:
    """Rows of OOM kills (and core success) per assumption, for the chosen scenarios."""
    head = "| assumption | scenario | " + " | ".join(SENSITIVITY_VARIANTS) + " |"
    rows = [head, "|---|---|" + "---:|" * len(SENSITIVITY_VARIANTS)]
    for label, model_changes, variant_changes in SENSITIVITY:
        model = dataclasses.replace(Model(), **model_changes)  # type: ignore[arg-type]
        for scenario in scenarios:
            cells = []
            for name in SENSITIVITY_VARIANTS:
                variant = dataclasses.replace(VARIANTS[name], **variant_changes)
                r = cell(scenario, backends, variant, model, seconds)
                cells.append(f"{r.oom_kills} / {100 * r.core_success:.1f} %")
            rows.append(f"| {label} | {scenario} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    return rows


def validation_rows() -> list[str]:
    rows = [
        "| figure | simulated | real median | real IQR | |",
        "|---|---:|---:|---:|---|",
    ]
    for name, value, summary in validate.compare():
        verdict = "within" if validate.within(value, summary, validate.slack(name)) else "OUTSIDE"
        rows.append(
            f"| {name} | {value:.4g} | {summary['median']:.4g} | "
            f"{summary['q1']:.4g} to {summary['q3']:.4g} | {verdict} |"
        )
    return rows


def speed() -> tuple[float, str]:
    backends, seconds, scenario, variant = SPEED
    r = run(scenario, backends, VARIANTS[variant], Model(), seconds)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return r.wall_s, load


def findings(results: list[Result]) -> str:
    """The headline per scenario at the largest fleet, from the results themselves."""
    size = max(r.backends for r in results)
    lines = [f"**Headline** ({size} backends; OOM kills, core success):"]
    for scenario in SCENARIOS:
        mine = {r.variant: r for r in results if r.scenario == scenario and r.backends == size}
        if not mine:
            continue
        cells = ", ".join(
            f"{name} {r.oom_kills} / {100 * r.core_success:.1f} %" for name, r in mine.items()
        )
        lines.append(f"- `{scenario}`: {cells}.")
    return "\n".join(lines)


def section(
    results: list[Result], sens: list[str], valid: list[str], speed_s: float, load: str
) -> str:
    m = Model()
    core, noncore = m.calm_rates()
    return f"""{BEGIN}
## Fleet simulation

`bench/fleetsim` (issue 27) simulates a fleet of backends of one service and the callers that
balance over it, in SimPy, running memcontract's own decision code through one adapter
(`bench/fleetsim/decisions.py`: the memory ladder over used and live memory and the hard
limit, level 3's `Recovery`, the ORCA report's utilization and rates, the client's
`CalleeTable` fail-fast per backend instance).
Every number of the models is in `bench/fleetsim/models.py` with where it comes from (measured
here with a command, documented, or assumed); requests are flows per tick (0.5 s, the sampler's
interval), not events (`bench/fleetsim/sim.py` says where discrete draws are made). Generated by
`.venv/bin/python -m bench.fleetsim` (this whole section and `docs/fleetsim.html`, its charts).

Calm: each backend at {100 * m.calm_utilization:.0f} % of {m.cores:g} CPUs, {core:.1f} core and
{noncore:.1f} non-core calls/s, {m.base_live_ratio:.0%} of its {m.capacity / 2**20:.0f} MiB budget
live; a non-core call holds {m.noncore_call_bytes / 2**20:.0f} MiB while in flight; cgroup hard
limit {m.hard_limit_ratio:g}x the budget, OOM kill then restart after 10 s doubling
(CrashLoopBackOff) plus {m.ready_delay_s:g} s to ready; callers: min(backends, {m.callers_max}).
Scenarios start at 30 s of a {SECONDS:.0f} s run: `surge` 3x traffic for 60 s (reached in 10 s);
`hot-key` 2x a backend's non-core rate of 4x-memory calls pinned to 2 % of the backends for 120 s
(reached in 30 s); `leak` 5 % of the backends leak to their hard limit in 4 minutes;
`rolling-restart` 10 % at a time. Variants: `none` (round robin, the guard measuring but doing
nothing), `memcontract` (all levers), and each lever alone: `shedding` (level 3 sheds non-core,
half-open recovery), `fail-fast` (the client's `CalleeTable`: a channel fails fast only while
every backend answering it sheds; alone, no backend sheds, so it is `none`), `wrr-orca` (grpc
`weighted_round_robin` over the ORCA report, `rates: headroom`), `gc-release` (the release on
entering level 3 and when it stalls; Go: the soft limit).

Each cell is the median over three fleets drawn with different slow backends (one at 1,000
backends). Columns: OOM kills over the run; core calls answered OK within the 5 s deadline;
non-core calls shed by a backend or failed fast by a caller; non-core answered OK; core p99
latency (a deadline miss counts as 5 s); seconds from the disturbance's end until every backend is
up at level ≤ 1 ("> N": not within the run; "—": a leak has no end); herding: the most callers
whose split of calls moved by 5 % or more (or whose fail-fast state flipped) within one tick.

{report.table(results)}

{findings(results)}

Reading it (the mechanisms, seen in the charts and in traces of single backends): the surge
takes each backend to 120 % of its CPU, so calls in flight, and their memory, grow until
something sheds. **Shedding alone holds the surge** at every size (no OOM kill, every core call
served): level 3 comes before the hard limit (used memory plus the growth margin), sheds every
non-core call, and is left on live memory once the calls in flight are gone (about 2 s after the
surge). **Adding `weighted_round_robin` over the default report (`orca.rates: headroom`) undoes
it**: a backend just out of level 3 reports its live usage (about 40 %), a weight fifty times or
more that of its neighbours still at level 3 (headroom 0.01-0.05), so within one weight update
every caller moves its load onto the few backends that recovered, they reach the hard limit
faster than a 0.5 s sampler sees them climb, and are killed; the kills then cascade (the
`memcontract` and `wrr-orca` rows). With `orca.rates: calls`, or no memory in the report, the
same levers kill nothing at 100 backends (sensitivity), and so does failing fast per channel
(before issue 23) which takes load off the whole service. A hot key is absorbed by weighted
round robin (the other calls move off the hot backends); shedding alone cannot save a backend
whose pinned calls alone exceed it. No lever prevents a leak's kills (`on_stuck: recycle` would
restart the process earlier, which is not simulated). Herding: every caller rebuilds its picker
in the same tick when a backend goes or comes back, so a kill or a restart batch moves all
callers at once.

**Sensitivity** (the surge at 100 backends, `OOM kills / core success` per variant): the
headline against the assumptions it depends on most, and against two contract settings.

{chr(10).join(sens)}

**Validated** against the real runs of `tests/test_balancers.py`'s setup and `bench/recovery.py`
(`bench/fleetsim/calibration.json`, regenerated by `.venv/bin/python -m bench.fleetsim.calibrate`,
about 4 minutes; `tests/test_fleetsim.py` checks these):

{chr(10).join(valid)}

**Speed**: {SPEED[0]} backends x {SPEED[1] / 60:.0f} simulated minutes (`{SPEED[2]}`, `{SPEED[3]}`)
took {speed_s:.1f} s (load average {load}; `.venv/bin/python -m bench.fleetsim --speed`).
{END}"""


def write_section(text: str) -> None:
    """Replace the section between its markers, or append it (another branch may create the
    file: the section keeps to its markers)."""
    current = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    BENCHMARKS.parent.mkdir(exist_ok=True)
    BENCHMARKS.write_text(updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 100 backends only")
    parser.add_argument("--speed", action="store_true", help="only the timing run")
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--no-write", action="store_true", help="print, write nothing")
    args = parser.parse_args(argv)
    if args.speed:
        wall, load = speed()
        print(f"{SPEED[0]} backends x {SPEED[1]:.0f} s: {wall:.1f} s (load average {load})")
        return 0
    sizes = SIZES[:2] if args.quick else SIZES
    results = []
    for scenario in SCENARIOS:
        for backends in sizes:
            for variant in VARIANTS.values():
                r = cell(scenario, backends, variant, Model(), args.seconds)
                results.append(r)
                print(report.table([r]).splitlines()[-1], f"({r.wall_s:.1f} s)", flush=True)
    sens = sensitivity(100, args.seconds, ("surge",))
    valid = validation_rows()
    print("\n".join(valid))
    wall, load = speed()
    print(f"speed: {wall:.1f} s (load average {load})")
    text = section(results, sens, valid, wall, load)
    if args.no_write:
        print(text)
        return 0
    write_section(text)
    PAGE.write_text(report.page(results, 100, text))
    print(f"wrote {BENCHMARKS} (## Fleet simulation) and {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
