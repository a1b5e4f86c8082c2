"""Child process of test_real_memory: a real guard over a real probe while it allocates for real.

Prints one JSON object: the transitions (with the sample number each happened at), the sample
numbers of the allocation and the release, and how many times level 3 ran gc.collect().
"""

from __future__ import annotations

import json
import sys
import threading
import time

from memcontract import Contract, Guard, Level, Pressure
from memcontract.probe import Reading, SystemProbe

CONTRACT = """
version: real-1
modules:
  - name: memchild
    max_heap_mb: 256
    alloc_rate_mb_per_sec: 1000000   # the heap signal alone drives this test
    sample_interval_ms: 100
    ladder: {recover_after: 3}
"""
MIB = 1024 * 1024


class CountingProbe(SystemProbe):
    """The system probe, numbering its reads so transitions can be placed in samples."""

    samples = 0

    def read(self, budget_bytes: int) -> Reading:
        reading = super().read(budget_bytes)
        CountingProbe.samples += 1
        return reading


def wait_for(condition: threading.Event, seconds: float) -> bool:
    return condition.wait(seconds)


def main() -> None:
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    guard = Guard(Contract.from_yaml(CONTRACT), probe=CountingProbe())
    transitions: list[tuple[int, int, int, float]] = []
    at_critical, at_normal = threading.Event(), threading.Event()

    @guard.on_transition
    def record(old: Level, new: Level, p: Pressure) -> None:
        transitions.append((CountingProbe.samples, int(old), int(new), round(p.usage_ratio, 3)))
        if new == Level.CRITICAL:
            at_critical.set()
        if new == Level.NORMAL:
            at_normal.set()

    guard.start()
    at_rest = time.monotonic() + 10
    while CountingProbe.samples < 3:  # a few samples at rest
        assert time.monotonic() < at_rest, "the sampler took no three samples in 10 s"
        time.sleep(0.01)
    allocated_at = CountingProbe.samples
    block = bytearray(b"\x01") * (size_mb * MIB)  # every page written: resident for real
    reached = wait_for(at_critical, 10)
    freed_at = CountingProbe.samples
    del block
    recovered = wait_for(at_normal, 20)
    guard.stop()
    collect = next(a for a in guard.actions if a.name == "collect_garbage")
    print(
        json.dumps(
            {
                "reached_critical": reached,
                "recovered": recovered,
                "allocated_at": allocated_at,
                "freed_at": freed_at,
                "transitions": transitions,
                "gc_collections": getattr(collect, "collections", None),
                "interval_ms": guard.module.sample_interval_ms,
            }
        )
    )


if __name__ == "__main__":
    main()
