"""Level 3 must end (issues 9 and 22): the example server overloaded, with and without leaving
level 3 on live memory.

Each round starts a fresh example inventory server (sync by default; ``--aio``) under the example
contract with ``max_heap_mb: 96``, runs 24 concurrent ``Report`` callers for 10 s while ``Ping``
runs at 100/s (``examples/python/overload.py``), then calls ``GetStock`` every 0.2 s until one
succeeds or ``--watch`` seconds pass. Two calm siblings (the same server, no load) run beside it,
and a stock ``weighted_round_robin`` client (``bench/wrr_share.py``) pings all three from 3 s
before the load to the end of the watch. Rounds alternate between

* ``without``: the guard with ``disable={"live_exit"}`` — level 3 is left on used memory only
  (release when usage stalls, then half-open shedding: the behavior before issue 22), and
* ``with``: the default guard (level 3 also left on live memory, design §4).

Printed per variant (median over rounds, and every round): seconds from the load's end to the
first successful non-core call and to the first call whose trailers say level 1 or below
(``>W`` when none within the watch), the peak RSS over the budget, RSS when the load ended,
used and live memory at the end of the watch (MiB, from its ``GetPressure``), the calls shed
during the load, and the WRR share of the overloaded backend: the seconds from the load's end
after which its calls per 2 s stay within ±20 % of its siblings' mean, and that ratio over the
watch's last seconds. Usage: python bench/recovery.py [--rounds 2] [--watch 30] [--aio] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from memcontract import wire
from memcontract.pressure import Pressure
from memcontract.top.collect import read_once

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.wrr_share import ShareLog, WrrCalls, even_after  # noqa: E402
from examples.python.inventory_demo.v1 import inventory_demo_pb2 as pb  # noqa: E402
from examples.python.inventory_demo.v1 import inventory_demo_pb2_grpc as pb_grpc  # noqa: E402
from examples.python.overload import first_success, overload  # noqa: E402

BUDGET_MB = 96
CALM_S = 3.0  # seconds the three servers run calm (the WRR client pinging) before the load
VARIANTS = ("without", "with")


def serve(contract: str, variant: str, aio: bool) -> int:
    """Child process: the example server, its guard built for ``variant``."""
    import asyncio

    from examples.python.inventory import Inventory
    from examples.python.server import run_aio, run_sync
    from memcontract import Contract, Guard

    disable = {"live_exit"} if variant == "without" else set()
    guard = Guard(Contract.load(contract, module="inventory"), disable=disable)
    if os.environ.get(TRACE_ENV):
        threading.Thread(target=trace, args=(guard, os.environ[TRACE_ENV]), daemon=True).start()
    inventory = Inventory(guard)
    if aio:
        asyncio.run(run_aio(guard, inventory, "127.0.0.1", 0))
    else:
        run_sync(guard, inventory, "127.0.0.1", 0)
    return 0


TRACE_ENV = "MEMCONTRACT_BENCH_TRACE"


def trace(guard: Any, path: str) -> None:
    """``--trace``: every snapshot the guard publishes, as one JSON line (monotonic time; the
    clock is the machine's, so the parent lines it up with the load's end)."""
    last = None
    with open(f"{path}.{os.getpid()}", "w") as out:
        while True:
            snapshot = guard.snapshot
            if snapshot is not last:
                last, p, v = snapshot, snapshot.pressure, snapshot.wire
                fields = {
                    "t": time.monotonic(),
                    "level": int(p.level),
                    "usage": round(p.usage_ratio, 4),
                    "used_mib": round(p.used_bytes / MIB, 1),
                    "live_mib": None if p.live_bytes is None else round(p.live_bytes / MIB, 1),
                    "plateau": p.plateau_bytes is not None,
                    "version": v.number,
                    "quiet": v.quiet,
                    "told_usage": round(v.usage_ratio, 4),
                    "told_errors": round(v.error_ratio, 4),
                    "rps": round(snapshot.rps, 1),
                    "eps": round(snapshot.eps, 1),
                }
                out.write(json.dumps(fields) + "\n")
                out.flush()
            time.sleep(0.02)  # polling a published object, not synchronising with it


@dataclass
class Round:
    variant: str
    recovered_after: float | None  # seconds from the load's end to the first OK GetStock
    level1_after: float | None  # seconds from the load's end to the first level <= 1
    used_at_rest: float  # MiB, the pressure message's used bytes at the end of the watch
    live_at_rest: float  # MiB, its live bytes (nan where unknown)
    peak_ratio: float  # peak RSS / budget
    rss_at_end: float  # MiB when the load ended
    rss_after: float  # MiB at the end of the watch
    shed: int
    even_after: float | None  # seconds from the load's end until the WRR share stays even
    share_at_rest: float  # backend 0's WRR calls over its siblings' mean, end of the watch
    shares: list[tuple[float, float]]  # (seconds after the load, that ratio over 2 s)
    told: list[Pressure]  # what each backend tells at the end (GetPressure), 0 first
    pid: int  # backend 0's process
    ended_at: float  # monotonic time of the load's end


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def server(variant: str, contract: str, aio: bool) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A child serving the example for ``variant``: (process, address); killed after."""
    command = [sys.executable, __file__, "--serve", variant, "--contract", contract]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [*command, *(["--aio"] if aio else [])],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            port = int(proc.stdout.readline())  # type: ignore[union-attr]
            yield proc, f"127.0.0.1:{port}"
        finally:
            proc.kill()
            proc.wait(10)


