"""``make demo``: the example inventory server driven into level 3 and back, shown live.

Starts the example server (``examples/python/server.py``) under a small contract
(``examples/contracts/demo.yaml``: a 96 MiB budget for a process that starts near 50 MiB) and
runs three load streams against it with the load harness (``memcontract.loadtest``), side by
side in one event loop and starting together:

* ``Report`` (non-core; each call builds a report of several MiB in memory), open loop, ramping
  up for the load's length, then stopping: this is the load that takes the service over budget;
* ``Ping`` (core), a steady rate from start to end: it must keep being served throughout;
* ``GetStock`` (non-core, cheap), a steady rate from start to end: shed at level 3 like
  ``Report``, and the probe that shows when non-core calls are served again after the load.

Every second it prints what each stream saw and the server's usage and level as read from
the calls' trailers (a ``rich`` table on a terminal, a plain line otherwise). It stops a few
seconds after the first non-core success that follows the load (or when the watch ends) and
ends with one line (here folded)::

    demo: peak level 3, non-core shed N, core success P%, non-core served again S s, back to
    level 1 in T s after the load stopped; report NAME.json NAME.html

``NAME.json``/``.csv``/``.html`` are the three streams merged exactly (the harness's ``merge``,
which keeps each stream's own report inside), with the server's own level transitions (read
from its ``MemoryPressureService.WatchPressure`` stream) as events on the page's timeline;
``NAME.report.json``, ``NAME.ping.json`` and ``NAME.getstock.json`` are the streams apart.
When level 3 is not reached, non-core calls are not served again, the server is not back at
level 1 or below after the load (its trailers say), or the core method fails, the line starts
with ``demo: FAILED:``, says which, and the exit status is 1.

From the repository root::

    python -m examples.python.demo            # about 40 s
    python -m examples.python.demo --short    # about 25 s (what CI runs)
    python -m examples.python.demo --metrics-port 9464   # the server also serves /metrics
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

import grpc
import grpc.aio

from memcontract import Contract
from memcontract.loadtest import LoadSpec, LoadTestError, Report, Second, parse_schedule
from memcontract.loadtest.metrics import Metrics, merge
from memcontract.loadtest.report import jsonfmt, write_all
from memcontract.loadtest.result import Event
from memcontract.loadtest.runner import preflight, run_worker
from memcontract.v1 import memcontract_pb2 as mpb
from memcontract.v1 import memcontract_pb2_grpc as mpb_grpc
from memcontract.wire import from_proto

from .inventory_demo.v1 import inventory_demo_pb2 as pb

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "examples" / "contracts" / "demo.yaml"
SERVICE = "/inventory_demo.v1.InventoryDemo"
SHED = "RESOURCE_EXHAUSTED"
SERVER_COMMAND = (sys.executable, "-m", "examples.python.server")
START_DELAY_S = 0.3  # from the last stream connected to the common start
SERVER_START_TIMEOUT_S = 30.0
# Percent of core calls that must succeed for the demo to pass. Not 99.9: a Report build holds
# the GIL in pure Python, and on a starved machine (2 cores, load average 18) a Ping can wait
# past its 5 s deadline for the GIL and a handler thread while admitted builds finish.
CORE_SUCCESS_MIN = 90.0

#: The streams' keys: the load (Report, non-core), the core stream (Ping), the probe (GetStock).
REPORT, PING, PROBE = "report", "ping", "getstock"


@dataclass(frozen=True)
class Plan:
    """The demo's timing (seconds) and rates (calls/s).

    ``Report`` ramps from ``ramp_from`` to ``ramp_to`` over ``load_s``, then stops; ``Ping``
    and ``GetStock`` run from the start until ``linger_s`` after the first non-core success
    that follows the load, or until ``watch_s`` after the load at most.
    """

    load_s: float = 25.0
    ramp_from: float = 1.0
    ramp_to: float = 15.0
    ping_rps: float = 20.0
    probe_rps: float = 10.0
    watch_s: float = 30.0
    linger_s: float = 3.0
    report_timeout_s: float = 15.0
    report_inflight: int = 6
    # rows per Report: 30,000 take the server to about 1.2x its budget with 6 in flight; with
    # 20,000 the peak was 0.96-0.99x and level 3 was reached in only half the short runs
    report_rows: int = 30_000
    # each Report is held this long after it is built (a slow consumer downstream), so that the
    # reports in flight, and the memory, pile up on a fast idle machine as on a loaded one
    report_hold_ms: int = 1_500
    ping_timeout_s: float = 5.0

    @property
    def ramp(self) -> str:
        """The ``Report`` schedule, as ``memcontract loadtest --schedule`` takes it."""
        return f"ramp:{self.ramp_from:g}->{self.ramp_to:g}:{self.load_s:g}s"


FULL = Plan()
SHORT = replace(FULL, load_s=10.0, watch_s=20.0, linger_s=2.0)


# -- the server ----------------------------------------------------------------------------------


class ExampleServer:
    """The example inventory server in a subprocess (a context manager); ``port`` once started.

    ``command`` runs it (default ``python -m examples.python.server``; ``--port 0 --contract
    FILE`` are added, and ``--metrics-port PORT`` with ``metrics_port``: then ``metrics_url``
    is where it serves Prometheus /metrics).

    Its log (stderr) goes to ``log_path``. Leaving the block stops it with SIGTERM (it drains
    and exits 0), and kills it if it has not exited 10 s later.
    """

    def __init__(
        self,
        contract: pathlib.Path,
        log_path: pathlib.Path,
        command: Sequence[str] = SERVER_COMMAND,
        metrics_port: int | None = None,
    ) -> None:
        self.contract = contract
        self.command = tuple(command)
        self.log_path = log_path
        self.metrics_port = metrics_port
        self.port = 0
        self.metrics_url: str | None = None
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ExampleServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [*self.command, "--port", "0", "--contract", str(self.contract), *self._metrics()],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            self.port = int(_read_line(self.proc, SERVER_START_TIMEOUT_S))
            if self.metrics_port is not None:
                self.metrics_url = _read_line(self.proc, SERVER_START_TIMEOUT_S).split()[-1]
        except (TimeoutError, ValueError) as err:
            self.stop()
            message = f"the example server did not start ({err}); see {self.log_path}"
            raise RuntimeError(message) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _metrics(self) -> tuple[str, ...]:
        return () if self.metrics_port is None else ("--metrics-port", str(self.metrics_port))

    def peak_rss_mib(self) -> float | None:
        """The server's peak resident memory so far (VmHWM, MiB), where /proc has it."""
        if self.proc is None:
            return None
        try:
            status = pathlib.Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next stdout line of ``proc``; TimeoutError after ``timeout`` s or if it exits."""
    line: list[str] = []
    reader = threading.Thread(
        target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(timeout)
    if not line or not line[0]:
        raise TimeoutError(f"no port printed within {timeout:g} s (exit status {proc.poll()})")
    return line[0].strip()


# -- the streams ---------------------------------------------------------------------------------


def stream_specs(port: int, plan: Plan) -> dict[str, LoadSpec]:
    """The three load streams against the server on ``port`` (see the module docstring)."""
    target = f"127.0.0.1:{port}"
    steady_s = plan.load_s + plan.watch_s
    return {
        REPORT: LoadSpec(
            target,
            f"{SERVICE}/Report",
            payload=pb.ReportRequest(
                rows=plan.report_rows, hold_ms=plan.report_hold_ms
            ).SerializeToString(),
            server_streaming=True,
            schedule=parse_schedule(plan.ramp),
            duration=plan.load_s,
            timeout=plan.report_timeout_s,
            max_inflight=plan.report_inflight,
        ),
        PING: LoadSpec(
            target,
            f"{SERVICE}/Ping",
            schedule=parse_schedule(f"const:{plan.ping_rps:g}"),
            duration=steady_s,
            timeout=plan.ping_timeout_s,
        ),
        PROBE: LoadSpec(
            target,
            f"{SERVICE}/GetStock",
            payload=pb.GetStockRequest(sku="sku-0001").SerializeToString(),
            schedule=parse_schedule(f"const:{plan.probe_rps:g}"),
            duration=steady_s,
            timeout=plan.ping_timeout_s,
        ),
    }


class StartTogether:
    """A ``ready()`` for :func:`run_worker`: every stream starts at the same Unix time, once
    all are connected, so their seconds line up (and merge aligned)."""

    def __init__(self, streams: int) -> None:
        self.streams = streams
        self.connected = 0
        self.at = 0.0
        self.go = asyncio.Event()

    async def __call__(self) -> float:
        self.connected += 1
        if self.connected == self.streams:
            self.at = time.time() + START_DELAY_S
            self.go.set()
        await self.go.wait()
        return self.at


@dataclass
class Watch:
    """When the non-core calls came back: the first second (of the run) at or after the end of
    the load in which a ``GetStock`` succeeded, after non-core calls were shed; ``None`` until
    then (and for ever if none was shed: nothing came *back*)."""

    load_s: float
    shed_seen: bool = False
    served_again: int | None = None
    #: The first second at or after the end of the load when the level the trailers last said
    #: was 1 or below (a calm server sends its keys only on a change: absent is unchanged).
    back: int | None = None
    #: The level the trailers last said, in any stream.
    level: int | None = None

    @property
    def done(self) -> bool:
        """Non-core calls served again and the server back at level 1 or below."""
        return self.served_again is not None and self.back is not None

    def see(self, key: str, second: Second) -> bool:
        """Feed one stream's second; True the first time the watch is :attr:`done`."""
        if self.done:
            return False
        if key != PING and second.codes.get(SHED, 0):
            self.shed_seen = True
        if second.level is not None:
            self.level = second.level
        if not self.shed_seen or second.second < self.load_s:
            return False
        if self.back is None and self.level is not None and self.level <= 1:
            self.back = second.second
        if key == PROBE and self.served_again is None and second.codes.get("OK", 0):
            self.served_again = second.second
        return self.done

    @property
    def seconds_after_load(self) -> float | None:
        """Seconds from the end of the load to the end of the second non-core calls were
        served again (whole seconds)."""
        return self._after_load(self.served_again)

    @property
    def back_after_load(self) -> float | None:
        """Seconds from the end of the load to the end of the second the server was back at
        level 1 or below."""
        return self._after_load(self.back)

    def _after_load(self, second: int | None) -> float | None:
        return None if second is None else second + 1 - self.load_s


