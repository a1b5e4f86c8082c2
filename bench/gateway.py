"""What a hop through ``memcontract gateway`` costs: client -> upstream directly vs client ->
gateway -> the same upstream, in one run, alternating rounds.

Upstreams: a Python grpc.aio echo server (child process; 100-byte unary ``Echo`` and a
10-message server stream ``Stream``) and the Go inventory service (``GetItem``,
``ListItems``). Each upstream gets its own gateway process, run as users run it
(``memcontract gateway``) with the pressure logic on: its own contract and guard (sampler every
100 ms), the upstream's trailers read into the peer table on every call. The echo upstream
answers with memcontract's trailer keys (a constant set, as a memcontract server sends them),
the Go one with its real interceptor's. A third gateway, ``naive-bidi``, knows no arities (no
descriptor set, no reflection): every call goes as a raw bidi stream, to show what the
arity-aware unary path saves. The issue's reference points run beside them: ``minimal-proxy``
(an arity-aware unary grpc.aio proxy with no pressure logic) and ``sync-minimal-proxy`` (the
same in sync grpcio), each forwarding to the same echo upstream.

Figures (medians over rounds; ratios are per-round ratios, then the median):

* ``added p50``: p50 at concurrency 1 through the gateway minus p50 direct (one hop); the two
  are measured in turn, call by call, so both see the same moments of a busy machine.
* ``gw cpu/call``: the gateway process's CPU (user+system) per forwarded call at concurrency 32.
* ``floor``: a bare grpc.aio server's CPU per served call plus a bare grpc.aio client's CPU per
  call, direct, same run (the bare echo port of the child; this process is the client): what
  any proxy built on grpcio spends at least, since it is both.

Usage::

    .venv/bin/python bench/gateway.py                # 5 rounds, about 4 minutes
    .venv/bin/python bench/gateway.py --quick        # smoke run
    .venv/bin/python bench/gateway.py --no-go        # without the Go upstream

Issue 13: Must: added p50 <= 1.0 ms and CPU <= 1.5x the floor (aio echo, unary); targets
<= 0.5 ms and <= 1.15x. PASS/MISS is printed; the exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import psutil
from google.protobuf import descriptor_pb2

from memcontract import Pressure, wire

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(100))
STREAM_LEN = 10
sys.path.insert(0, str(REPO / "examples" / "go" / "gen" / "python"))


# --- the echo upstream (a child process) -----------------------------------------------------


def _echo_handlers(trailers: tuple[tuple[str, Any], ...]) -> grpc.GenericRpcHandler:
    async def echo(request: bytes, context: Any) -> bytes:
        if trailers:
            context.set_trailing_metadata(trailers)
        return request

    async def stream(request: bytes, context: Any) -> Any:
        if trailers:
            context.set_trailing_metadata(trailers)
        for _ in range(STREAM_LEN):
            yield request

    return grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
        },
    )


async def _child() -> None:
    # Two servers in one process: "bare" (the floor) and "reporting" (memcontract's keys in
    # every trailer, as the gateway's upstream). Ports on stdout; stops when stdin closes.
    reporting = wire.encode_trailers(Pressure(0.42, used_bytes=42 << 20, capacity_bytes=100 << 20))
    ports = {}
    servers = []
    for name, trailers in (("bare", ()), ("reporting", reporting)):
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_echo_handlers(trailers),))
        ports[name] = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
    print(json.dumps(ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for server in servers:
        await server.stop(0)


async def _minimal_proxy(upstream: str) -> None:
    # The reference point of the issue: an arity-aware unary aio proxy with nothing else (no
    # metadata filtering, no headers, no deadline, no pressure logic). Port on stdout.
    channel = grpc.aio.insecure_channel(upstream)
    forward = channel.unary_unary("/bench.Echo/Echo")

    async def echo(request: bytes, context: Any) -> bytes:
        call = forward(request, metadata=context.invocation_metadata())
        response: bytes = await call
        context.set_trailing_metadata(tuple(await call.trailing_metadata()))
        return response

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(json.dumps({"port": port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(0)


def _sync_minimal_proxy(upstream: str) -> None:
    # The third reference point: the minimal unary proxy in sync grpcio (a thread per
    # call, the forwarded call made blocking on that thread). Port on stdout.
    from concurrent import futures

    forward = grpc.insecure_channel(upstream).unary_unary("/bench.Echo/Echo")

    def echo(request: bytes, context: Any) -> bytes:
        response, call = forward.with_call(request, metadata=context.invocation_metadata())
        context.set_trailing_metadata(call.trailing_metadata())
        return response

    server = grpc.server(futures.ThreadPoolExecutor(32))
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"port": port}), flush=True)
    sys.stdin.read()
    server.stop(0)


def echo_descriptor_set(path: Path) -> None:
    """A FileDescriptorSet naming bench.Echo's arities (for ``--descriptor-set``)."""
    file = descriptor_pb2.FileDescriptorProto(name="bench.proto", package="bench", syntax="proto3")
    file.message_type.add(name="Raw")
    service = file.service.add(name="Echo")
    service.method.add(name="Echo", input_type=".bench.Raw", output_type=".bench.Raw")
    service.method.add(
        name="Stream", input_type=".bench.Raw", output_type=".bench.Raw", server_streaming=True
    )
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString())


