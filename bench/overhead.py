"""What memcontract's interceptors cost per call, against bare grpcio and a pass-through floor.

A 100-byte unary echo over 127.0.0.1, sync (grpcio) and aio (grpc.aio), six variants:

* ``bare``: no interceptors on either side;
* ``noop``: a pass-through interceptor pair (the client's passes the call on, the server's wraps
  the handler once per method and calls it): the least any interceptor costs;
* ``floor``: the cheapest interceptors that carry the same information: the client adds the
  four ``x-memory-*`` text keys (constants) to each call, the server wraps the handler so it
  sets the same four keys as trailers;
* ``memcontract``: ``client_interceptor`` / ``aio_client_interceptors`` and
  ``server_interceptor`` / ``aio_server_interceptor``, both processes calm (level 0, below the
  level-1 thresholds: keys travel only when they change);
* ``pressured``: the same at level 1 (a guard over a ``FakeProbe`` at 85 % usage, client and
  server alike): every call carries the keys both ways;
* ``wrapped``: the opt-in wrapping path, calm: ``wrap_server`` (registration-time wrapping) on
  the server, ``wrap_channel`` on the client (the channel's methods guarded as the stub is
  made: no interceptor pipeline per call on grpcio, no interceptor task on grpc.aio).

``--wire-floor`` adds a diagnosis variant, ``floor-wire``: the floor's interceptors sending what a
memcontract process at level 1 sends (the four text keys and ``x-memory-pressure-bin`` each way,
the ORCA report in trailers) as constants: the wire's cost apart from memcontract's Python.

The servers run in a child process per mode (one server per variant, all at once, on separate
ports), started by this script; the client is this process. Both processes run a real
``Guard`` (sampler thread, 100 ms). With two CPUs or more, the client is pinned to one and the
server child to another (``--no-pin`` to let the scheduler place them): grpcio's threads moving
between cores otherwise make CPU per call swing by 10-20 % from one second to the next.

Each round is cut into slices; a slice runs every variant back to back (the order rotated slice
by slice and round by round, every other slice reversed), so a round's figures for the variants
come from the same seconds and drift on the machine cancels in their ratio. CPU per call is the
round's CPU over the round's calls; ratios are the median over rounds of the per-round ratios,
printed with their quartiles.

Measured per variant and mode:

* ``p50``: median latency of sequential calls at concurrency 1 (one thread / one task);
* ``cpu/call``: (client process CPU + server process CPU) / calls at concurrency 16 (16
  threads each making sequential calls; aio: 16 tasks in one event loop). Client CPU is this
  process's ``time.process_time()``; the server's is the child's ``time.process_time()``,
  asked for over its stdin before and after each measurement (not on the RPC path).

Usage::

    .venv/bin/python bench/overhead.py                 # 5 rounds x 2 s, about 5 minutes
    .venv/bin/python bench/overhead.py --quick         # smoke run, a few seconds
    .venv/bin/python bench/overhead.py --rounds 7 --seconds 3 --modes sync

The guard may log that it entered level 1 at start (the growth of imports); that level changes
nothing per call (only level 3 sheds or fails fast).

Targets (issue 23 item 3): calm: Must memcontract <= 1.10x bare CPU per call, target <= 1.03x
the no-op pair; pressured: Must <= 1.05x the floor's CPU per call (sync and aio). PASS/MISS is
printed for each; the exit status is 0 either way (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import grpc.aio
from memcontract.interceptors import (
    aio_client_interceptors,
    aio_server_interceptor,
    client_interceptor,
    server_interceptor,
    wrap_channel,
    wrap_server,
)

from memcontract import Contract, Guard
from memcontract.testing import FakeProbe

CONTRACT = "modules: [{name: bench, max_heap_mb: 4096, sample_interval_ms: 100}]"
SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"
PAYLOAD = bytes(range(100))
PRESSURED_USAGE = 0.85  # level 1 (the default ladder's level-1 threshold is 80 %)
MODES = ("sync", "aio")
TIMEOUT = 10.0
SERVER_THREADS = 16

# The floor's four text keys: the same information as memcontract's text keys, as constants.
FOUR_KEYS: tuple[tuple[str, str], ...] = (
    ("x-memory-usage", "12.5%"),
    ("x-memory-capacity", "4096"),
    ("x-memory-contract", "v1"),
    ("x-memory-level", "0"),
)


# Diagnosis (``--wire-floor``): a seventh variant, ``floor-wire``, the floor's interceptors
# carrying memcontract's level-1 keys as constants (request: the four text keys and
# x-memory-pressure-bin; trailers: those and the ORCA report): what the wire of the
# ``pressured`` variant costs with the floor's Python. Set through the environment so the server
# child has the variant too.
WIRE_ENV = "MEMCONTRACT_BENCH_WIRE_FLOOR"


def _variants() -> tuple[str, ...]:
    base = ("bare", "noop", "floor", "memcontract", "pressured", "wrapped")
    return (*base[:3], "floor-wire", *base[3:]) if os.environ.get(WIRE_ENV) else base


VARIANTS = _variants()


def level1_keys() -> tuple[Any, Any]:
    """What a memcontract process at level 1 sends: (request metadata, trailers)."""
    guard = make_pressured_guard()
    snapshot = guard.snapshot
    guard.stop()
    return snapshot.request_metadata, snapshot.trailing_metadata


def make_guard() -> Guard:
    guard = Guard(Contract.from_yaml(CONTRACT))
    guard.start()
    return guard


def make_pressured_guard() -> Guard:
    """A guard held at level 1: every call carries the keys.

    Its actions are left out: they act on the whole process (tightening the GC made every
    variant's garbage collections four times as frequent), and the variant measures the wire.
    """
    probe = FakeProbe()
    probe.set(usage=PRESSURED_USAGE)
    left_out = {"sample_allocations", "tighten_gc", "quiet_loggers"}
    guard = Guard(Contract.from_yaml(CONTRACT), probe=probe, disable=left_out)
    guard.start()
    assert guard.level == 1, guard.level
    return guard


# ---------------------------------------------------------------------------------------------
# The floor: minimal pass-through interceptors.


class _Details(
    collections.namedtuple(
        "_Details",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    pass


class FloorClient(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds the four keys (or ``keys``) to each outgoing unary call."""

    def __init__(self, keys: Any = FOUR_KEYS) -> None:
        self.keys = keys

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        keys = self.keys
        metadata = keys if not details.metadata else (*details.metadata, *keys)
        new = _Details(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )
        return continuation(new, request)


class FloorServer(grpc.ServerInterceptor):  # type: ignore[misc]
    """Wraps each unary handler (once per method) so it sets the four keys (or ``keys``) as
    trailers."""

    def __init__(self, keys: Any = FOUR_KEYS) -> None:
        self.keys = keys
        self._wrapped: dict[str, Any] = {}

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        wrapped = self._wrapped.get(handler_call_details.method)
        if wrapped is None:
            inner, keys = handler.unary_unary, self.keys

            def behavior(request: Any, context: Any) -> Any:
                context.set_trailing_metadata(keys)
                return inner(request, context)

            wrapped = self._wrapped[handler_call_details.method] = handler._replace(
                unary_unary=behavior
            )
        return wrapped


class NoopClient(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Passes each call on unchanged."""

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(details, request)


class NoopServer(grpc.ServerInterceptor):  # type: ignore[misc]
    """Wraps each unary handler (once per method) in a function that calls it."""

    def __init__(self) -> None:
        self._wrapped: dict[str, Any] = {}

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        wrapped = self._wrapped.get(handler_call_details.method)
        if wrapped is None:
            inner = handler.unary_unary

            def behavior(request: Any, context: Any) -> Any:
                return inner(request, context)

            wrapped = self._wrapped[handler_call_details.method] = handler._replace(
                unary_unary=behavior
            )
        return wrapped


class AioNoopClient(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """aio twin of :class:`NoopClient`."""

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(details, request)


class AioNoopServer(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """aio twin of :class:`NoopServer`."""

    def __init__(self) -> None:
        self._wrapped: dict[Any, Any] = {}

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        wrapped = self._wrapped.get(handler_call_details.method)
        if wrapped is None:
            inner = handler.unary_unary

            async def behavior(request: Any, context: Any) -> Any:
                return await inner(request, context)

            wrapped = self._wrapped[handler_call_details.method] = handler._replace(
                unary_unary=behavior
            )
        return wrapped


class AioFloorClient(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """aio twin of :class:`FloorClient`."""

    def __init__(self, keys: Any = FOUR_KEYS) -> None:
        self.keys = keys

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self.keys)
        new = grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )
        return await continuation(new, request)


class AioFloorServer(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """aio twin of :class:`FloorServer`."""

    def __init__(self, keys: Any = FOUR_KEYS) -> None:
        self.keys = keys
        self._wrapped: dict[Any, Any] = {}

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        wrapped = self._wrapped.get(handler_call_details.method)
        if wrapped is None:
            inner, keys = handler.unary_unary, self.keys

            async def behavior(request: Any, context: Any) -> Any:
                context.set_trailing_metadata(keys)
                return await inner(request, context)

            wrapped = self._wrapped[handler_call_details.method] = handler._replace(
                unary_unary=behavior
            )
        return wrapped


# ---------------------------------------------------------------------------------------------
# The child: all four servers of one mode, CPU time on request over stdin.


def _sync_echo(request: bytes, context: Any) -> bytes:
    return request


async def _aio_echo(request: bytes, context: Any) -> bytes:
    return request


def _generic(echo: Any) -> Any:
    return grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )


def not_calm(guard: Guard) -> float:
    """Seconds ``guard`` has spent above level 0 (where every call carries the keys)."""
    return sum(s for level, s in guard.telemetry.level_clock.seconds().items() if level)


def _control(ports: dict[str, int], guard: Guard, on_quit: Callable[[], None]) -> None:
    """Print the ports, then answer ``cpu`` with this process's CPU seconds and its calm
    guard's seconds above level 0, until EOF/quit."""
    print("PORTS " + json.dumps(ports), flush=True)
    for line in sys.stdin:
        if line.strip() == "cpu":
            print(f"{time.process_time():.9f} {not_calm(guard):.3f}", flush=True)
        elif line.strip() == "quit":
            break
    on_quit()


def child_sync() -> None:
    guard, pressured = make_guard(), make_pressured_guard()
    servers: dict[str, Any] = {}
    for variant in VARIANTS:
        pool = futures.ThreadPoolExecutor(SERVER_THREADS)
        if variant == "bare":
            server = grpc.server(pool)
        elif variant == "noop":
            server = grpc.server(pool, interceptors=[NoopServer()])
        elif variant == "floor":
            server = grpc.server(pool, interceptors=[FloorServer()])
        elif variant == "floor-wire":
            server = grpc.server(pool, interceptors=[FloorServer(level1_keys()[1])])
        elif variant == "memcontract":
            server = grpc.server(pool, interceptors=[server_interceptor(guard)])
        elif variant == "pressured":
            server = grpc.server(pool, interceptors=[server_interceptor(pressured)])
        else:
            server = wrap_server(grpc.server(pool), guard)
        server.add_generic_rpc_handlers((_generic(_sync_echo),))
        servers[variant] = server
    ports = {v: s.add_insecure_port("127.0.0.1:0") for v, s in servers.items()}
    for server in servers.values():
        server.start()
    _control(ports, guard, lambda: None)
    for server in servers.values():
        server.stop(0).wait(5)
    guard.stop()
    pressured.stop()


async def _child_aio() -> None:
    guard, pressured = make_guard(), make_pressured_guard()
    servers: dict[str, Any] = {}
    for variant in VARIANTS:
        if variant == "bare":
            server = grpc.aio.server()
        elif variant == "noop":
            server = grpc.aio.server(interceptors=[AioNoopServer()])
        elif variant == "floor":
            server = grpc.aio.server(interceptors=[AioFloorServer()])
        elif variant == "floor-wire":
            server = grpc.aio.server(interceptors=[AioFloorServer(level1_keys()[1])])
        elif variant == "memcontract":
            server = grpc.aio.server(interceptors=[aio_server_interceptor(guard)])
        elif variant == "pressured":
            server = grpc.aio.server(interceptors=[aio_server_interceptor(pressured)])
        else:
            server = wrap_server(grpc.aio.server(), guard)
        server.add_generic_rpc_handlers((_generic(_aio_echo),))
        servers[variant] = server
    ports = {v: s.add_insecure_port("127.0.0.1:0") for v, s in servers.items()}
    for server in servers.values():
        await server.start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    control = threading.Thread(
        target=_control,
        args=(ports, guard, lambda: loop.call_soon_threadsafe(done.set)),
        daemon=True,
    )
    control.start()
    await done.wait()
    for server in servers.values():
        await server.stop(0)
    guard.stop()
    pressured.stop()


class Child:
    """The server process of one mode."""

    def __init__(self, mode: str, cpu: int | None) -> None:
        pin = [] if cpu is None else ["--cpu", str(cpu)]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", mode, *pin],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout
        line = self._out.readline()
        if not line.startswith("PORTS "):
            self.proc.kill()
            raise RuntimeError(f"server child ({mode}) did not start: {line!r}")
        self.ports: dict[str, int] = json.loads(line[6:])
        self.not_calm = 0.0  # its calm guard's seconds above level 0, at the last cpu()

    def cpu(self) -> float:
        self._in.write("cpu\n")
        self._in.flush()
        cpu, not_calm = self._out.readline().split()
        self.not_calm = float(not_calm)
        return float(cpu)

    def close(self) -> None:
        try:
            self._in.write("quit\n")
            self._in.flush()
            self._in.close()
            self.proc.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------
# The client side: measurements.

Sample = dict[str, float]  # "p50" (s), "cpu" (s/call), "client", "server" (s/call), "calls"


def _plan(round_no: int, slices: int) -> list[tuple[str, ...]]:
    """The variant orders of a round's slices: rotated round by round and slice by slice,
    every other slice reversed, so each variant takes each position alike."""
    plan = []
    for s in range(slices):
        k = (round_no + s) % len(VARIANTS)
        order = VARIANTS[k:] + VARIANTS[:k]
        plan.append(order[::-1] if s % 2 else order)
    return plan


# calls, client CPU s, server CPU s, seconds the calm guards spent above level 0 (client and
# server summed: "calm" figures are only calm where this is 0)
Totals = tuple[int, float, float, float]


def _add(a: Totals, b: Totals) -> Totals:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]


def _sample(totals: Totals, latencies: list[int]) -> Sample:
    calls, client, server, above = totals
    n = max(calls, 1)
    return {
        "p50": statistics.median(latencies) / 1e9,
        "cpu": (client + server) / n,
        "client": client / n,
        "server": server / n,
        "calls": calls,
        "above": above,
    }


def _sync_latencies(call: Callable[..., Any], seconds: float) -> list[int]:
    latencies: list[int] = []
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    while True:
        start = clock()
        call(PAYLOAD, timeout=TIMEOUT)
        stop = clock()
        latencies.append(stop - start)
        if stop >= end:
            return latencies


def _sync_cpu(
    call: Callable[..., Any], seconds: float, concurrency: int, child: Child, guard: Guard
) -> Totals:
    counts = [0] * concurrency
    stop = threading.Event()
    ready = threading.Barrier(concurrency + 1)

    def worker(i: int) -> None:
        ready.wait()
        n = 0
        while not stop.is_set():
            call(PAYLOAD, timeout=TIMEOUT)
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    server0, above0 = child.cpu(), child.not_calm + not_calm(guard)
    client0 = time.process_time()
    ready.wait()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    client1 = time.process_time()
    server1 = child.cpu()
    above = child.not_calm + not_calm(guard) - above0
    return sum(counts), client1 - client0, server1 - server0, above


def run_sync(args: argparse.Namespace, guards: tuple[Guard, Guard]) -> dict[str, list[Sample]]:
    guard, pressured = guards
    child = Child("sync", args.server_cpu)
    channels: dict[str, grpc.Channel] = {}
    try:
        for variant in VARIANTS:
            channel = grpc.insecure_channel(f"127.0.0.1:{child.ports[variant]}")
            if variant == "noop":
                channel = grpc.intercept_channel(channel, NoopClient())
            elif variant == "floor":
                channel = grpc.intercept_channel(channel, FloorClient())
            elif variant == "floor-wire":
                channel = grpc.intercept_channel(channel, FloorClient(level1_keys()[0]))
            elif variant == "memcontract":
                channel = grpc.intercept_channel(channel, client_interceptor(guard, variant))
            elif variant == "wrapped":
                channel = wrap_channel(channel, guard, variant)
            elif variant == "pressured":
                channel = grpc.intercept_channel(channel, client_interceptor(pressured, variant))
            channels[variant] = channel
        calls = {v: c.unary_unary(METHOD) for v, c in channels.items()}
        for variant in VARIANTS:  # warm up: connections, server threads, handler caches
            assert calls[variant](PAYLOAD, timeout=TIMEOUT) == PAYLOAD
            _sync_cpu(calls[variant], args.warmup, args.concurrency, child, guard)
        samples: dict[str, list[Sample]] = {v: [] for v in VARIANTS}
        part = args.seconds / args.slices
        for r in range(args.rounds):
            plan = _plan(r, args.slices)
            latencies: dict[str, list[int]] = {v: [] for v in VARIANTS}
            for order in plan:
                for v in order:
                    latencies[v] += _sync_latencies(calls[v], part)
            totals = {v: (0, 0.0, 0.0, 0.0) for v in VARIANTS}
            for order in plan:
                for v in reversed(order):
                    got = _sync_cpu(calls[v], part, args.concurrency, child, guard)
                    totals[v] = _add(totals[v], got)
            for v in VARIANTS:
                samples[v].append(_sample(totals[v], latencies[v]))
            _progress("sync", r, args.rounds, samples)
        return samples
    finally:
        for channel in channels.values():
            channel.close()
        child.close()


async def _aio_latencies(call: Callable[..., Any], seconds: float) -> list[int]:
    latencies: list[int] = []
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    while True:
        start = clock()
        await call(PAYLOAD, timeout=TIMEOUT)
        stop = clock()
        latencies.append(stop - start)
        if stop >= end:
            return latencies


async def _aio_cpu(
    call: Callable[..., Any], seconds: float, concurrency: int, child: Child, guard: Guard
) -> Totals:
    loop = asyncio.get_running_loop()
    server0 = await loop.run_in_executor(None, child.cpu)
    above0 = child.not_calm + not_calm(guard)
    client0 = time.process_time()
    end = time.monotonic() + seconds

    async def worker() -> int:
        n = 0
        while time.monotonic() < end:
            await call(PAYLOAD, timeout=TIMEOUT)
            n += 1
        return n

    counts = await asyncio.gather(*(worker() for _ in range(concurrency)))
    client1 = time.process_time()
    server1 = await loop.run_in_executor(None, child.cpu)
    above = child.not_calm + not_calm(guard) - above0
    return sum(counts), client1 - client0, server1 - server0, above


async def _run_aio(
    args: argparse.Namespace, guards: tuple[Guard, Guard], child: Child
) -> dict[str, list[Sample]]:
    guard, pressured = guards
    channels: dict[str, grpc.aio.Channel] = {}
    try:
        for variant in VARIANTS:
            target = f"127.0.0.1:{child.ports[variant]}"
            interceptors: list[Any] | None = None
            if variant == "noop":
                interceptors = [AioNoopClient()]
            elif variant == "floor":
                interceptors = [AioFloorClient()]
            elif variant == "floor-wire":
                interceptors = [AioFloorClient(level1_keys()[0])]
            elif variant == "memcontract":
                interceptors = aio_client_interceptors(guard, variant)
            elif variant == "pressured":
                interceptors = aio_client_interceptors(pressured, variant)
            channel = grpc.aio.insecure_channel(target, interceptors=interceptors)
            channels[variant] = (
                wrap_channel(channel, guard, variant) if variant == "wrapped" else channel
            )
        calls = {v: c.unary_unary(METHOD) for v, c in channels.items()}
        for variant in VARIANTS:
            assert await calls[variant](PAYLOAD, timeout=TIMEOUT) == PAYLOAD
            await _aio_cpu(calls[variant], args.warmup, args.concurrency, child, guard)
        samples: dict[str, list[Sample]] = {v: [] for v in VARIANTS}
        part = args.seconds / args.slices
        for r in range(args.rounds):
            plan = _plan(r, args.slices)
            latencies: dict[str, list[int]] = {v: [] for v in VARIANTS}
            for order in plan:
                for v in order:
                    latencies[v] += await _aio_latencies(calls[v], part)
            totals = {v: (0, 0.0, 0.0, 0.0) for v in VARIANTS}
            for order in plan:
                for v in reversed(order):
                    got = await _aio_cpu(calls[v], part, args.concurrency, child, guard)
                    totals[v] = _add(totals[v], got)
            for v in VARIANTS:
                samples[v].append(_sample(totals[v], latencies[v]))
            _progress("aio", r, args.rounds, samples)
        return samples
    finally:
        for channel in channels.values():
            await channel.close()


def run_aio(args: argparse.Namespace, guards: tuple[Guard, Guard]) -> dict[str, list[Sample]]:
    child = Child("aio", args.server_cpu)
    try:
        return asyncio.run(_run_aio(args, guards, child))
    finally:
        child.close()


# ---------------------------------------------------------------------------------------------
# Reporting.


def _progress(mode: str, r: int, rounds: int, samples: dict[str, list[Sample]]) -> None:
    parts = "  ".join(
        f"{v} {s[-1]['cpu'] * 1e6:.0f}us/{s[-1]['p50'] * 1e6:.0f}us" for v, s in samples.items()
    )
    print(f"  [{mode} round {r + 1}/{rounds}] cpu/call/p50: {parts}", flush=True)


def _median(samples: list[Sample], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def _spread(samples: list[Sample], key: str) -> str:
    values = [s[key] for s in samples]
    mid = statistics.median(values)
    if len(values) < 4 or mid == 0:
        return ""
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f" ±{(q3 - q1) / 2 / mid * 100:.0f}%"


def _ratios(samples: dict[str, list[Sample]], a: str, b: str, key: str) -> list[float]:
    """``a`` over ``b`` round by round: a round interleaves every variant slice by slice, so
    each pair shares the machine's state of those seconds and drift between rounds cancels."""
    return [x[key] / y[key] for x, y in zip(samples[a], samples[b], strict=True)]


def _ratio(samples: dict[str, list[Sample]], a: str, b: str, key: str) -> float:
    """The median over rounds of the paired ratios."""
    return statistics.median(_ratios(samples, a, b, key))


def _ratio_text(samples: dict[str, list[Sample]], a: str, b: str, key: str) -> str:
    """``x1.042 [1.01-1.07]``: median and quartiles of the per-round ratios."""
    values = _ratios(samples, a, b, key)
    if len(values) < 4:
        return f"x{statistics.median(values):.3f}"
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"x{statistics.median(values):.3f} [{q1:.2f}-{q3:.2f}]"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(results: dict[str, dict[str, list[Sample]]], args: argparse.Namespace) -> None:
    print()
    print(
        f"overhead: 100-byte unary echo on 127.0.0.1; {args.rounds} rounds, each {args.seconds:g} s"
        f" per variant per measurement (in {args.slices} interleaved slices)"
    )
    print(f"  cpu/call = (client + server process CPU) / calls at concurrency {args.concurrency}")
    print("  p50 = median latency at concurrency 1")
    print("  us: median over rounds (± half the interquartile range, in % of the median)")
    print("  xN [q1-q3]: median (and quartiles) over rounds of the per-round ratio")
    print(f"  pinned: {args.pin}")
    verdicts: list[str] = []
    for mode, samples in results.items():
        med = {
            v: {k: _median(samples[v], k) for k in ("p50", "cpu", "client", "server")}
            for v in VARIANTS
        }
        print()
        for key, label in (("cpu", "cpu/call"), ("p50", "p50")):
            print(f"{mode:4s}  {label}:")
            for v in VARIANTS:
                against = [b for b in ("bare", "noop", "floor") if b != v]
                ratios = ", ".join(f"{_ratio_text(samples, v, b, key)} {b}" for b in against)
                spread = _spread(samples[v], key)
                print(f"        {v:11s} {med[v][key] * 1e6:7.1f}us{spread:5s} {ratios}")
        split = "  ".join(
            f"{v} {med[v]['client'] * 1e6:.1f}+{med[v]['server'] * 1e6:.1f}" for v in VARIANTS
        )
        print(f"{mode:4s}  cpu/call client+server: {split} (us)")
        calls = "  ".join(
            f"{v} {_median(samples[v], 'calls') / args.seconds:,.0f}" for v in VARIANTS
        )
        print(f"{mode:4s}  calls/s at concurrency {args.concurrency}: {calls}")
        above = "  ".join(
            f"{v} {sum(s['above'] for s in samples[v]):.1f} s" for v in ("memcontract", "wrapped")
        )
        print(
            f"{mode:4s}  calm guards above level 0 while measured (client + server, of"
            f" {args.rounds * args.seconds:g} s each): {above}"
        )
        for v in ("memcontract", "wrapped"):
            cpu_bare = _ratio(samples, v, "bare", "cpu")
            cpu_noop = _ratio(samples, v, "noop", "cpu")
            verdicts.append(
                f"{mode:4s} {v:11s} calm  Must cpu/call <= 1.10x bare: {_verdict(cpu_bare <= 1.10)}"
                f" (x{cpu_bare:.3f})   Target cpu/call <= 1.03x noop:"
                f" {_verdict(cpu_noop <= 1.03)} (x{cpu_noop:.3f})"
            )
        cpu_floor = _ratio(samples, "pressured", "floor", "cpu")
        verdicts.append(
            f"{mode:4s} {'pressured':11s} level 1  Must cpu/call <= 1.05x floor:"
            f" {_verdict(cpu_floor <= 1.05)} (x{cpu_floor:.3f})"
        )
        if "floor-wire" in samples:
            wire = _ratio(samples, "floor-wire", "floor", "cpu")
            python = _ratio(samples, "pressured", "floor-wire", "cpu")
            verdicts.append(
                f"{mode:4s} diagnosis: the level-1 wire costs x{wire:.3f} of the floor's with the"
                f" floor's Python; memcontract's Python on it x{python:.3f} of floor-wire"
            )
    print()
    print("targets (issue 23 item 3; wrapped is shown alongside memcontract):")
    for line in verdicts:
        print("  " + line)


def _pin(args: argparse.Namespace) -> int | None:
    """Pin this process (the client) to one CPU and return another for the server child.

    On a shared 2-core machine the scheduler moving grpcio's threads between cores makes CPU
    per call swing by 10-20 % from one slice to the next; one core each cuts that to a few %.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not args.pin or len(cpus) < 2:
        args.pin = False
        return None
    os.sched_setaffinity(0, {cpus[0]})
    args.pin = f"client on CPU {cpus[0]}, server on CPU {cpus[1]}"
    return cpus[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per variant per measurement")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--slices", type=int, default=8, help="interleaved slices per variant per round"
    )
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds per variant")
    parser.add_argument("--modes", default="sync,aio", help="comma-separated: sync, aio")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round x 0.4 s")
    parser.add_argument(
        "--wire-floor",
        action="store_true",
        help="diagnosis: add the floor-wire variant (the floor sending memcontract's level-1 keys)",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let the scheduler move both processes (default: client and server child on one"
        " CPU each)",
    )
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu is not None:  # before grpc starts any thread: they all inherit it
        os.sched_setaffinity(0, {args.cpu})
    if args.child == "sync":
        child_sync()
        return
    if args.child == "aio":
        asyncio.run(_child_aio())
        return
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.slices = 1, 0.4, 0.1, 2
    if args.wire_floor:
        global VARIANTS
        os.environ[WIRE_ENV] = "1"  # the server child's variants follow the environment
        VARIANTS = _variants()
    modes = [m for m in args.modes.split(",") if m]
    args.server_cpu = _pin(args)
    guards = (make_guard(), make_pressured_guard())
    results: dict[str, dict[str, list[Sample]]] = {}
    started = time.monotonic()
    try:
        for mode in modes:
            print(
                f"{mode}: server child started; warming up, then {args.rounds} rounds", flush=True
            )
            results[mode] = run_sync(args, guards) if mode == "sync" else run_aio(args, guards)
    finally:
        for guard in guards:
            guard.stop()
    report(results, args)
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
