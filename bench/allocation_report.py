"""What an allocation report costs an asyncio event loop, with ~1.5 M traced objects.

A heartbeat task on the loop wakes every 5 ms and records how late it woke; the longest delay is
the loop's stall. With ~1.5 M live blocks allocated under ``tracemalloc`` (the live traces a
heavily loaded service holds), rounds alternate between

* ``before``: the report as the sampler used to take it, on the loop:
  ``tracemalloc.take_snapshot().statistics("lineno")[:5]``;
* ``after``: :class:`memcontract.actions.SampleAllocations`' report, on its worker thread
  (snapshot, then at most ``max_traces`` traces grouped).

Printed per variant (median over rounds): the loop's longest stall, the report's wall time and
the peak RSS the report added. Usage: python bench/allocation_report.py [--objects 750000]
[--rounds 2] (750,000 tuples of an int: ~1.5 M traced blocks).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from memcontract.actions import SampleAllocations
from memcontract.pressure import Level, Pressure


def rss_mb(key: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Make VmHWM start again from the current RSS (Linux: 5 > /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


async def measure(start: Callable[[], Callable[[], bool]]) -> tuple[float, float, float]:
    """(longest loop stall s, report wall s, RSS added MiB) while the report started by
    ``start()`` runs; ``start`` returns a function that says whether it is done."""
    stalls: list[float] = []
    done = False

    async def heartbeat() -> None:
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            stalls.append(time.perf_counter() - before - 0.005)

    beat = asyncio.get_running_loop().create_task(heartbeat())
    await asyncio.sleep(0.05)
    reset_peak_rss()
    rss, began = rss_mb(), time.perf_counter()
    finished = start()
    while not finished():
        await asyncio.sleep(0.005)
    took = time.perf_counter() - began
    peak = rss_mb("VmHWM")
    await asyncio.sleep(0.05)
    done = True
    await beat
    return max(stalls), took, peak - rss


def before() -> Callable[[], bool]:
    tracemalloc.take_snapshot().statistics("lineno")[:5]  # on the loop, as the old tick did
    return lambda: True


def after(action: SampleAllocations) -> Callable[[], bool]:
    action.tick(Pressure(level=Level.DEGRADED))  # the sample after the window opened
    worker = action.worker
    assert worker is not None
    return lambda: not worker.is_alive()


async def one_round(name: str, objects: int) -> tuple[float, float, float, int]:
    """Trace ``objects`` live tuples as the variant would, then measure its report."""
    action = SampleAllocations()
    if name == "after":
        action.engage(Pressure(level=Level.DEGRADED))  # its own window: it starts tracing
    else:
        tracemalloc.start(1)  # the old action traced for the whole episode
    keep = [(i,) for i in range(objects)]  # two traced blocks each (the tuple and the int)
    traced = tracemalloc.get_traced_memory()[0]
    stall, took, added = await measure(before if name == "before" else lambda: after(action))
    action.release()
    tracemalloc.stop()
    del keep
    gc.collect()
    return stall, took, added, traced


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--objects", type=int, default=750_000, help="live tuples (2 traced blocks each)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds per variant")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float, int]]] = {"before": [], "after": []}
    for i in range(args.rounds):
        for name in ("before", "after") if i % 2 == 0 else ("after", "before"):
            results[name].append(await one_round(name, args.objects))
    traced_mib = results["after"][0][3] / 1048576
    print(
        f"{args.objects} live tuples ({2 * args.objects} traced blocks, {traced_mib:.0f} MiB "
        f"traced); median of {args.rounds} round(s)"
    )
    print(
        f"{'variant':8s} {'longest loop stall':>19s} {'report wall':>12s} {'peak RSS added':>15s}"
    )
    for name, rows in results.items():
        stall = statistics.median(r[0] for r in rows)
        took = statistics.median(r[1] for r in rows)
        added = statistics.median(r[2] for r in rows)
        print(f"{name:8s} {stall * 1000:>16.0f} ms {took:>10.2f} s {added:>11.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
