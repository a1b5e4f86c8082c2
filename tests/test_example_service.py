"""The Python example (examples/python) over real loopback servers, sync and aio: the cache in
front of SQLite reacts to the caller's and the local pressure, level 3 sheds Report and
GetStock but not Ping or health, the cache shrinks; the entry points run by hand; the
generated code matches the proto."""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memcontract.interceptors import aio_client_interceptors, client_interceptor, wrap_channel

from memcontract import Contract, Level
from memcontract.cache import LOCAL_PRESSURE, PEER_PRESSURE
from memcontract.telemetry import CACHE_DENIED, SHEDS
from memcontract.trust import TrustPolicy

from .support import Rig

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.python import client as example_client  # noqa: E402
from examples.python import genproto, inventory  # noqa: E402
from examples.python import server as example_server  # noqa: E402
from examples.python.inventory import SERVICE, Inventory  # noqa: E402
from examples.python.inventory_demo.v1 import inventory_demo_pb2 as pb  # noqa: E402
from examples.python.inventory_demo.v1 import inventory_demo_pb2_grpc as pb_grpc  # noqa: E402

CONTRACT = ROOT / "examples" / "python" / "memory_contract.yaml"
KINDS = ["sync", "aio"]
RE = grpc.StatusCode.RESOURCE_EXHAUSTED
TIMEOUT = 10


def inventory_rig() -> Rig:
    """The server's guard: the example contract's ``inventory`` module over a FakeProbe."""
    rig = Rig(Contract.load(CONTRACT, module="inventory"))
    rig.step(0.42)
    return rig


def order_rig(usage: float) -> Rig:
    """The caller's guard: the ``order`` module, reporting ``usage``.

    Its capacity is 250 MiB (a cgroup limit below the 256 MiB budget), where every usage used
    here is a whole number of bytes: the ratio the server reads is exactly ``usage``.
    """
    rig = Rig(Contract.load(CONTRACT, module="order"))
    rig.step(usage, capacity_mb=250)
    assert rig.guard.pressure.usage_ratio == usage
    return rig


def at_level(rig: Rig, level: Level) -> Rig:
    usage = {Level.DEGRADED: 0.91, Level.CRITICAL: 0.97}[level]
    for _ in range(int(level)):
        rig.step(usage)
    assert rig.guard.level == level
    return rig


class Served:
    """A running example server: its address, its inventory (db_reads, cache) and its guard."""

    def __init__(self, address: str, inventory: Inventory, rig: Rig) -> None:
        self.address, self.inventory, self.rig = address, inventory, rig

    @property
    def stats(self) -> Any:
        return self.inventory.cache.stats

    def channel(self, caller: Rig | None = None) -> grpc.Channel:
        """A sync channel, through the client interceptor when a caller guard is given."""
        channel = grpc.insecure_channel(self.address)
        if caller is None:
            return channel
        return grpc.intercept_channel(channel, client_interceptor(caller.guard, self.address))


@contextlib.contextmanager
def serve(
    kind: str, rig: Rig | None = None, *, trust: TrustPolicy | None = None, **inventory_kw: Any
) -> Iterator[Served]:
    """Serve the example (``kind`` "sync" or "aio") with the guard of ``rig`` on loopback."""
    rig = rig or inventory_rig()
    inv = Inventory(rig.guard, **inventory_kw)
    try:
        with example_server.background(rig.guard, inv, aio=kind == "aio", trust=trust) as port:
            yield Served(f"127.0.0.1:{port}", inv, rig)
    finally:
        inv.close()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def get_stock(channel: grpc.Channel, sku: str) -> tuple[pb.GetStockResponse, dict[str, Any]]:
    reply, call = pb_grpc.InventoryDemoStub(channel).GetStock.with_call(
        pb.GetStockRequest(sku=sku), timeout=TIMEOUT
    )
    return reply, dict(call.trailing_metadata())


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def rpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


# -- the cache in front of the database ---------------------------------------------------------