async def watch_server_levels(target: str, events: list[Event]) -> None:
    """Append the server's own level transitions (its ``WatchPressure`` stream) to ``events``
    until cancelled: the first level seen, then each change, timed when it arrived."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = mpb_grpc.MemoryPressureServiceStub(channel)
        last: int | None = None
        try:
            async for message in stub.WatchPressure(mpb.WatchPressureRequest()):
                pressure = from_proto(message.pressure)
                level = int(pressure.level)
                if level != last:
                    change = f"{level} at start" if last is None else f"{last} -> {level}"
                    text = f"server level {change} (usage {pressure.usage_ratio:.0%})"
                    events.append(Event(time.time(), "server-level", text, level=level))
                    last = level
        except grpc.aio.AioRpcError as err:  # the timeline loses its markers, not the demo
            if err.code() != grpc.StatusCode.CANCELLED:
                print(f"demo: WatchPressure ended: {err.code().name}", file=sys.stderr)


async def run_streams(
    specs: Mapping[str, LoadSpec], plan: Plan, board: Board, server_events: list[Event]
) -> tuple[dict[str, Report], Watch]:
    """Run the streams together; stop the steady ones ``linger_s`` after non-core calls are
    served again (or at the end of the watch). Returns each stream's report; the server's own
    level transitions meanwhile go to ``server_events``."""
    for spec in specs.values():
        await preflight(spec)  # unreachable target or unknown method: before any load
    stop = asyncio.Event()
    watch = Watch(plan.load_s)
    loop = asyncio.get_running_loop()

    def progress(key: str) -> Callable[[Second], None]:
        def seen(second: Second) -> None:
            if watch.see(key, second):
                loop.call_later(plan.linger_s, stop.set)
                board.mark(
                    second.second,
                    f"non-core calls served again {watch.seconds_after_load:g} s, back to level 1 "
                    f"in {watch.back_after_load:g} s after the load stopped; "
                    f"{plan.linger_s:g} s more, then stop",
                )
            board.add(key, second)

        return seen

    board.mark(
        math.ceil(plan.load_s) - 1,
        "the load stopped: waiting for non-core calls to be served again, and level 1",
    )
    ready = StartTogether(len(specs))

    async def stream(key: str) -> Metrics:
        try:
            steady = None if key == REPORT else stop  # the load ends on its own
            return await run_worker(specs[key], ready=ready, progress=progress(key), stop=steady)
        finally:
            board.finished(key)

    watcher = asyncio.ensure_future(
        watch_server_levels(next(iter(specs.values())).target, server_events)
    )
    try:
        async with asyncio.TaskGroup() as group:
            tasks = {key: group.create_task(stream(key)) for key in specs}
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    # Frozen once all have ended: freezing takes the event loop for up to a second.
    reports = {key: task.result().freeze(specs[key].config()) for key, task in tasks.items()}
    return reports, watch


# -- the live view -------------------------------------------------------------------------------


@dataclass
class Row:
    """One second of the demo: each stream's second (when it ran)."""

    second: int
    streams: dict[str, Second] = field(default_factory=dict)

    def memory(self) -> tuple[float | None, int | None]:
        """The server's usage (%) and level that second, as the calls' trailers said."""
        usage = next(
            (s.usage_percent for s in self.streams.values() if s.usage_percent is not None), None
        )
        levels = [s.level for s in self.streams.values() if s.level is not None]
        return usage, max(levels, default=None)


