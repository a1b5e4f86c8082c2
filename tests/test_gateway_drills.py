"""Fault drills of the Go gateway under load (``make drills``; deselected by ``make test``).

Two Go inventory upstreams behind one gateway, a grpc.aio client making ~150 unary calls a
second: one upstream is killed with SIGKILL mid-load (after the first second, fewer than 1 %
of calls may fail), then restarted on the same port (it must get calls within a second of
listening).
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path

import grpc
import grpc.aio
import pytest

from .gateway_support import build_gateway
from .go_support import GODIR, GoServer, build

sys.path.insert(0, str(GODIR / "gen" / "python"))
from inventory.v1 import inventory_pb2, inventory_pb2_grpc  # type: ignore[import-not-found]

pytestmark = [pytest.mark.drill, pytest.mark.timeout(300)]

RATE = 150.0  # calls a second, paced from an absolute schedule


@pytest.fixture(scope="module")
def go_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("gobin"))


@pytest.fixture(scope="module")
def gw_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_gateway(tmp_path_factory.mktemp("gwbin"))


async def _load(address: str, seconds: float, at: dict[float, str]) -> list[tuple[float, str]]:
    """Calls at RATE for ``seconds``; each call's start (s from the first) and its code.
    ``at`` maps a time to an event name the caller waits for (set into the results)."""
    results: list[tuple[float, str]] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)

        async def one(started: float, i: int) -> None:
            try:
                await stub.GetItem(inventory_pb2.GetItemRequest(sku=f"d{i}"), timeout=5)
                results.append((started, "OK"))
            except grpc.aio.AioRpcError as err:
                results.append((started, err.code().name))

        start = time.monotonic()
        tasks = []
        for i in range(int(seconds * RATE)):
            due = start + i / RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # pacing, not synchronisation
            tasks.append(asyncio.create_task(one(due - start, i)))
        await asyncio.gather(*tasks)
    return sorted(results)


def test_kill_one_of_two_upstreams_under_load(go_bin: Path, gw_bin: Path) -> None:
    inventory = str(go_bin / "inventory")
    with (
        GoServer([inventory, "-listen", "127.0.0.1:0"]) as a,
        GoServer([inventory, "-listen", "127.0.0.1:0"]) as b,
        GoServer(
            [
                str(gw_bin),
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                a.address,
                "--upstream",
                b.address,
            ],
            start_timeout=60,
        ) as gw,
    ):
        killed_at: list[float] = []

        async def drill() -> list[tuple[float, str]]:
            load = asyncio.create_task(_load(gw.address, 8.0, {}))
            await asyncio.sleep(2.0)  # two seconds of load on both upstreams first
            assert a.proc is not None
            a.proc.kill()
            killed_at.append(time.monotonic())
            return await load

        load_start = time.monotonic()
        results = asyncio.run(drill())
        kill = killed_at[0] - load_start
        after = [code for started, code in results if started >= kill + 1.0]
        failed_after = [c for c in after if c != "OK"]
        during = [code for started, code in results if kill <= started < kill + 1.0]
        print(
            f"kill at {kill:.2f} s: first second {len(during)} calls, "
            f"{len([c for c in during if c != 'OK'])} failed; after: {len(after)} calls, "
            f"{len(failed_after)} failed"
        )
        assert len(after) > 0.8 * RATE * (8.0 - kill - 1.0) - 50
        assert len(failed_after) < 0.01 * len(after), failed_after
        assert [c for s, c in results if s < kill - 0.2 and c != "OK"] == []


def test_restarted_upstream_gets_calls_within_a_second(go_bin: Path, gw_bin: Path) -> None:
    inventory = str(go_bin / "inventory")
    restarted: list[tuple[GoServer, float]] = []
    with (
        GoServer([inventory, "-listen", "127.0.0.1:0"]) as a,
        GoServer([inventory, "-listen", "127.0.0.1:0"]) as b,
        GoServer(
            [
                str(gw_bin),
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                a.address,
                "--upstream",
                b.address,
            ],
            start_timeout=60,
        ) as gw,
    ):
        port = a.address.rsplit(":", 1)[1]

        async def drill() -> list[tuple[float, str]]:
            load = asyncio.create_task(_load(gw.address, 7.0, {}))
            await asyncio.sleep(1.0)
            assert a.proc is not None
            a.proc.kill()
            await asyncio.sleep(3.0)  # down long enough for the reconnect backoff to reach its cap
            server = GoServer([inventory, "-listen", f"127.0.0.1:{port}"])
            await asyncio.to_thread(server.__enter__)
            restarted.append((server, time.time()))  # just after its listening line was read
            return await load

        asyncio.run(drill())
        server, listening = restarted[0]
        try:
            server.wait_events("call", 1, timeout=10)
        finally:
            server.stop()
        gw.stop(timeout=30)
    ready = [
        datetime.fromisoformat(line["time"]).timestamp()
        for line in gw.events("upstream")
        if line["upstream"] == a.address and line["state"] == "READY"
    ]
    assert len(ready) == 2, gw.events("upstream")
    back = ready[1] - listening
    print(
        f"the restarted upstream was READY (health SERVING) {back * 1000:.0f} ms after it listened"
    )
    assert back <= 1.0