def ping(channel: grpc.Channel) -> None:
    pb_grpc.InventoryDemoStub(channel).Ping(pb.PingRequest(), timeout=5)


def one_round(variant: str, contract: str, args: argparse.Namespace) -> Round:
    """Backend 0 overloaded and watched; two calm siblings beside it; a WRR client pinging all
    three from before the load to the end of the watch."""
    with contextlib.ExitStack() as stack:
        started = [stack.enter_context(server(variant, contract, args.aio)) for _ in range(3)]
        proc, address = started[0]
        pings = stack.enter_context(WrrCalls([a for _, a in started], ping))
        shares = stack.enter_context(ShareLog(pings))
        time.sleep(CALM_S)  # the fleet runs calm before the load, as a deployed one does
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.InventoryDemoStub(channel)
            load = overload(stub, callers=args.callers, seconds=args.seconds)
            at_end = rss_mb(proc.pid)
            watch = first_success(stub, load.ended_at, limit=args.watch)
            level1 = watch_level(stub, load.ended_at, args.watch)
        windows = shares.windows(load.ended_at)
        told = [read_once(a).pressure or Pressure() for _, a in started]
        rest = told[0]
        return Round(
            variant,
            watch.first_ok,
            level1,
            rest.used_bytes / MIB,
            float("nan") if rest.live_bytes is None else rest.live_bytes / MIB,
            rss_mb(proc.pid, "VmHWM") / BUDGET_MB,
            at_end,
            rss_mb(proc.pid),
            load.count("Report", "RESOURCE_EXHAUSTED")
            + load.count("GetStock", "RESOURCE_EXHAUSTED"),
            even_after(windows),
            statistics.median(ratio for _, ratio in windows[-3:]) if windows else float("nan"),
            windows,
            told,
            proc.pid,
            load.ended_at,
        )


MIB = 1024 * 1024


def watch_level(stub: Any, since: float, limit: float) -> float | None:
    """Call ``GetStock`` every 0.2 s until ``limit`` s after ``since``: when its trailers first
    said level 1 or below (or carried no keys: a quiet server at level 0, design §5)."""
    first: float | None = None
    while (now := time.monotonic()) - since < limit:
        try:
            _, call = stub.GetStock.with_call(pb.GetStockRequest(sku="sku-0001"), timeout=5)
            trailers = call.trailing_metadata()
        except grpc.RpcError as err:
            trailers = err.trailing_metadata()  # type: ignore[attr-defined]
        seen = wire.decode(trailers).pressure
        if first is None and (seen is None or seen.level <= 1):
            first = now - since
        time.sleep(0.2)  # pacing the probe calls
    return first


def print_trace(path: Path, ended_at: float) -> None:
    """Backend 0's snapshots from 1 s before the load's end, where the level or the version
    of what its keys say changed."""
    last = None
    for line in path.read_text().splitlines():
        row = json.loads(line)
        at = row.pop("t") - ended_at
        key = (row["level"], row["version"])
        if at >= -1.0 and key != last:
            print(f"    {at:+6.2f}s {json.dumps(row)}", flush=True)
        last = key