# --- processes -------------------------------------------------------------------------------


class Proc:
    """A child process whose first stdout line is JSON; CPU read from /proc via psutil."""

    def __init__(self, argv: list[str]) -> None:
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.popen.stdout is not None
        self.first: dict[str, Any] = json.loads(self.popen.stdout.readline())
        self.ps = psutil.Process(self.popen.pid)
        # The Go server prints a line per call: keep reading so it never blocks on a full pipe.
        threading.Thread(target=self.drain, daemon=True).start()

    def drain(self) -> None:
        """Read (and drop) the rest of the child's output."""
        assert self.popen.stdout is not None
        self.popen.stdout.read()

    def cpu(self) -> float:
        """User + system CPU seconds so far."""
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def start_gateway(upstream: str, contract: Path, *extra: str) -> tuple[Proc, str]:
    argv = [
        sys.executable,
        "-m",
        "memcontract.cli",
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        upstream,
        "--contract",
        str(contract),
        *extra,
    ]
    proc = Proc(argv)
    return proc, f"127.0.0.1:{proc.first['port']}"


def start_go_binary(tmp: Path, name: str) -> Path | None:
    """``go build`` one example command into ``tmp``; its path, or None without Go."""
    built = subprocess.run(
        ["go", "build", "-o", f"{tmp}{os.sep}", f"./cmd/{name}"],
        cwd=REPO / "examples" / "go",
        capture_output=True,
        check=False,
    )
    if built.returncode != 0:
        print(f"bench: no Go {name} (go build failed)", file=sys.stderr)
        return None
    return tmp / name


def start_go(tmp: Path) -> tuple[Proc, str] | None:
    binary = start_go_binary(tmp, "inventory")
    if binary is None:
        return None
    proc = Proc([str(binary), "-listen", "127.0.0.1:0"])
    return proc, f"127.0.0.1:{proc.first['port']}"


# --- measuring -------------------------------------------------------------------------------

Call = Callable[[], Awaitable[Any]]
# Each variant through a proxy, and the direct variant it is compared with.
PAIRS = {
    "gateway": "direct",
    "naive-bidi": "direct",
    "minimal-proxy": "direct",
    "sync-minimal-proxy": "direct",
    "gateway-stream": "direct-stream",
    "go-gateway": "go-direct",
    "go-gateway-stream": "go-direct-stream",
}


