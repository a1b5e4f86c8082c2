"""Overload the example server, then watch it come back (the run of issue 9).

Concurrent ``Report`` callers (non-core, memory-hungry) while ``Ping`` (core) runs; when the
load stops, ``GetStock`` (non-core) is called until it succeeds. From the repository root, with
a server running::

    python -m examples.python.overload --target 127.0.0.1:50061 --callers 24 --seconds 10

prints the calls by method and status during the load, then the seconds from the end of the
load to the first successful ``GetStock`` (or that none succeeded within ``--watch`` seconds).
The test of issue 9 and ``bench/recovery.py`` drive a server subprocess with these functions.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc

from .inventory_demo.v1 import inventory_demo_pb2 as pb
from .inventory_demo.v1 import inventory_demo_pb2_grpc as pb_grpc

SHED = grpc.StatusCode.RESOURCE_EXHAUSTED


@dataclass
class Overload:
    """What the load saw: calls by ``(method, status name)``, and when it ended (monotonic)."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    ended_at: float = 0.0

    def count(self, method: str, status: str = "") -> int:
        """Calls of ``method`` (with ``status``, e.g. ``"OK"``; all when empty)."""
        return sum(n for (m, s), n in self.calls.items() if m == method and status in ("", s))


def overload(
    stub: pb_grpc.InventoryDemoStub,
    *,
    callers: int = 24,
    seconds: float = 10.0,
    rows: int = 0,
    ping_per_sec: float = 100.0,
    until: Callable[[Overload], bool] | None = None,
) -> Overload:
    """``callers`` threads call ``Report`` back to back, one thread pings, for ``seconds`` (or
    until ``until(result)`` holds, checked every 0.1 s); returns the counts."""
    result = Overload()
    lock = threading.Lock()
    done = threading.Event()

    def record(method: str, call: Callable[[], object]) -> None:
        try:
            call()
            status = "OK"
        except grpc.RpcError as err:
            status = err.code().name
        with lock:
            result.calls[(method, status)] += 1

    def report() -> None:
        request = pb.ReportRequest(rows=rows)
        while not done.is_set():
            record("Report", lambda: sum(1 for _ in stub.Report(request, timeout=15)))

    def ping() -> None:
        while not done.wait(1.0 / ping_per_sec):
            record("Ping", lambda: stub.Ping(pb.PingRequest(), timeout=5))

    threads = [threading.Thread(target=report, daemon=True) for _ in range(callers)]
    threads.append(threading.Thread(target=ping, daemon=True))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (until is not None and until(result)):
        time.sleep(0.1)
    done.set()
    for thread in threads:
        thread.join(30)
    result.ended_at = time.monotonic()
    return result


@dataclass
class Watch:
    """The calls after the load: seconds to the first success (None: none), and every
    ``(seconds after the load, status name, x-memory-level)`` seen."""

    first_ok: float | None
    seen: list[tuple[float, str, str]]


def first_success(
    stub: pb_grpc.InventoryDemoStub, since: float, *, limit: float = 15.0, every: float = 0.2
) -> Watch:
    """Call ``GetStock`` every ``every`` seconds until one succeeds or ``limit`` seconds have
    passed since ``since`` (monotonic)."""
    seen: list[tuple[float, str, str]] = []
    while (now := time.monotonic()) - since < limit:
        try:
            _, call = stub.GetStock.with_call(pb.GetStockRequest(sku="sku-0001"), timeout=5)
            status, trailers = "OK", call.trailing_metadata()
        except grpc.RpcError as err:
            status, trailers = err.code().name, err.trailing_metadata()  # type: ignore[attr-defined]
        level = next((str(v) for k, v in trailers or () if k == "x-memory-level"), "?")
        seen.append((now - since, status, level))
        if status == "OK":
            return Watch(now - since, seen)
        time.sleep(every)
    return Watch(None, seen)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.python.overload")
    parser.add_argument("--target", default="127.0.0.1:50061", help="the inventory server")
    parser.add_argument("--callers", type=int, default=24, help="concurrent Report callers")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the load lasts")
    parser.add_argument("--rows", type=int, default=0, help="rows per Report (0: default)")
    parser.add_argument("--watch", type=float, default=60.0, help="seconds to wait after it")
    args = parser.parse_args(argv)
    with grpc.insecure_channel(args.target) as channel:
        stub = pb_grpc.InventoryDemoStub(channel)
        load = overload(stub, callers=args.callers, seconds=args.seconds, rows=args.rows)
        for (method, status), n in sorted(load.calls.items()):
            print(f"{method} {status}: {n}")
        watch = first_success(stub, load.ended_at, limit=args.watch)
    if watch.first_ok is None:
        last = watch.seen[-1] if watch.seen else None
        print(f"no GetStock succeeded within {args.watch:.0f} s of the load's end (last: {last})")
        return 1
    print(f"first GetStock OK {watch.first_ok:.1f} s after the load's end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
