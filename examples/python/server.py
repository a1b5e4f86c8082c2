"""The example inventory server, sync (grpcio) or aio (grpc.aio), guarded by memcontract.

From the repository root::

    python -m examples.python.server --port 0          # sync; prints the bound port first
    python -m examples.python.server --port 0 --aio    # the grpc.aio variant
    python -m examples.python.server --port 0 --metrics-port 0   # and Prometheus /metrics

With ``--metrics-port`` (the ``prometheus`` extra) it serves ``/metrics`` on ``--host`` and
prints ``metrics URL`` as the second stdout line.

SIGTERM or SIGINT stops it cleanly: health goes NOT_SERVING while calls are still taken for
``--drain-delay-s`` (0.5 s, so balancers and a Service's endpoints move away first), then
in-flight calls get a grace period, the guard stops and reverses its actions, and the process
exits 0. With
``on_stuck: recycle`` in the contract, a level 3 stuck on retained memory stops it the same
way but exits 75 (``RECYCLE_EXIT_STATUS``): a supervisor (systemd ``Restart=on-failure``,
a Kubernetes restart policy) starts a fresh process.

The builders are importable (the tests use them with a guard over a ``FakeProbe``)::

    server, port, health = build_sync_server(guard, Inventory(guard))
    server, port, health = await build_aio_server(guard, Inventory(guard))
    with background(guard, Inventory(guard), aio=True) as port:  # from sync code
        ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import pathlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent import futures
from typing import Any, TypeVar

import grpc
import grpc.aio
from grpc_health.v1 import _async as aio_health
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from memcontract.interceptors import (
    add_pressure_services,
    add_reflection,
    aio_server_interceptor,
    server_interceptor,
)

from memcontract import Contract, Guard, Level, Pressure
from memcontract.recovery import RECYCLE_EXIT_STATUS
from memcontract.trust import TrustPolicy

from .inventory import SERVICE, AioInventoryServicer, Inventory, InventoryServicer
from .inventory_demo.v1 import inventory_demo_pb2_grpc as pb_grpc

#: Services listed by server reflection (so `grpcurl -plaintext ADDR list` needs no proto).
REFLECTED = (
    SERVICE,
    "grpc.health.v1.Health",
    "memcontract.v1.MemoryPressureService",
    "xds.service.orca.v3.OpenRcaService",
    reflection.SERVICE_NAME,
)
CONTRACT = pathlib.Path(__file__).resolve().parent / "memory_contract.yaml"
SERVING = health_pb2.HealthCheckResponse.SERVING
GRACE_SECONDS = 5.0
DRAIN_DELAY_SECONDS = 0.5

log = logging.getLogger("inventory")
T = TypeVar("T")


def build_sync_server(
    guard: Guard,
    inventory: Inventory,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    trust: TrustPolicy | None = None,
    max_workers: int = 16,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """A started grpcio server with the inventory, health, pressure and reflection services;
    (server, port, health)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers, thread_name_prefix="inventory"),
        interceptors=[server_interceptor(guard, trust=trust)],
        options=EXCLUSIVE_PORT,
    )
    pb_grpc.add_InventoryDemoServicer_to_server(InventoryServicer(inventory), server)
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    add_pressure_services(server, guard)  # OpenRcaService, MemoryPressureService
    add_reflection(server, REFLECTED)  # methods resolve too (ghz, grpcurl describe)
    bound = bind(server, host, port)
    server.start()
    checker.set("", SERVING)
    checker.set(SERVICE, SERVING)
    return server, bound, checker


# grpcio sets SO_REUSEPORT by default: a second server on a port already taken would start
# without a word and share its calls with the first.
EXCLUSIVE_PORT = [("grpc.so_reuseport", 0)]


class CannotListen(Exception):
    """The port is taken (or the address is not this machine's)."""