def make_calls(channel: grpc.aio.Channel, kind: str) -> Call:
    """One call of the workload ``kind`` on ``channel``."""
    if kind == "echo-unary":
        mc = channel.unary_unary("/bench.Echo/Echo")
        return lambda: mc(PAYLOAD, timeout=10)
    if kind == "echo-stream":
        ms = channel.unary_stream("/bench.Echo/Stream")

        async def stream() -> None:
            async for _ in ms(PAYLOAD, timeout=10):
                pass

        return stream
    from inventory.v1 import inventory_pb2  # type: ignore[import-not-found]

    if kind == "go-unary":
        mg = channel.unary_unary("/inventory.v1.InventoryService/GetItem")
        request = inventory_pb2.GetItemRequest(sku="sku-1").SerializeToString()
        return lambda: mg(request, timeout=10)
    ml = channel.unary_stream("/inventory.v1.InventoryService/ListItems")
    request = inventory_pb2.ListItemsRequest(count=STREAM_LEN).SerializeToString()

    async def go_stream() -> None:
        async for _ in ml(request, timeout=10):
            pass

    return go_stream


async def p50_us(call: Call, seconds: float) -> float:
    """Median latency of sequential calls, microseconds."""
    lat = []
    end = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < end:
        await call()
        lat.append(time.perf_counter() - t0)
    return statistics.median(lat) * 1e6


async def paired_p50_us(call: Call, base: Call, seconds: float) -> tuple[float, float]:
    """Median latencies (µs) of ``call`` and ``base``, called in turn, one at a time: both see
    the same moments of a noisy machine, so their difference is the hop's, not the noise's."""
    lat: tuple[list[float], list[float]] = ([], [])
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i, c in enumerate((call, base)):
            t0 = time.perf_counter()
            await c()
            lat[i].append(time.perf_counter() - t0)
    return statistics.median(lat[0]) * 1e6, statistics.median(lat[1]) * 1e6


async def cpu_us(call: Call, seconds: float, procs: dict[str, Proc]) -> dict[str, float]:
    """CPU per call (µs) at concurrency 32 of this process ("client") and each of ``procs``."""
    count = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < end:
            await call()
            count += 1

    before = {n: p.cpu() for n, p in procs.items()}
    c0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(32)))
    out = {"client": (time.process_time() - c0) / count * 1e6}
    for name, p in procs.items():
        out[name] = (p.cpu() - before[name]) / count * 1e6
    return out


# --- the run ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gwbench-"))
    contract = tmp / "gateway.yaml"
    contract.write_text(
        "version: bench\nmodules:\n  - name: gateway\n    max_heap_mb: 4096\n"
        "    sample_interval_ms: 100\n"
    )
    descriptors = tmp / "bench.pb"
    echo_descriptor_set(descriptors)
    procs: list[Proc] = []
    try:
        echo = Proc([sys.executable, __file__, "--child"])
        procs.append(echo)
        bare = f"127.0.0.1:{echo.first['bare']}"
        reporting = f"127.0.0.1:{echo.first['reporting']}"
        gw, gw_addr = start_gateway(reporting, contract, "--descriptor-set", str(descriptors))
        naive, naive_addr = start_gateway(reporting, contract, "--reflection-timeout-s", "0")
        minimal = Proc([sys.executable, __file__, "--minimal-proxy", reporting])
        minimal_addr = f"127.0.0.1:{minimal.first['port']}"
        sync_minimal = Proc([sys.executable, __file__, "--sync-minimal-proxy", reporting])
        sync_minimal_addr = f"127.0.0.1:{sync_minimal.first['port']}"
        procs += [gw, naive, minimal, sync_minimal]
        # variant -> (address, workload, processes whose CPU counts)
        variants: dict[str, tuple[str, str, dict[str, Proc]]] = {
            "direct": (bare, "echo-unary", {"upstream": echo}),
            "gateway": (gw_addr, "echo-unary", {"gateway": gw}),
            "naive-bidi": (naive_addr, "echo-unary", {"gateway": naive}),
            "minimal-proxy": (minimal_addr, "echo-unary", {"gateway": minimal}),
            "sync-minimal-proxy": (sync_minimal_addr, "echo-unary", {"gateway": sync_minimal}),
            "direct-stream": (bare, "echo-stream", {"upstream": echo}),
            "gateway-stream": (gw_addr, "echo-stream", {"gateway": gw}),
        }
        go = None if args.no_go else start_go(tmp)
        if go is not None:
            go_proc, go_addr = go
            ggw, ggw_addr = start_gateway(go_addr, contract)
            procs += [go_proc, ggw]
            variants |= {
                "go-direct": (go_addr, "go-unary", {"upstream": go_proc}),
                "go-gateway": (ggw_addr, "go-unary", {"gateway": ggw}),
                "go-direct-stream": (go_addr, "go-stream", {"upstream": go_proc}),
                "go-gateway-stream": (ggw_addr, "go-stream", {"gateway": ggw}),
            }
        channels = {name: grpc.aio.insecure_channel(v[0]) for name, v in variants.items()}
        calls = {name: make_calls(channels[name], v[1]) for name, v in variants.items()}
        for call in calls.values():  # warm-up: connections, handler caches
            for _ in range(200):
                await call()
        results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        names = list(variants)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            if r % 2:
                order.reverse()
            for name in order:
                base = PAIRS.get(name)
                if base is None:
                    row = {"p50": await p50_us(calls[name], args.seconds)}
                else:
                    p50, base_p50 = await paired_p50_us(calls[name], calls[base], args.seconds)
                    row = {"p50": p50, "added": p50 - base_p50}
                row |= await cpu_us(calls[name], args.seconds, variants[name][2])
                results[name].append(row)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        for channel in channels.values():
            await channel.close()
        report(results)
    finally:
        for p in procs:
            p.close()


