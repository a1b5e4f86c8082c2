"""``memcontract top``: real grpcio servers on 127.0.0.1 (one with the pressure services, one
with only the interceptor and health, one port with nothing behind it), read once and watched."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc
from memcontract.interceptors import add_pressure_services, server_interceptor
from rich.console import Console

from memcontract.guard import Guard
from memcontract.pressure import Level
from memcontract.top import TargetState, Watcher, read_once, render_table, state_json

from .go_support import GO_CONTRACT, GoServer, build
from .support import Rig, make_contract


@contextlib.contextmanager
def backend(guard: Guard, *, services: bool) -> Iterator[str]:
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(4), interceptors=[server_interceptor(guard)]
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    if services:
        add_pressure_services(server, guard)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait(5)


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def wait_for(what: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memcontract.cli", "top", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_once_json_reads_every_kind_of_target() -> None:
    watched, plain = Rig(make_contract(version="v7")), Rig(make_contract())
    watched.step(0.42)
    plain.step(0.61)
    down = closed_port()
    with backend(watched.guard, services=True) as a, backend(plain.guard, services=False) as b:
        proc = run_cli("--once", "--json", a, b, down)
    assert proc.returncode == 1, proc.stderr  # one target is unreachable
    by_target = {entry["target"]: entry for entry in json.loads(proc.stdout)}
    assert by_target[a]["source"] == "watch"
    assert (by_target[a]["usage_ratio"], by_target[a]["contract_version"]) == (0.42, "v7")
    assert by_target[a]["module"] == "test-module"
    assert by_target[b]["source"] == "health"  # no pressure service: the health trailers
    assert by_target[b]["usage_ratio"] == 0.61
    assert by_target[down] == {
        "target": down,
        "reachable": False,
        "error": by_target[down]["error"],
    }
    assert "unreachable" in by_target[down]["error"]


KEEP: list[bytes] = []


def test_once_allocations_of_a_target_at_level_2() -> None:
    # A real report: the guard's own sampling window (level 2 entered, memory allocated here,
    # one more sample), served by GetAllocationReport.
    rig = Rig(make_contract())
    rig.run([0.91, 0.91])
    assert rig.guard.level == Level.DEGRADED
    KEEP.extend(bytes(4096 + i % 7) for i in range(3000))
    rig.step(0.91)
    wait_for(lambda: rig.guard.allocation_report() is not None)
    with backend(rig.guard, services=True) as address:
        state = read_once(address, allocations=True)
        proc = run_cli("--once", "--allocations", address)
    KEEP.clear()
    sites = state_json(state)["allocations"]["sites"]
    assert any("test_top.py" in site["location"] for site in sites), sites
    assert state_json(state)["allocations"]["level"] == 2
    assert proc.returncode == 0, proc.stderr
    assert "top allocation sites at level 2" in proc.stdout and "test_top.py" in proc.stdout


def test_watchers_update_live_and_show_unreachable_targets() -> None:
    watched, plain = Rig(make_contract()), Rig(make_contract())
    watched.step(0.3)
    plain.step(0.3)
    down = closed_port()
    with backend(watched.guard, services=True) as a, backend(plain.guard, services=False) as b:
        watchers = [Watcher(t, interval=0.2).start() for t in (a, b, down)]
        try:
            wait_for(
                lambda: all(w.state.pressure for w in watchers[:2]) and watchers[2].state.error
            )
            assert [w.state.source for w in watchers[:2]] == ["watch", "health"]
            for _ in range(3):
                watched.step(0.97)
                plain.step(0.97)
            wait_for(lambda: all(w.state.pressure.level == Level.CRITICAL for w in watchers[:2]))
            state = watchers[0].state
            assert state.level_seen_entering and state.pressure.usage_ratio == 0.97
            assert "unreachable" in (watchers[2].state.error or "")
            # The table shows all three: levels, and the dead one as such.
            console = Console(record=True, width=160)
            console.print(render_table([w.state for w in watchers]))
            text = console.export_text()
            assert text.count("3 CRITICAL") == 2 and "unreachable" in text and "97%" in text
        finally:
            for watcher in watchers:
                watcher.stop()


def test_a_target_that_goes_away_is_shown_as_such_while_the_rest_update() -> None:
    first, second = Rig(make_contract()), Rig(make_contract())
    first.step(0.2)
    second.step(0.2)
    with backend(second.guard, services=True) as b:
        with backend(first.guard, services=True) as a:
            watchers = [Watcher(t, interval=0.2).start() for t in (a, b)]
            wait_for(lambda: all(w.state.pressure for w in watchers))
        try:
            wait_for(lambda: watchers[0].state.error is not None)
            second.step(0.5)
            wait_for(lambda: watchers[1].state.pressure.usage_ratio == 0.5)  # type: ignore[union-attr]
            assert watchers[1].state.error is None
        finally:
            for watcher in watchers:
                watcher.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: TARGET"),
        (("localhost",), "target 'localhost' is not HOST:PORT"),
        (("h:99999",), "port must be 1..65535"),
        (("--json", "h:1"), "--json needs --once"),
        (("--interval", "0", "h:1"), "--interval must be 0.1..3600"),
        (("--bogus", "h:1"), "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_exit_2_with_one_message(args: tuple[str, ...], message: str) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stdout == ""


def test_time_at_level_is_a_lower_bound_until_a_change_is_seen() -> None:
    rig = Rig(make_contract())
    rig.step(0.3)
    state = TargetState("h:1").with_pressure(rig.guard.pressure, "watch", 100.0)
    console = Console(record=True, width=160)
    console.print(render_table([state], now=165.0))
    assert "≥1m05s" in console.export_text()


@pytest.fixture(scope="module")
def go_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("gobin"))


def test_once_reads_a_go_service_through_its_pressure_service(go_bin: Path) -> None:
    argv = [str(go_bin / "inventory"), "-listen", "127.0.0.1:0", "-contract", str(GO_CONTRACT)]
    with GoServer([*argv, "-module", "inventory", "-force-usage", "0.97"]) as server:
        proc = run_cli("--once", "--json", "--allocations", server.address)
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)
    assert (entry["source"], entry["usage_ratio"], entry["level"]) == ("watch", 0.97, 3)
    assert entry["module"] == "inventory" and "allocations" not in entry  # Go keeps none


def test_once_on_a_pipe_prints_full_columns() -> None:
    """rich clips to 80 columns when stdout is not a terminal; `top --once | cat` must not."""
    rig = Rig(make_contract(version="v7"))
    rig.step(0.42)
    down = closed_port()
    with backend(rig.guard, services=True) as address:
        proc = run_cli("--once", address, down)
    assert proc.returncode == 1, proc.stderr  # one target is unreachable
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) > 80
    assert not any("…" in line for line in lines)  # nothing cut short
    assert any(address in line and "42" in line for line in lines)


def test_watching_into_a_pipe_prints_a_table_every_interval() -> None:
    """Not a terminal: a table per interval, flushed while it runs (rich's live view printed
    nothing into a pipe until it stopped, and nothing at all when killed)."""
    rig = Rig(make_contract(version="v7"))
    rig.step(0.42)
    with backend(rig.guard, services=True) as address:
        proc = subprocess.Popen(
            [sys.executable, "-m", "memcontract.cli", "top", "--interval", "0.2", address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            lines: queue.Queue[str] = queue.Queue()
            threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()]).start()
            deadline = time.monotonic() + 30

            def next_row(wanted: str) -> str:
                while True:
                    try:
                        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        raise AssertionError(f"no row with {wanted!r} printed in 30 s") from None
                    if address in line and wanted in line:
                        return line

            first = next_row("42")
            for _ in range(3):
                rig.step(0.97)
            later = next_row("3 CRITICAL")
            assert proc.poll() is None  # still watching: the tables came while it ran
            assert "…" not in first + later  # full width, nothing cut short
        finally:
            proc.terminate()
            proc.wait(10)
