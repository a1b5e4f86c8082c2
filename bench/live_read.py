"""What a live-memory read costs the Python sampler on a fragmented heap after a spike.

Builds the heap the issue describes: a spike of ``--objects`` buffers of 600-1000 bytes (glibc
chunks, above pymalloc's 512-byte limit) of which one in four is kept, so the freed chunks
cannot coalesce, then ``gc.collect()`` and ``malloc_trim(0)`` as level 3 does. Then it takes
``--samples`` reads 0.5 s apart on a fake clock, alternating two meters:

* ``every``: ``mallinfo2()`` on every sample (the naive source), and
* ``meter``: :class:`memcontract._live.LiveMeter` as the probe uses it, below level 2 and at
  level 2 and above (glibc throttled to every 5 s below level 2, and to 500 x its own cost; the
  walk on a long-lived thread of its own, which the read wakes and does not wait for).

Between two samples every walk in flight is let finish (the 0.5 s that pass between samples).
Prints p50 / p99 / max per read (ms) and the ratio of p99s, then what the meters' glibc walks
cost on their own thread (each arena's lock is held for its part of that).
Usage: python bench/live_read.py [--objects 400000] [--samples 400]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import time

from memcontract import _live


def fragment(objects: int) -> list[bytes]:
    kept, junk = [], []
    for i in range(objects):
        (kept if i % 4 == 0 else junk).append(bytes(600 + i % 400))
    del junk
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)
    return kept


def quantiles(costs: list[float]) -> tuple[float, float, float]:
    ordered = sorted(costs)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return statistics.median(ordered) * 1e3, p99 * 1e3, ordered[-1] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=400_000)
    parser.add_argument("--samples", type=int, default=400)
    args = parser.parse_args()
    kept = fragment(args.objects)
    mallinfo2 = _live._mallinfo2()
    assert mallinfo2 is not None, "no glibc mallinfo2 here"
    now = [0.0]
    meters = {}
    for name, closely in (("meter, level < 2", False), ("meter, level >= 2", True)):
        meter = _live.LiveMeter(clock=lambda: now[0])
        meter.watch(closely)
        meters[name] = meter
    costs: dict[str, list[float]] = {"every sample": [], **{name: [] for name in meters}}
    walks: list[float] = []  # the meters' glibc walks, on their own thread
    for _ in range(args.samples):  # alternating: one read of each per sample
        start = time.perf_counter()
        mallinfo2()
        costs["every sample"].append(time.perf_counter() - start)
        for name, meter in meters.items():
            start = time.perf_counter()
            meter.read()
            costs[name].append(time.perf_counter() - start)
        for meter in meters.values():  # the time between samples: walks in flight finish
            if meter.walker.walking():
                meter.walker.done.wait()
                walks.append(meter.last_cost)
        now[0] += 0.5
    info = mallinfo2()
    print(
        f"heap: {len(kept)} kept buffers, glibc free {info.fordblks / 2**20:.0f} MiB in "
        f"{info.ordblks} free chunks; {args.samples} samples 0.5 s apart"
    )
    base = quantiles(costs["every sample"])[1]
    for name, values in costs.items():
        p50, p99, worst = quantiles(values)
        print(
            f"{name:18s} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  max {worst:7.3f} ms  "
            f"p99 ratio {p99 / base:.3f}"
        )
    if walks:
        p50, _, worst = quantiles(walks)
        print(
            f"{len(walks)} glibc walks on the meters' own thread: "
            f"p50 {p50:.1f} ms, max {worst:.1f} ms"
        )


if __name__ == "__main__":
    main()