def test_get_stock_reads_the_database_once_then_the_cache(kind: str) -> None:
    with serve(kind) as s, s.channel() as channel:
        replies = [get_stock(channel, "sku-0007") for _ in range(3)]
    assert [r.source for r, _ in replies] == ["database", "cache", "cache"]
    assert {(r.sku, r.quantity) for r, _ in replies} == {("sku-0007", 7 * 37 % 500)}
    assert all(r.cache_denied == "" and not r.caller.present for r, _ in replies)
    assert s.inventory.db_reads == 1
    assert (s.stats.hits, s.stats.misses, s.stats.admitted) == (2, 1, 1)
    trailers = replies[0][1]
    assert trailers["x-memory-contract"] == "demo-1"
    assert trailers["x-memory-level"] == "0" and trailers["x-memory-usage"] == "42%"
    assert trailers["x-memory-capacity"] == "512"


def test_pressured_caller_makes_the_server_skip_cache_writes(kind: str) -> None:
    caller = order_rig(0.9)
    with serve(kind) as s:
        with s.channel(caller) as channel:
            reads = []
            for _ in range(4):
                reply, _ = get_stock(channel, "sku-0005")
                assert (reply.source, reply.cache_denied) == ("database", PEER_PRESSURE)
                assert reply.caller.present and reply.caller.module == "order"
                assert reply.caller.usage_ratio == pytest.approx(0.9)
                reads.append(s.inventory.db_reads)
        assert reads == [1, 2, 3, 4]  # every call read the database
        assert len(s.inventory.cache) == 0
        assert s.stats.denied[PEER_PRESSURE] == 4 and s.stats.admitted == 0
        assert s.rig.guard.telemetry.by_attribute[(CACHE_DENIED, "reason", PEER_PRESSURE)] == 4
        # the caller's table holds what the server reported
        seen = caller.guard.peers.get(s.address)
        assert seen is not None and seen.module == "inventory" and seen.level == Level.NORMAL
        # a calm caller gets the same SKU cached
        calm = order_rig(0.3)
        with s.channel(calm) as channel:
            sources = [get_stock(channel, "sku-0005")[0].source for _ in range(2)]
        assert sources == ["database", "cache"]
        assert s.inventory.db_reads == 5 and s.stats.admitted == 1


@pytest.mark.parametrize("wrapped", [False, True], ids=["interceptors", "wrap_channel"])
def test_pressured_aio_caller_makes_the_server_skip_cache_writes(kind: str, wrapped: bool) -> None:
    caller = order_rig(0.9)

    def open_channel(address: str) -> Any:
        if wrapped:  # a generated stub over a wrapped channel
            return wrap_channel(grpc.aio.insecure_channel(address), caller.guard, address)
        interceptors = aio_client_interceptors(caller.guard, address)
        return grpc.aio.insecure_channel(address, interceptors=interceptors)

    async def run(address: str) -> list[pb.GetStockResponse]:
        async with open_channel(address) as channel:
            stub = pb_grpc.InventoryDemoStub(channel)
            return [
                await stub.GetStock(pb.GetStockRequest(sku="sku-0009"), timeout=TIMEOUT)
                for _ in range(3)
            ]

    with serve(kind) as s:
        replies = asyncio.run(run(s.address))
    assert [r.cache_denied for r in replies] == [PEER_PRESSURE] * 3
    assert s.inventory.db_reads == 3 and s.stats.denied[PEER_PRESSURE] == 3


def test_caller_at_the_threshold_is_still_cached(kind: str) -> None:
    caller = order_rig(0.80)  # the rule is "above 0.80"
    with serve(kind) as s, s.channel(caller) as channel:
        sources = [get_stock(channel, "sku-0003")[0].source for _ in range(2)]
    assert sources == ["database", "cache"] and s.inventory.db_reads == 1