def _count(second: Second | None, code: str) -> str:
    return "" if second is None else str(second.codes.get(code, 0))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


#: The live table's columns (two header lines each).
COLUMNS = (
    "\ns",
    "Report\nsent",
    "Report\nOK",
    "Report\nshed",
    "Ping\nOK",
    "Ping\np99 ms",
    "GetStock\nOK",
    "GetStock\nshed",
    "usage\n%",
    "\nlevel",
)


class Board:
    """Shows the demo as it runs: one row per second once every running stream has closed it.

    On a terminal (``live``) a ``rich`` table redrawn in place; otherwise one plain line per
    second. ``note(text)`` prints a line about what happens (the load stopping, ...) at once,
    ``mark(second, text)`` after that second's row.
    """

    def __init__(self, streams: Sequence[str], *, live: bool, out: TextIO = sys.stdout) -> None:
        self.running = set(streams)
        self.rows: dict[int, Row] = {}
        self.shown: list[Row] = []
        self.next = 0
        self.marks: dict[int, list[str]] = {}
        self.out = out
        self.live: Any = None
        self.console: Any = None
        self.rows_shown = 0  # the table's last rows that fit the terminal
        if live:
            from rich.console import Console
            from rich.live import Live

            self.console = Console(file=out)
            self.rows_shown = max(8, self.console.height - 8)
            self.live = Live(self._table(), console=self.console, refresh_per_second=4)

    def __enter__(self) -> Board:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def note(self, text: str) -> None:
        """A line about the demo's course, printed above the table."""
        if self.console is not None:
            self.console.print(f"[bold]demo:[/bold] {text}")
        else:
            print(f"demo: {text}", file=self.out, flush=True)

    def mark(self, second: int, text: str) -> None:
        """A note to print once the row of ``second`` is shown."""
        self.marks.setdefault(second, []).append(text)

    def add(self, key: str, second: Second) -> None:
        """A stream's closed second."""
        self.rows.setdefault(second.second, Row(second.second)).streams[key] = second
        self._flush()

    def finished(self, key: str) -> None:
        """A stream ended: rows no longer wait for it."""
        self.running.discard(key)
        self._flush()

    def _flush(self) -> None:
        while (row := self.rows.get(self.next)) is not None and self.running <= row.streams.keys():
            self._show(row)
            self.next += 1
        if not self.running:  # the rest, as they are
            for second in sorted(k for k in self.rows if k >= self.next):
                self._show(self.rows[second])
            self.next = max(self.rows, default=-1) + 1

    def _show(self, row: Row) -> None:
        self.shown.append(row)
        if self.live is not None:
            self.live.update(self._table())
        else:
            print(self.line(row), file=self.out, flush=True)
        for text in self.marks.pop(row.second, []):
            self.note(text)

    @staticmethod
    def line(row: Row) -> str:
        """The plain form of a row."""
        report, ping, probe = (row.streams.get(k) for k in (REPORT, PING, PROBE))
        usage, level = row.memory()
        parts = [f"{row.second:3d} s"]
        if report is not None:
            parts.append(
                f"Report sent {report.sent:3d} ok {_count(report, 'OK'):>3} "
                f"shed {_count(report, SHED):>3}"
            )
        if ping is not None:
            parts.append(
                f"Ping ok {_count(ping, 'OK'):>3}/{ping.answered:<3} p99 {_ms(ping.p99_ms):>5} ms"
            )
        if probe is not None:
            parts.append(f"GetStock ok {_count(probe, 'OK'):>3} shed {_count(probe, SHED):>3}")
        usage_text = "-" if usage is None else f"{usage:.1f}%"
        parts.append(f"usage {usage_text:>6} level {'-' if level is None else level}")
        return "  ".join(parts[:1]) + "  " + " | ".join(parts[1:])

    def _table(self) -> Any:
        from rich import box
        from rich.table import Table

        table = Table(
            title="memcontract demo: the example inventory server",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for header in COLUMNS:
            table.add_column(header, justify="right")
        for row in self.shown[-self.rows_shown :]:
            report, ping, probe = (row.streams.get(k) for k in (REPORT, PING, PROBE))
            usage, level = row.memory()
            colour = {3: "bold red", 2: "yellow", 1: "cyan"}.get(level or 0, "")
            table.add_row(
                str(row.second),
                "" if report is None else str(report.sent),
                _count(report, "OK"),
                _count(report, SHED),
                "" if ping is None else f"{_count(ping, 'OK')}/{ping.answered}",
                "" if ping is None else _ms(ping.p99_ms),
                _count(probe, "OK"),
                _count(probe, SHED),
                "-" if usage is None else f"{usage:.1f}",
                "-" if level is None else f"[{colour}]{level}[/]" if colour else str(level),
            )
        return table


# -- the outcome ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What the demo shows, from the streams' reports."""

    peak_level: int | None
    noncore_shed: int
    core_sent: int
    core_ok: int
    served_again_s: float | None
    watch_s: float
    back_s: float | None = None

    @property
    def core_success(self) -> float:
        """Percent of core calls due that succeeded (dropped ones count as failures)."""
        return 100.0 * self.core_ok / self.core_sent if self.core_sent else 0.0

    def failures(self) -> list[str]:
        """What the demo did not show (empty: it showed everything)."""
        failed = []
        if self.peak_level != 3:
            failed.append("level 3 not reached")
        if self.noncore_shed == 0:
            failed.append("no non-core call shed")
        if self.core_success < CORE_SUCCESS_MIN:
            failed.append(f"core success under {CORE_SUCCESS_MIN:g}%")
        if self.noncore_shed and self.served_again_s is None:
            failed.append("non-core calls not served again")
        if self.noncore_shed and self.back_s is None:
            failed.append("not back at level 1 after the load")
        return failed

    def line(self, name: str) -> str:
        """The demo's last line (``demo: FAILED: ...`` when :meth:`failures` is not empty)."""
        level = "-" if self.peak_level is None else str(self.peak_level)
        back = (
            f"back to level 1 in {self.back_s:g} s after the load stopped"
            if self.back_s is not None
            else f"not back to level 1 within {self.watch_s:g} s after the load stopped"
        )
        if self.served_again_s is not None:
            served = f"non-core served again {self.served_again_s:g} s, {back}"
        elif self.noncore_shed == 0:
            served = "non-core never shed"
        else:
            served = f"non-core not served again, {back}"
        text = (
            f"peak level {level}, non-core shed {self.noncore_shed}, "
            f"core success {percent(self.core_success)}%, {served}; "
            f"report {name}.json {name}.html"
        )
        failed = self.failures()
        return f"demo: FAILED ({'; '.join(failed)}): {text}" if failed else f"demo: {text}"


def percent(value: float) -> str:
    """``value`` with one decimal, rounded down (99.96 is not 100), no trailing ``.0``.

    >>> percent(100.0), percent(99.96), percent(97.0)
    ('100', '99.9', '97')
    """
    text = f"{math.floor(value * 10) / 10:.1f}"
    return text.removesuffix(".0")


def outcome(reports: Mapping[str, Report], watch: Watch, plan: Plan) -> Outcome:
    """The demo's figures from each stream's report."""
    levels = [s.level for r in reports.values() for s in r.timeline if s.level is not None]
    ping = reports[PING]
    return Outcome(
        peak_level=max(levels, default=None),
        noncore_shed=reports[REPORT].count(SHED) + reports[PROBE].count(SHED),
        core_sent=ping.sent + ping.dropped,
        core_ok=ping.count("OK"),
        served_again_s=watch.seconds_after_load,
        watch_s=plan.watch_s,
        back_s=watch.back_after_load,
    )


def write_reports(
    reports: Mapping[str, Report], name: str, server_events: Sequence[Event] = ()
) -> None:
    """``NAME.KEY.json`` per stream, and the streams merged exactly into ``NAME.*`` with the
    server's own level transitions among its events."""
    sources = []
    for key, report in reports.items():
        path = pathlib.Path(f"{name}.{key}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        jsonfmt.write(report, path)
        sources.append(path.name)
    streams = "; ".join(f"{r.config['method']} {r.config['schedule']}" for r in reports.values())
    config = {**reports[REPORT].config, "label": "demo", "streams": streams}
    merged = merge(reports.values(), config, sources)
    events = sorted((*merged.events, *server_events), key=lambda e: e.unix)
    write_all(replace(merged, events=tuple(events)), name)


# -- main ----------------------------------------------------------------------------------------


def shown(path: pathlib.Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def intro(server: ExampleServer, contract: pathlib.Path, plan: Plan) -> Iterator[str]:
    """What is about to happen."""
    module = Contract.load(contract).module
    address = f"127.0.0.1:{server.port}"
    yield (
        f"example inventory server on {address} under {shown(contract)}: "
        f"budget {module.max_heap_mb:g} MiB, level 3 at "
        f"{module.ladder.heap.level3:.0%} after {module.ladder.confirm.level3} samples "
        f"of {module.sample_interval_ms} ms"
    )
    yield (
        f"Report (non-core, several MiB each) ramps {plan.ramp_from:g} -> {plan.ramp_to:g} "
        f"calls/s over {plan.load_s:g} s, then stops; Ping (core) {plan.ping_rps:g}/s and "
        f"GetStock (non-core) {plan.probe_rps:g}/s run throughout"
    )
    yield f"meanwhile, try: grpcurl -plaintext {address} list"
    if server.metrics_url is not None:
        yield f"and: curl -s {server.metrics_url} | grep ^memcontract_"


def positive(text: str) -> float:
    """A number of seconds > 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.python.demo",
        description="Drive the example inventory server into level 3 and back, live.",
    )
    parser.add_argument("--short", action="store_true", help="a 10 s load (CI)")
    parser.add_argument("--out", default="demo-out/demo", help="report NAME (default %(default)s)")
    parser.add_argument("--contract", default=str(CONTRACT), help="the server's contract")
    parser.add_argument(
        "--plain", action="store_true", help="plain lines even on a terminal (no rich table)"
    )
    parser.add_argument("--load", type=positive, help="seconds of load (default 20, short 10)")
    parser.add_argument(
        "--watch", type=positive, help="seconds to wait after the load (default 30, short 20)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="the server also serves Prometheus /metrics on this port (0: any free one)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = replace(
        SHORT if args.short else FULL,
        **({"load_s": args.load} if args.load else {}),
        **({"watch_s": args.watch} if args.watch else {}),
    )
    contract = pathlib.Path(args.contract).resolve()
    started = time.monotonic()
    try:
        reports, watch, peak, server_events = run_demo(
            contract, plan, args.out, live=not args.plain, metrics_port=args.metrics_port
        )
    except KeyboardInterrupt:
        print("demo: FAILED: interrupted", flush=True)
        return 130
    except Exception as err:  # the demo's own failure: say so on the last line
        if not isinstance(err, RuntimeError | LoadTestError):
            traceback.print_exc()
        print(f"demo: FAILED: {err}", flush=True)
        return 1
    write_reports(reports, args.out, server_events)
    result = outcome(reports, watch, plan)
    if peak is not None:
        budget = Contract.load(contract).module.max_heap_mb
        print(f"demo: server peak RSS {peak:.0f} MiB ({peak / budget:.2f}x the budget)")
    print(f"demo: took {time.monotonic() - started:.0f} s; server log {args.out}.server.log")
    print(result.line(args.out), flush=True)
    return 1 if result.failures() else 0


def run_demo(
    contract: pathlib.Path, plan: Plan, name: str, *, live: bool, metrics_port: int | None = None
) -> tuple[dict[str, Report], Watch, float | None, list[Event]]:
    """Start the server, run the streams with the live view; (reports, watch, peak RSS MiB,
    the server's own level transitions)."""
    server_events: list[Event] = []
    log_path = pathlib.Path(f"{name}.server.log")
    with ExampleServer(contract, log_path, metrics_port=metrics_port) as server:
        with Board((REPORT, PING, PROBE), live=live and sys.stdout.isatty()) as board:
            for text in intro(server, contract, plan):
                board.note(text)
            specs = stream_specs(server.port, plan)
            reports, watch = asyncio.run(run_streams(specs, plan, board, server_events))
        return reports, watch, server.peak_rss_mib(), server_events


if __name__ == "__main__":
    sys.exit(main())
