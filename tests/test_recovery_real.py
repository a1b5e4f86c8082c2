"""Issue 9's run with real memory and a real client: the example server (a subprocess, sync and
aio) under a 96 MiB contract, overloaded with concurrent ``Report`` calls while ``Ping`` runs.
It sheds while the load is on; within 15 s of the load's end non-core calls succeed again,
with no restart (before the fix: still shed at level 3 15 s later, RSS 98-119 MiB). With
``on_stuck: recycle`` the server goes NOT_SERVING, drains and exits 75 instead."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from memcontract.recovery import RECYCLE_EXIT_STATUS

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.python.inventory_demo.v1 import inventory_demo_pb2 as pb  # noqa: E402
from examples.python.inventory_demo.v1 import inventory_demo_pb2_grpc as pb_grpc  # noqa: E402
from examples.python.overload import first_success, overload  # noqa: E402

BUDGET_MB = 96
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
RECOVERY_LIMIT = 15.0
MIN_LOAD_SECONDS = 6.0


def contract(tmp_path: Path, budget_mb: int = BUDGET_MB, extra: str = "") -> Path:
    """The example contract with the inventory's budget (and any ``extra`` fields) changed."""
    text = (ROOT / "examples/python/memory_contract.yaml").read_text()
    path = tmp_path / "memory_contract.yaml"
    path.write_text(text.replace("max_heap_mb: 512", f"max_heap_mb: {budget_mb}{extra}", 1))
    return path


@contextmanager
def server(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    """The example server in a subprocess: (process, port, its log file); killed after."""
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "examples.python.server", "--port", "0", *args]
    with log.open("w") as err:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )
    try:
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(30)
        if not first or not first[0].strip().isdigit():
            pytest.fail(f"the server printed no port: {first!r}\n{log.read_text()}")
        yield proc, int(first[0]), log
    finally:
        proc.kill()
        proc.wait(10)


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} for {pid}")


LOW_LEVELS = ("?", "0", "1")  # "?": trailers without keys, a quiet server (level 0)


def level_after(stub: Any, since: float, limit: float) -> str:
    """Poll ``GetStock`` every 0.2 s until its trailers say level 1 or below, or until ``limit``
    seconds after ``since`` (monotonic); the last level read."""
    while True:
        try:
            _, call = stub.GetStock.with_call(pb.GetStockRequest(sku="sku-0001"), timeout=5)
            trailers = call.trailing_metadata()
        except grpc.RpcError as err:
            trailers = err.trailing_metadata()  # type: ignore[attr-defined]
        level = next((str(v) for k, v in trailers or () if k == "x-memory-level"), "?")
        if level in LOW_LEVELS or time.monotonic() - since >= limit:
            return level
        time.sleep(0.2)  # pacing the polls


def overload_until_shed(stub: pb_grpc.InventoryDemoStub) -> Any:
    """Overload until level 3 has shed 50 reports (and at least ``MIN_LOAD_SECONDS``): 12
    callers of 40,000-row reports, about twice the budget (with 20,000 rows, 1.3 to 1.4 times;
    once, on a slow machine, never over it)."""
    began = time.monotonic()
    return overload(
        stub,
        callers=12,
        rows=40_000,
        seconds=25,
        ping_per_sec=20,
        until=lambda r: (
            r.count("Report", "RESOURCE_EXHAUSTED") >= 50
            and time.monotonic() - began >= MIN_LOAD_SECONDS
        ),
    )


@pytest.mark.parametrize("mode", [[], ["--aio"]], ids=["sync", "aio"])
def test_non_core_calls_succeed_within_15s_of_the_load_ending(
    tmp_path: Path, mode: list[str]
) -> None:
    with server(tmp_path, "--contract", str(contract(tmp_path)), *mode) as (proc, port, log):
        pid = proc.pid
        start_rss = rss_mb(pid)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.InventoryDemoStub(channel)
            load = overload_until_shed(stub)
            after_rss = rss_mb(pid)
            watch = first_success(stub, load.ended_at, limit=RECOVERY_LIMIT)
            level = level_after(stub, load.ended_at, RECOVERY_LIMIT)
        peak_rss = rss_mb(pid, "VmHWM")
        diagnosis = (
            f"load {dict(load.calls)}; RSS {start_rss:.0f} MiB at start, {peak_rss:.0f} peak, "
            f"{after_rss:.0f} after the load; after it: {watch.seen[:5]} ... {watch.seen[-3:]}\n"
            + log.read_text()[-3000:]
        )
        # the load was shed (the core Ping never was) ...
        assert load.count("Report", "RESOURCE_EXHAUSTED") >= 50, diagnosis
        assert load.count("Ping", "OK") > 0, diagnosis
        assert load.count("Ping", "RESOURCE_EXHAUSTED") == 0, diagnosis
        # (Level 3 may already have been left on live memory when the load's last call ended,
        # or not yet: the first answer after it is not asserted. Before live memory counted,
        # the process stayed at level 3 with RSS 98-119 MiB until a restart.)
        # Within 15 s a non-core call succeeds again, with no restart
        assert watch.first_ok is not None, diagnosis
        assert watch.first_ok <= RECOVERY_LIMIT, diagnosis
        # ... and within the same 15 s the server says level 1 or below ("?": no keys, quiet)
        assert level in LOW_LEVELS, f"level {level} 15 s after the load; {diagnosis}"
        assert rss_mb(pid) > 0  # the same process


@pytest.mark.parametrize("mode", [[], ["--aio"]], ids=["sync", "aio"])
def test_on_stuck_recycle_drains_and_exits_75(tmp_path: Path, mode: list[str]) -> None:
    # 64 MiB: after the load the process stays above its budget even once memory is handed back
    path = contract(tmp_path, 64, "\n    on_stuck: recycle")
    with server(tmp_path, "--contract", str(path), *mode) as (proc, port, log):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            statuses: list[int] = []
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=90)
            watcher = threading.Thread(target=lambda: _collect(watch, statuses), daemon=True)
            watcher.start()
            load = overload(
                pb_grpc.InventoryDemoStub(channel),
                callers=12,
                seconds=20,
                ping_per_sec=20,
                until=lambda r: r.count("Report", "RESOURCE_EXHAUSTED") >= 50,
            )
            code = proc.wait(45)
            watcher.join(10)
        text = log.read_text()
        assert load.count("Report", "RESOURCE_EXHAUSTED") >= 50, text[-3000:]
        assert code == RECYCLE_EXIT_STATUS == 75, text[-3000:]
        assert "recycling: level 3 stuck" in text and "stopping" in text, text[-3000:]
        assert statuses[0] == SERVING and NOT_SERVING in statuses, (statuses, text[-3000:])


def _collect(stream: Any, into: list[int]) -> None:
    try:
        for reply in stream:
            into.append(reply.status)
    except grpc.RpcError:
        pass  # the server went away: the end of the watch