def test_local_level_2_denies_cache_writes(kind: str) -> None:
    rig = at_level(inventory_rig(), Level.DEGRADED)
    with serve(kind, rig) as s, s.channel() as channel:
        replies = [get_stock(channel, "sku-0011") for _ in range(3)]
    assert [(r.source, r.cache_denied) for r, _ in replies] == [("database", LOCAL_PRESSURE)] * 3
    assert replies[0][1]["x-memory-level"] == "2"
    assert s.inventory.db_reads == 3 and len(s.inventory.cache) == 0
    assert s.stats.denied[LOCAL_PRESSURE] == 3 and s.stats.admitted == 0
    assert rig.guard.telemetry.by_attribute[(CACHE_DENIED, "reason", LOCAL_PRESSURE)] == 3


# -- level 3 ------------------------------------------------------------------------------------


def test_level3_sheds_report_and_get_stock_but_serves_ping_and_health(kind: str) -> None:
    rig = at_level(inventory_rig(), Level.CRITICAL)
    with serve(kind, rig) as s, s.channel() as channel:
        stub = pb_grpc.InventoryDemoStub(channel)
        report = rpc_error(lambda: list(stub.Report(pb.ReportRequest(rows=100), timeout=TIMEOUT)))
        stock = rpc_error(lambda: stub.GetStock(pb.GetStockRequest(sku="sku-0001"), timeout=5))
        ping, ping_call = stub.Ping.with_call(pb.PingRequest(), timeout=TIMEOUT)
        checker = health_pb2_grpc.HealthStub(channel)
        checks = [
            checker.Check.with_call(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
            for name in ("", SERVICE)
        ]
    for err in (report, stock):
        assert err.code() == RE
        assert "inventory" in err.details() and "level 3" in err.details()
        trailers = dict(err.trailing_metadata())
        assert trailers["x-memory-level"] == "3"
        assert trailers["grpc-retry-pushback-ms"] == "1000"
    assert s.inventory.reports == 0 and s.inventory.db_reads == 0  # no handler ran
    assert rig.guard.telemetry.counts[SHEDS] == 2
    assert not ping.caller.present
    assert dict(ping_call.trailing_metadata())["x-memory-level"] == "3"
    for reply, call in checks:
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert dict(call.trailing_metadata())["x-memory-level"] == "3"


def test_level3_fails_fast_in_the_caller_after_one_shed(kind: str) -> None:
    caller = order_rig(0.3)
    rig = at_level(inventory_rig(), Level.CRITICAL)
    with serve(kind, rig) as s, s.channel(caller) as channel:
        stub = pb_grpc.InventoryDemoStub(channel)
        codes = []
        for i in range(3):
            try:
                list(stub.Report(pb.ReportRequest(rows=10), timeout=TIMEOUT))
            except grpc.RpcError as err:
                codes.append(err.code())
            if i == 0:
                # grpcio runs a stream's done callbacks on its own thread, after waking the
                # reader: the caller's table is updated just after the error is raised
                wait_for(lambda: caller.guard.peers.blocked(s.address))
        stub.Ping(pb.PingRequest(), timeout=TIMEOUT)  # core in the caller's contract too
    assert codes == [RE] * 3
    assert rig.guard.telemetry.counts[SHEDS] == 1  # the other two never left the caller
    assert caller.guard.telemetry.counts["memcontract.fast_fail"] == 2


def test_level3_shrinks_the_cache_keeping_the_most_recent(kind: str) -> None:
    rig = inventory_rig()
    with serve(kind, rig, cache_size=256) as s, s.channel() as channel:
        for i in range(1, 101):
            get_stock(channel, f"sku-{i:04d}")
        for i in range(1, 11):  # the ten oldest become the most recent
            assert get_stock(channel, f"sku-{i:04d}")[0].source == "cache"
        assert len(s.inventory.cache) == 100
        at_level(rig, Level.CRITICAL)
        assert s.stats.shrinks == 1
        assert len(s.inventory.cache) == 64  # a quarter of 256
        kept = set(s.inventory.cache.cache.keys())
        assert {f"sku-{i:04d}" for i in range(1, 11)} <= kept
        assert "sku-0011" not in kept and "sku-0100" in kept
        # recovery: one level down per five calm samples; writes are admitted again at level 1
        while rig.guard.level > Level.ALERT:
            rig.step(0.3)
        reads = s.inventory.db_reads
        assert [get_stock(channel, "sku-0011")[0].source for _ in range(2)] == [
            "database",
            "cache",
        ]
        assert s.inventory.db_reads == reads + 1


# -- the methods themselves ---------------------------------------------------------------------


def test_report_streams_a_few_mib_in_chunks(kind: str) -> None:
    with serve(kind) as s, s.channel() as channel:
        chunks = list(pb_grpc.InventoryDemoStub(channel).Report(pb.ReportRequest(), timeout=30))
    assert [c.index for c in chunks] == list(range(20))
    rows = [row for c in chunks for row in c.rows]
    assert len(rows) == inventory.DEFAULT_REPORT_ROWS
    assert sum(c.ByteSize() for c in chunks) > 3 * 1024 * 1024
    assert rows[0].sku == "sku-0001" and rows[1000].sku == "sku-0001"
    assert s.inventory.reports == 1 and s.inventory.db_reads == 1


def test_invalid_and_unknown_requests(kind: str) -> None:
    with serve(kind) as s, s.channel() as channel:
        stub = pb_grpc.InventoryDemoStub(channel)
        missing = rpc_error(lambda: stub.GetStock(pb.GetStockRequest(sku="nope"), timeout=5))
        empty = rpc_error(lambda: stub.GetStock(pb.GetStockRequest(), timeout=5))
        too_big = rpc_error(lambda: list(stub.Report(pb.ReportRequest(rows=10**7), timeout=5)))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert dict(missing.trailing_metadata())["x-memory-level"] == "0"
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert too_big.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert s.inventory.reports == 0 and s.stats.admitted == 0


def test_ping_sees_the_callers_pressure(kind: str) -> None:
    caller = order_rig(0.66)
    with serve(kind) as s, s.channel(caller) as channel:
        reply = pb_grpc.InventoryDemoStub(channel).Ping(pb.PingRequest(), timeout=TIMEOUT)
    assert reply.caller.present and reply.caller.usage_ratio == pytest.approx(0.66)
    assert (reply.caller.module, reply.caller.level) == ("order", 0)


def test_database_file_is_seeded_at_start(tmp_path: Path) -> None:
    path = str(tmp_path / "stock.db")
    first = inventory.StockDB(path, skus=5)
    first.close()
    again = inventory.StockDB(path, skus=3)  # reseeded, not appended
    assert [s for s, _ in again.all_stock()] == ["sku-0001", "sku-0002", "sku-0003"]
    assert again.quantity("sku-0004") is None and again.reads == 2
    again.close()


# -- the contract, the generated code, the docs -------------------------------------------------


def test_contract_file() -> None:
    server = Contract.load(CONTRACT, module="inventory").module
    client = Contract.load(CONTRACT, module="order").module
    core = server.core_matcher()
    assert core.match(f"/{SERVICE}/Ping") and core.match("/grpc.health.v1.Health/Check")
    assert not core.match(f"/{SERVICE}/GetStock") and not core.match(f"/{SERVICE}/Report")
    assert client.core_matcher().match(f"/{SERVICE}/Ping")
    assert (server.max_heap_mb, client.max_heap_mb) == (512, 256)


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    for fresh in genproto.generate(tmp_path):
        committed = Path(genproto.HERE) / fresh.relative_to(tmp_path)
        assert committed.read_bytes() == fresh.read_bytes(), (
            f"{committed} drifted from the proto: run python examples/python/genproto.py"
        )


def test_example_doctests() -> None:
    result = doctest.testmod(inventory)
    assert result.attempted > 0 and result.failed == 0


# -- the entry points, as run by hand -----------------------------------------------------------


def start_server(*args: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.python.server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(20)
    if not first or not first[0].strip().isdigit():
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"the server printed no port: {first!r}\n{err}")
    return proc, int(first[0])


@pytest.mark.parametrize("mode", [[], ["--aio"]], ids=["sync", "aio"])
def test_server_and_client_entry_points(mode: list[str]) -> None:
    proc, port = start_server(*mode)
    try:
        target = f"127.0.0.1:{port}"
        calm, pressured = io.StringIO(), io.StringIO()
        common = ["--target", target, "--calls", "2", "--report-rows", "3000"]
        assert example_client.main([*common, "--fake-usage", "0.3"], out=calm) == 0
        assert (
            example_client.main(
                [*common, "--fake-usage", "0.9", "--sku", "sku-0002"], out=pressured
            )
            == 0
        )
        cli = subprocess.run(
            [sys.executable, "-m", "examples.python.client", "--target", target, "--no-report",
             "--calls", "1", "--fake-usage", "0.1"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    text = calm.getvalue()
    assert "GetStock sku-0001: OK quantity=37 source=database\n" in text
    assert "GetStock sku-0001: OK quantity=37 source=cache\n" in text
    assert "Report: OK 3000 rows in 3 chunks" in text
    assert "x-memory-contract=demo-1" in text and "x-memory-capacity=512" in text
    assert "x-memory-pressure-bin=<" in text
    # the calm caller's keys went with its first call only (calm is free): absent, calm
    assert "Ping: OK (the server saw this caller's pressure: calm)" in text
    assert f"peers (as reported to this order process):\n  {target}  usage " in text
    assert "module inventory  contract demo-1" in text
    assert pressured.getvalue().count("source=database cache_denied=peer_pressure") == 2
    assert cli.returncode == 0, cli.stderr
    assert "GetStock sku-0001: OK" in cli.stdout and "Ping: OK" in cli.stdout
    assert proc.returncode == 0, err
    assert "listening on 127.0.0.1" in err and "stopping" in err


@pytest.mark.parametrize("mode", [[], ["--aio"]], ids=["sync", "aio"])
def test_sigterm_drains_not_serving_while_calls_are_still_taken(mode: list[str]) -> None:
    """SIGTERM: for --drain-delay-s a new connection is still accepted, its health check says
    NOT_SERVING and calls are served; then the grace, and exit 0 (the listener used to close
    at once, so a probe on a new connection never saw NOT_SERVING)."""
    proc, port = start_server(*mode, "--drain-delay-s", "4")
    try:
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        deadline = signalled + 3.5
        status = None
        while status != health_pb2.HealthCheckResponse.NOT_SERVING:
            assert time.monotonic() < deadline, f"health {status} within the drain delay"
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # a new connection
                status = (
                    health_pb2_grpc.HealthStub(channel)
                    .Check(health_pb2.HealthCheckRequest(), timeout=1)
                    .status
                )
                pb_grpc.InventoryDemoStub(channel).Ping(pb.PingRequest(), timeout=1)
        assert time.monotonic() < deadline
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - signalled >= 4
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_client_reports_an_unreachable_server() -> None:
    out = io.StringIO()
    code = example_client.main(
        ["--target", "127.0.0.1:1", "--calls", "1", "--no-report", "--timeout", "1",
         "--fake-usage", "0.1"],
        out=out,
    )  # fmt: skip
    assert code == 1 and "GetStock: UNAVAILABLE" in out.getvalue()


@pytest.mark.parametrize("mode", [[], ["--aio"]], ids=["sync", "aio"])
def test_a_taken_port_is_refused_with_one_line(mode: list[str]) -> None:
    """grpcio shares a port by default (SO_REUSEPORT): the example refuses one another server
    already serves, and one a plain socket holds, with one line and exit status 2."""
    first, port = start_server(*mode)
    try:
        with socket.socket() as plain:
            plain.bind(("127.0.0.1", 0))
            plain.listen()
            for taken in (port, plain.getsockname()[1]):
                proc = subprocess.run(
                    [sys.executable, "-m", "examples.python.server", "--port", str(taken), *mode],
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert proc.returncode == 2, proc.stderr
                assert proc.stdout == ""
                assert proc.stderr.endswith(
                    f"inventory: cannot listen on 127.0.0.1:{taken}: the port is taken\n"
                ), proc.stderr
                assert "Traceback" not in proc.stderr
    finally:
        first.terminate()
        first.wait(30)