def median_or_none(values: list[float | None]) -> float | None:
    """The median, or None when any round never got there."""
    return None if None in values else statistics.median(v for v in values if v is not None)


def seconds_text(value: float | None, watch: float) -> str:
    return f">{watch:.0f}" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds per variant")
    parser.add_argument("--callers", type=int, default=24, help="concurrent Report callers")
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration")
    parser.add_argument("--watch", type=float, default=30.0, help="seconds watched after it")
    parser.add_argument("--aio", action="store_true", help="the grpc.aio server")
    parser.add_argument("--quick", action="store_true", help="1 round, 5 s load, 20 s watch")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="print what backend 0 published after the load (each change of level or of what"
        " its keys say)",
    )
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--contract", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.contract, args.serve, args.aio)
    if args.quick:
        args.rounds, args.seconds, args.watch = 1, 5.0, 20.0
    text = (ROOT / "examples/python/memory_contract.yaml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        if args.trace:
            os.environ[TRACE_ENV] = str(Path(tmp) / "trace")
        contract = Path(tmp) / "memory_contract.yaml"
        contract.write_text(text.replace("max_heap_mb: 512", f"max_heap_mb: {BUDGET_MB}", 1))
        rounds: list[Round] = []
        for i in range(args.rounds):
            order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                rounds.append(one_round(variant, str(contract), args))
                r = rounds[-1]
                print(
                    f"round {i + 1} {variant:7s}: first non-core OK "
                    f"{seconds_text(r.recovered_after, args.watch)} s, level <= 1 "
                    f"{seconds_text(r.level1_after, args.watch)} s after the load; "
                    f"at rest used {r.used_at_rest:.0f} MiB, live {r.live_at_rest:.0f} MiB; "
                    f"peak RSS {r.peak_ratio:.2f}x budget; RSS {r.rss_at_end:.0f} MiB at the "
                    f"load's end, {r.rss_after:.0f} MiB {args.watch:.0f} s later; {r.shed} shed; "
                    f"WRR share even {seconds_text(r.even_after, args.watch)} s after the "
                    f"load, {r.share_at_rest:.2f}x its siblings' at rest",
                    flush=True,
                )
                shares = " ".join(f"{at:.0f}s:{ratio:.2f}" for at, ratio in r.shares[::2])
                print(f"  WRR share after the load (2 s windows): {shares}", flush=True)
                told = ", ".join(
                    f"{p.usage_ratio:.0%} (used {p.used_bytes / MIB:.0f}, live "
                    f"{(p.live_bytes or 0) / MIB:.0f} MiB)"
                    for p in r.told
                )
                print(f"  told at the end (backend 0, its siblings): {told}", flush=True)
                if args.trace:
                    print_trace(Path(f"{os.environ[TRACE_ENV]}.{r.pid}"), r.ended_at)
    kind = "aio" if args.aio else "sync"
    print(
        f"\n{kind} server, {BUDGET_MB} MiB budget, {args.callers} Report callers for "
        f"{args.seconds:.0f} s + Ping 100/s; median of {args.rounds} round(s):"
    )
    header = f"{'variant':8s} {'first OK after load':>20s} {'level<=1 after':>15s} "
    header += f"{'peak/budget':>12s} {'RSS at end':>11s} {'RSS later':>10s} {'live later':>11s}"
    header += f" {'WRR even after':>15s} {'WRR share at rest':>18s}"
    print(header)
    for variant in VARIANTS:
        mine = [r for r in rounds if r.variant == variant]
        wait = median_or_none([r.recovered_after for r in mine])
        back = median_or_none([r.level1_after for r in mine])
        print(
            f"{variant:8s} {seconds_text(wait, args.watch) + ' s':>20s} "
            f"{seconds_text(back, args.watch) + ' s':>15s} "
            f"{statistics.median(r.peak_ratio for r in mine):>11.2f}x "
            f"{statistics.median(r.rss_at_end for r in mine):>7.0f} MiB "
            f"{statistics.median(r.rss_after for r in mine):>6.0f} MiB "
            f"{statistics.median(r.live_at_rest for r in mine):>7.0f} MiB "
            f"{seconds_text(median_or_none([r.even_after for r in mine]), args.watch) + ' s':>15s} "
            f"{statistics.median(r.share_at_rest for r in mine):>17.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