def bind(server: grpc.Server | grpc.aio.Server, host: str, port: int) -> int:
    """``server.add_insecure_port``, with one clear error where it cannot listen."""
    try:
        return server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as err:
        raise CannotListen(f"cannot listen on {host}:{port}: the port is taken") from err


async def build_aio_server(
    guard: Guard,
    inventory: Inventory,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    trust: TrustPolicy | None = None,
) -> tuple[grpc.aio.Server, int, aio_health.HealthServicer]:
    """A started grpc.aio server with the inventory, health, pressure and reflection services;
    (server, port, health)."""
    server = grpc.aio.server(
        interceptors=[aio_server_interceptor(guard, trust=trust)], options=EXCLUSIVE_PORT
    )
    pb_grpc.add_InventoryDemoServicer_to_server(AioInventoryServicer(inventory), server)
    checker = aio_health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    add_pressure_services(server, guard)  # OpenRcaService, MemoryPressureService
    add_reflection(server, REFLECTED)  # methods resolve too (ghz, grpcurl describe)
    bound = bind(server, host, port)
    await server.start()
    await checker.set("", SERVING)
    await checker.set(SERVICE, SERVING)
    return server, bound, checker


@contextlib.contextmanager
def background(
    guard: Guard,
    inventory: Inventory,
    *,
    aio: bool = False,
    host: str = "127.0.0.1",
    trust: TrustPolicy | None = None,
) -> Iterator[int]:
    """Serve in the background while the block runs; yield the bound port.

    The sync server runs on its own thread pool; the aio server on an event loop in a thread.
    The guard is not started here: whoever owns it samples it (or steps it, in tests).
    """
    if not aio:
        server, port, _ = build_sync_server(guard, inventory, host=host, trust=trust)
        try:
            yield port
        finally:
            server.stop(0).wait(10)
        return
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="inventory-aio", daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    try:
        aio_server, port, _ = run(build_aio_server(guard, inventory, host=host, trust=trust))
        try:
            yield port
        finally:
            run(aio_server.stop(0))
    finally:
        run(loop.shutdown_default_executor())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def log_transitions(guard: Guard, inventory: Inventory) -> None:
    """Log each level change with the cache's state (what the operator wants to see)."""

    def changed(old: Level, new: Level, pressure: Pressure) -> None:
        stats = inventory.cache.stats
        log.info(
            "level %d -> %d (usage %.1f%%); cache %d entries, hits %d, misses %d, denied %s",
            old,
            new,
            pressure.usage_ratio * 100,
            len(inventory.cache),
            stats.hits,
            stats.misses,
            dict(stats.denied),
        )

    guard.on_transition(changed)


class Recycle:
    """Whether the guard asked this process to recycle itself (``on_stuck: recycle``); wired
    to stop the server as a signal does, and to make :func:`main` exit 75."""

    def __init__(self, guard: Guard, stop: Callable[[], object]) -> None:
        self.requested = False
        self._stop = stop
        guard.on_recycle(self._recycle)

    def _recycle(self, pressure: Pressure) -> None:
        log.warning(
            "recycling: level 3 stuck at %.1f%% on retained memory; draining, then exit %d",
            pressure.usage_ratio * 100,
            RECYCLE_EXIT_STATUS,
        )
        self.requested = True
        self._stop()


