"""What the guard costs: the sampler's CPU, and a snapshot read per call.

Sampler: rounds alternate between an idle process (baseline) and the same process with a real
guard sampling every 100 ms (candidate); the CPU this process uses over each round is measured
(``time.process_time``), and the difference is reported as percent of one core.
Snapshot: ``guard.level`` / ``guard.pressure`` / ``guard.snapshot`` reads against a plain
attribute read, alternating, in ns per read and as ratios.

Usage: python bench/sampler.py [--seconds 20] [--rounds 4]
Targets (issue 2): sampler <= 0.5 % of a core; snapshot read <= 1 us.
"""

from __future__ import annotations

import argparse
import time
import timeit

from memcontract import Contract, Guard

CONTRACT = "modules: [{name: bench, max_heap_mb: 1024, sample_interval_ms: 100}]"


def cpu_over(seconds: float, guard: Guard | None) -> float:
    """Process CPU seconds used while sleeping ``seconds`` (with the guard running, or not)."""
    if guard is not None:
        guard.start()
    start = time.process_time()
    time.sleep(seconds)
    used = time.process_time() - start
    if guard is not None:
        guard.stop()
    return used


def bench_sampler(seconds: float, rounds: int) -> None:
    per_round = seconds / rounds
    idle = active = 0.0
    guard = Guard(Contract.from_yaml(CONTRACT))
    for i in range(rounds):
        # alternate the order so drift on the machine falls on both sides alike
        pair = (None, guard) if i % 2 == 0 else (guard, None)
        for g in pair:
            used = cpu_over(per_round, g)
            if g is None:
                idle += used
            else:
                active += used
    pct = (active - idle) / seconds * 100
    samples = seconds / guard.module.sample_interval
    print(f"sampler: {seconds:.0f} s per side, {rounds} alternating rounds, 100 ms interval")
    print(f"  idle CPU     {idle * 1000:8.2f} ms")
    print(f"  guard CPU    {active * 1000:8.2f} ms")
    print(f"  sampler cost {pct:8.3f} % of one core   (target <= 0.5 %)")
    print(f"  per sample   {(active - idle) / samples * 1e6:8.1f} us")


def bench_snapshot(number: int = 2_000_000, repeat: int = 5) -> None:
    guard = Guard(Contract.from_yaml(CONTRACT))
    guard.sample_once()

    class Plain:
        def __init__(self) -> None:
            self.level = 0

    plain = Plain()
    cases = {
        "plain attribute (baseline)": lambda: plain.level,
        "guard.snapshot": lambda: guard.snapshot,
        "guard.level": lambda: guard.level,
        "guard.pressure": lambda: guard.pressure,
    }
    best = {name: float("inf") for name in cases}
    for _ in range(repeat):  # alternate the cases round by round
        for name, fn in cases.items():
            best[name] = min(best[name], timeit.timeit(fn, number=number) / number)
    base = best["plain attribute (baseline)"]
    print(f"snapshot reads: best of {repeat} alternating rounds x {number:,} reads")
    for name, t in best.items():
        print(
            f"  {name:28s} {t * 1e9:7.1f} ns   x{t / base:5.2f} of baseline   (target <= 1000 ns)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per side")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    bench_snapshot()
    bench_sampler(args.seconds, args.rounds)


if __name__ == "__main__":
    main()
