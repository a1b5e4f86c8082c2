"""Fork safety (issue 10, item 4), in child processes of their own (forking the test process,
which holds gRPC objects, would be unsafe): preforked workers each report their own memory and
keep sampling, and a child forked while the sampler holds its lock can stop and restart the
guard."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from typing import Any

import grpc

from memcontract import Pressure, wire

from .forkchild import MIB
from .forkchild import __file__ as CHILD


def lines(stream: Any, count: int, seconds: float = 60) -> list[dict[str, Any]]:
    """``count`` JSON lines from ``stream`` within ``seconds`` (a reader thread: no hang)."""
    got: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [got.put(line) for line in stream], daemon=True).start()
    deadline = time.monotonic() + seconds
    return [
        json.loads(got.get(timeout=max(0.1, deadline - time.monotonic()))) for _ in range(count)
    ]


def newer_pressure(port: int, than: float, seconds: float = 10) -> Pressure:
    """The pressure of a worker once it carries a sample taken after ``than``."""
    deadline = time.monotonic() + seconds
    while (pressure := pressure_of(port)).sampled_at <= than and time.monotonic() < deadline:
        time.sleep(0.01)
    return pressure


def named_pressure_of(port: int) -> tuple[Pressure, int]:
    """A call to a worker; the pressure in its trailers and the instance they name."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        _, call = channel.unary_unary("/fork.Echo/Echo").with_call(b"x", timeout=10)
    decoded = wire.decode(tuple(call.trailing_metadata()))
    assert decoded.pressure is not None
    return decoded.pressure, decoded.instance_id


def pressure_of(port: int) -> Pressure:
    """A call to a worker; the pressure in its trailers."""
    return named_pressure_of(port)[0]


def test_preforked_workers_each_report_their_own_memory_and_keep_sampling() -> None:
    parent = subprocess.Popen(
        [sys.executable, CHILD, "prefork", "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdin is not None and parent.stdout is not None
    try:
        workers = sorted(lines(parent.stdout, 2), key=lambda w: w["worker"])
        named = [named_pressure_of(w["port"]) for w in workers]
        first = [pressure for pressure, _ in named]
        # Each worker's sampler runs: a later call carries a newer sample (polled, 10 s at most).
        later = [
            newer_pressure(w["port"], p.sampled_at) for w, p in zip(workers, first, strict=True)
        ]
    finally:
        parent.stdin.close()
        parent.wait(30)
    for worker, before, after in zip(workers, first, later, strict=True):
        # the worker's own resident memory (150 / 300 MiB written), not its parent's
        assert after.used_bytes >= worker["allocated_mb"] * MIB, (worker, after)
        assert after.sampled_at > before.sampled_at, worker  # its sampler runs
    assert later[1].used_bytes - later[0].used_bytes >= 100 * MIB  # each its own
    # each worker is an instance of its own, named from its first call on
    instances = {instance for _, instance in named}
    assert len(instances) == 2 and 0 not in instances


def test_a_child_forked_while_the_sampler_holds_its_lock_can_restart_the_guard() -> None:
    out = subprocess.run(
        [sys.executable, CHILD, "locks", "40"], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"forks": 40, "hung": 0}, result