def run_sync(
    guard: Guard,
    inventory: Inventory,
    host: str,
    port: int,
    metrics_url: str | None = None,
    drain_s: float = DRAIN_DELAY_SECONDS,
) -> bool:
    """Serve until SIGTERM or SIGINT, or until the guard asks to recycle (then return True)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    recycle = Recycle(guard, stop.set)  # runs on the sampler thread
    guard.start()
    try:
        server, bound, checker = build_sync_server(guard, inventory, host=host, port=port)
    except CannotListen:
        guard.stop()
        raise
    announce(bound, host, "sync", metrics_url)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        log.info("stopping: NOT_SERVING, calls still taken for %g s", drain_s)
        checker.enter_graceful_shutdown()
        time.sleep(drain_s)  # the listener stays open: new connections see NOT_SERVING
        server.stop(GRACE_SECONDS).wait()
        guard.stop()
    return recycle.requested


async def run_aio(
    guard: Guard,
    inventory: Inventory,
    host: str,
    port: int,
    metrics_url: str | None = None,
    drain_s: float = DRAIN_DELAY_SECONDS,
) -> bool:
    """Serve until SIGTERM or SIGINT, or until the guard asks to recycle (then return True);
    the guard samples in an asyncio task."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    recycle = Recycle(guard, stop.set)  # runs in the sampler task, on this loop
    await guard.start_async()
    try:
        server, bound, checker = await build_aio_server(guard, inventory, host=host, port=port)
    except CannotListen:
        await guard.stop_async()
        raise
    announce(bound, host, "aio", metrics_url)
    try:
        await stop.wait()
    finally:
        log.info("stopping: NOT_SERVING, calls still taken for %g s", drain_s)
        await checker.enter_graceful_shutdown()
        await asyncio.sleep(drain_s)  # the listener stays open: new connections see NOT_SERVING
        await server.stop(GRACE_SECONDS)
        await guard.stop_async()
    return recycle.requested


def announce(port: int, host: str, kind: str, metrics_url: str | None = None) -> None:
    """The bound port alone on the first stdout line (scripts read it), then ``metrics URL``
    when serving /metrics, then a log line."""
    print(port, flush=True)
    if metrics_url is not None:
        print(f"metrics {metrics_url}", flush=True)
    log.info("inventory (%s) listening on %s:%d", kind, host, port)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.python.server", description="memcontract example inventory server"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=50061, help="port (0: any free port)")
    parser.add_argument("--aio", action="store_true", help="serve with grpc.aio")
    parser.add_argument("--contract", default=str(CONTRACT), help="memory contract file")
    parser.add_argument("--module", default="inventory", help="module of the contract in force")
    parser.add_argument("--db", default=":memory:", help="SQLite file (default: in memory)")
    parser.add_argument("--skus", type=int, default=1000, help="items seeded at start")
    parser.add_argument("--cache-size", type=int, default=256, help="LRU cache entries")
    parser.add_argument(
        "--drain-delay-s",
        type=float,
        default=DRAIN_DELAY_SECONDS,
        help="on SIGTERM, seconds of NOT_SERVING while calls are still taken, before the "
        f"{GRACE_SECONDS:g} s grace (default {DRAIN_DELAY_SECONDS:g})",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics on this port of --host (0: any free port; needs the "
        "prometheus extra); default: no /metrics",
    )
    return parser.parse_args(argv)


def serve_metrics(port: int | None, host: str) -> str | None:
    """Serve /metrics on ``host:port`` if a port is given; return its URL."""
    if port is None:
        return None
    from memcontract.metrics import serve_prometheus

    return serve_prometheus(port, addr=host).url


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    # Before the guard: its counters then start at 0 on /metrics (see memcontract.metrics).
    metrics_url = serve_metrics(args.metrics_port, args.host)
    guard = Guard(Contract.load(args.contract, module=args.module))
    inventory = Inventory(guard, db_path=args.db, skus=args.skus, cache_size=args.cache_size)
    log_transitions(guard, inventory)
    try:
        if args.aio:
            recycled = asyncio.run(
                run_aio(guard, inventory, args.host, args.port, metrics_url, args.drain_delay_s)
            )
        else:
            recycled = run_sync(
                guard, inventory, args.host, args.port, metrics_url, args.drain_delay_s
            )
    except CannotListen as err:
        print(f"inventory: {err}", file=sys.stderr)
        return 2
    finally:
        inventory.close()
    return RECYCLE_EXIT_STATUS if recycled else 0


if __name__ == "__main__":
    sys.exit(main())
