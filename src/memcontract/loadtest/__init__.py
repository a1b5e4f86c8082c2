"""The load harness behind ``memcontract loadtest`` (docs/design.md §9), usable from Python too.

Drive any unary or server-streaming method with raw request bytes, open loop (a rate schedule;
latency from each call's intended start) or closed loop (fixed concurrency), over one or more
worker processes; read the target's ``x-memory-*`` state from trailers; get one frozen
:class:`Report` to render (JSON, CSV, HTML) or merge exactly with others::

    from memcontract.loadtest import LoadSpec, parse_schedule, run
    spec = LoadSpec("127.0.0.1:50051", "/inventory_demo.v1.InventoryDemo/Ping",
                    schedule=parse_schedule("ramp:10->200:20s"))
    report = run(spec, progress=lambda second: print(second.sent, second.p99_ms))

In an event loop, ``await run_async(spec, progress=...)`` (one worker); several such runs can
share the loop, e.g. a ramp on one method beside a steady stream on another.
"""

from __future__ import annotations

from .errors import LoadTestError, TargetUnreachable
from .metrics import merge
from .payload import Method, resolve
from .result import Latency, Report, Second, StatusStats
from .runner import LoadSpec, ProgressCallback, Tls, run_async
from .schedule import Schedule, parse_duration, parse_schedule
from .workers import run

__all__ = [
    "Latency",
    "LoadSpec",
    "LoadTestError",
    "Method",
    "ProgressCallback",
    "Report",
    "Schedule",
    "Second",
    "StatusStats",
    "TargetUnreachable",
    "Tls",
    "merge",
    "parse_duration",
    "parse_schedule",
    "resolve",
    "run",
    "run_async",
]
