"""The real runs the simulation is checked against, written to ``calibration.json``.

Two real setups, each run ``--rounds`` times (medians and interquartile ranges kept):

* **balancers** — ``tests/test_balancers.py``'s setup, unchanged (its ``Backend`` and
  ``three_backends``): three Python backends with the real guard and interceptors, a FakeProbe
  at 30 % usage, grpcio's stock ``weighted_round_robin`` (blackout 0 s, weight update 0.1 s,
  expiration 2 s, per-call ORCA trailers), 4 threads calling ``Health/Check``. Backend 0 is
  set to 90 % for 3 s, then its calls are counted for 3 s (its share of the calls); then it is
  set back to 30 % and calls are counted in 0.25 s windows until one is even (the largest
  count at most 1.5x the smallest): the seconds from the change to that window's end.
* **recovery** — ``bench/recovery.py``'s setup, unchanged (its child server, ``with``
  variant: the example server under a 96 MiB budget; 24 ``Report`` callers for 10 s and
  ``Ping`` at 100/s): every 0.2 s after the load, a ``GetStock`` (non-core) and a ``Ping``
  (whose trailers carry ``x-memory-level``), for ``--watch`` seconds: the seconds from the
  load's end to the first successful ``GetStock``, and to the first level <= 1 (``null`` when
  not within the watch: the figure is then "more than ``watch``").

Regenerate (about 4 minutes; rerun when the ladder, recovery or peers change)::

    .venv/bin/python -m bench.fleetsim.calibrate            # --rounds 5, writes calibration.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[2]
CALIBRATION = Path(__file__).with_name("calibration.json")
WINDOW_S = 0.25
EVEN_RATIO = 1.5
EVEN_WITHIN_S = 12.0


def summary(values: list[float | None], censored_at: float | None = None) -> dict[str, Any]:
    """Median and quartiles; a ``None`` (not within the watch) counts as ``censored_at``."""
    filled = [censored_at if v is None else v for v in values]
    numbers = sorted(float(v) for v in filled if v is not None)
    q1, median, q3 = (
        statistics.quantiles(numbers, n=4, method="inclusive") if len(numbers) > 1 else numbers * 3
    )
    return {
        "median": median,
        "q1": q1,
        "q3": q3,
        "runs": values,
        "censored_at": censored_at,
    }


# --- balancers --------------------------------------------------------------------------------


def balancer_round() -> dict[str, float | None]:
    """One run of the test_balancers setup: calls/s, backend 0's share, seconds to even."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tests import test_balancers as tb

    with tb.three_backends() as backends:
        target = "ipv4:" + ",".join(b.address for b in backends)
        config = json.dumps({"loadBalancingConfig": [{"weighted_round_robin": tb.WRR}]})
        stop = threading.Event()
        with grpc.insecure_channel(target, options=[("grpc.service_config", config)]) as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            def caller() -> None:
                while not stop.is_set():
                    with contextlib.suppress(grpc.RpcError):
                        stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    stop.wait(0.005)

            threads = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
            for thread in threads:
                thread.start()
            try:
                time.sleep(tb.SETTLE_S)
                calm = tb.served(backends, tb.MEASURE_S)
                backends[0].probe.set(usage=tb.PRESSURED)
                time.sleep(tb.SETTLE_S)
                pressured = tb.served(backends, tb.MEASURE_S)
                backends[0].probe.set(usage=tb.CALM)
                changed = time.monotonic()
                even_after = None
                while time.monotonic() - changed < EVEN_WITHIN_S:
                    counts = tb.served(backends, WINDOW_S)
                    if min(counts) > 0 and max(counts) <= EVEN_RATIO * min(counts):
                        even_after = time.monotonic() - changed
                        break
            finally:
                stop.set()
                for thread in threads:
                    thread.join(10)
    return {
        "calls_per_s": sum(calm) / tb.MEASURE_S,
        "pressured_share": pressured[0] / sum(pressured),
        "even_after_s": even_after,
    }


# --- recovery ---------------------------------------------------------------------------------