def _med(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(results: dict[str, list[dict[str, float]]]) -> None:
    """Print the table and the verdicts."""
    # The floor of each shape: the bare aio server + bare aio client, direct, per call.
    floors = {
        shape: [d["upstream"] + d["client"] for d in results[base]]
        for shape, base in (("unary", "direct"), ("stream", "direct-stream"))
    }
    for shape, values in floors.items():
        print(
            f"floor {shape} (bare aio server + bare aio client, direct, c=32): "
            f"{statistics.median(values):.0f} µs/call"
        )
    print(f"{'variant':<20}{'p50 µs':>9}{'added p50 µs':>14}{'cpu/call µs':>13}{'x floor':>9}")
    verdicts = {}
    for name, rows in results.items():
        base = PAIRS.get(name)
        if base is None:
            cpu = _med(rows, "upstream") + _med(rows, "client")
            print(
                f"{name:<20}{_med(rows, 'p50'):>9.0f}{'':>14}{cpu:>13.0f}{'':>9}  (server+client)"
            )
            continue
        added = _med(rows, "added")
        floor = floors["stream" if name.endswith("stream") else "unary"]
        ratio = statistics.median(v["gateway"] / f for v, f in zip(rows, floor, strict=True))
        cpu = _med(rows, "gateway")
        print(f"{name:<20}{_med(rows, 'p50'):>9.0f}{added:>14.0f}{cpu:>13.0f}{ratio:>9.2f}")
        verdicts[name] = (added, ratio)
    added, ratio = verdicts["gateway"]
    for label, ok in (
        ("Must   added p50 <= 1000 µs", added <= 1000),
        ("Must   cpu <= 1.50x floor", ratio <= 1.5),
        ("Target added p50 <= 500 µs", added <= 500),
        ("Target cpu <= 1.15x floor", ratio <= 1.15),
    ):
        print(f"{label:<32} {'PASS' if ok else 'MISS'}  (gateway, aio echo, unary)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--quick", action="store_true", help="2 rounds x 0.5 s")
    parser.add_argument("--no-go", action="store_true", help="skip the Go upstream")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--minimal-proxy", metavar="UPSTREAM", help=argparse.SUPPRESS)
    parser.add_argument("--sync-minimal-proxy", metavar="UPSTREAM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child())
        return
    if args.minimal_proxy:
        asyncio.run(_minimal_proxy(args.minimal_proxy))
        return
    if args.sync_minimal_proxy:
        _sync_minimal_proxy(args.sync_minimal_proxy)
        return
    if args.quick:
        args.rounds, args.seconds = 2, 0.5
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