def recovery_round(contract: str, watch_s: float) -> dict[str, float | None]:
    """One run of bench/recovery.py's ``with`` variant, watched for level and first OK."""
    from bench import recovery as rb
    from examples.python.inventory_demo.v1 import inventory_demo_pb2 as pb
    from examples.python.inventory_demo.v1 import inventory_demo_pb2_grpc as pb_grpc
    from examples.python.overload import overload

    command = [sys.executable, rb.__file__, "--serve", "with", "--contract", contract]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.InventoryDemoStub(channel)
                load = overload(stub, callers=24, seconds=10.0)
                peak = rb.rss_mb(proc.pid, "VmHWM") / rb.BUDGET_MB
                first_ok, level_low = watch(stub, pb, load.ended_at, watch_s)
        finally:
            proc.kill()
            proc.wait(10)
    return {"first_ok_s": first_ok, "level_le1_s": level_low, "peak_ratio": peak}


def watch(stub: Any, pb: Any, since: float, limit: float) -> tuple[float | None, float | None]:
    """Every 0.2 s: GetStock (first OK) and Ping (first level <= 1 in its trailers, or none)."""
    first_ok = level_low = None
    while (now := time.monotonic()) - since < limit and (first_ok is None or level_low is None):
        if first_ok is None and call_status(lambda: stub.GetStock.with_call(
            pb.GetStockRequest(sku="sku-0001"), timeout=5
        ))[0] == "OK":  # fmt: skip
            first_ok = now - since
        if level_low is None:
            _, trailers = call_status(lambda: stub.Ping.with_call(pb.PingRequest(), timeout=5))
            level = next((str(v) for k, v in trailers if k == "x-memory-level"), "")
            # no key at all: a quiet server (level 0) that said so already (design §5)
            if not level or (level.isdigit() and int(level) <= 1):
                level_low = now - since
        time.sleep(0.2)
    return first_ok, level_low


def call_status(call: Callable[[], Any]) -> tuple[str, tuple[tuple[str, Any], ...]]:
    try:
        _, rpc = call()
        return "OK", tuple(rpc.trailing_metadata() or ())
    except grpc.RpcError as err:
        return err.code().name, tuple(err.trailing_metadata() or ())  # type: ignore[attr-defined]


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--watch", type=float, default=30.0, help="seconds watched after a load")
    parser.add_argument("--out", type=Path, default=CALIBRATION)
    parser.add_argument("--only", choices=("balancers", "recovery"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    data: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.only != "recovery":
        rounds = []
        for i in range(args.rounds):
            rounds.append(balancer_round())
            print(f"balancers round {i + 1}: {rounds[-1]}", flush=True)
        data["balancers"] = {
            "setup": "tests/test_balancers.py: 3 backends, grpcio weighted_round_robin "
            "(blackout 0 s, update 0.1 s, expiration 2 s), 4 Health/Check threads, "
            "sample_interval_ms 100, backend 0 at 0.9 usage then back to 0.3",
            "calls_per_s": summary([r["calls_per_s"] for r in rounds]),
            "pressured_share": summary([r["pressured_share"] for r in rounds]),
            "even_after_s": summary([r["even_after_s"] for r in rounds], EVEN_WITHIN_S),
            "window_s": WINDOW_S,
            "even_ratio": EVEN_RATIO,
        }
    if args.only != "balancers":
        from bench import recovery as rb

        text = (ROOT / "examples/python/memory_contract.yaml").read_text()
        rounds = []
        with tempfile.TemporaryDirectory() as tmp:
            contract = Path(tmp) / "memory_contract.yaml"
            budget = f"max_heap_mb: {rb.BUDGET_MB}"
            contract.write_text(text.replace("max_heap_mb: 512", budget, 1))
            for i in range(args.rounds):
                rounds.append(recovery_round(str(contract), args.watch))
                print(f"recovery round {i + 1}: {rounds[-1]}", flush=True)
        data["recovery"] = {
            "setup": "bench/recovery.py 'with': example server, 96 MiB budget, 24 Report "
            "callers for 10 s, Ping 100/s; GetStock and Ping every 0.2 s after the load",
            "first_ok_s": summary([r["first_ok_s"] for r in rounds], args.watch),
            "level_le1_s": summary([r["level_le1_s"] for r in rounds], args.watch),
            "peak_ratio": summary([r["peak_ratio"] for r in rounds]),
            "watch_s": args.watch,
        }
    data["generated"] = {
        "command": ".venv/bin/python -m bench.fleetsim.calibrate --rounds "
        f"{args.rounds} --watch {args.watch:g}",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
