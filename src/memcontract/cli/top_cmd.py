"""``memcontract top TARGET...``: watch services' memory state (implementation: memcontract.top)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..errors import MemcontractError

#: Columns of ``top --once`` when stdout is not a terminal: wide enough for any table, which
#: takes its natural width (no padding to this).
PIPE_WIDTH = 1000


class UsageError(MemcontractError):
    """A bad command line: one message, exit status 2."""


def register(sub: Any) -> None:
    """Add the ``top`` command."""
    parser = sub.add_parser(
        "top",
        help="watch the memory state of services (MemoryPressureService or health trailers)",
    )
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="HOST:PORT of a service")
    parser.add_argument("--once", action="store_true", help="read each target once and exit")
    parser.add_argument("--json", action="store_true", help="with --once: print JSON, one list")
    parser.add_argument(
        "--allocations",
        action="store_true",
        help="show allocation reports of targets at level >= 2",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between updates (default 1)"
    )
    parser.set_defaults(run=run_top)


def run_top(args: argparse.Namespace) -> int:
    """Check the arguments, then read once (exit 1 if a target is unreachable) or watch."""
    from ..top import parse_target

    if args.json and not args.once:
        raise UsageError("top: --json needs --once")
    if not 0.1 <= args.interval <= 3600:
        raise UsageError(f"top: --interval must be 0.1..3600 seconds, got {args.interval:g}")
    try:
        targets = [parse_target(t) for t in args.targets]
    except ValueError as err:
        raise UsageError(f"top: {err}") from None
    if args.once:
        return _once(targets, args)
    return _live(targets, args)


def _once(targets: list[str], args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from ..top import read_once, render_table, state_json

    with ThreadPoolExecutor(min(16, len(targets))) as pool:
        states = list(pool.map(lambda t: read_once(t, allocations=args.allocations), targets))
    if args.json:
        json.dump([state_json(s) for s in states], sys.stdout, indent=2)
        print()
    else:
        from rich.console import Console

        # On a pipe rich would clip to 80 columns; a script reading it wants every column.
        width = None if sys.stdout.isatty() else PIPE_WIDTH
        Console(width=width).print(render_table(states, allocations=args.allocations))
    return 1 if any(s.error is not None for s in states) else 0


def _live(targets: list[str], args: argparse.Namespace) -> int:
    from ..top import Watcher

    watchers = [
        Watcher(t, allocations=args.allocations, interval=args.interval).start() for t in targets
    ]
    try:
        if sys.stdout.isatty():
            _redraw(watchers, args)
        else:
            _append(watchers, args)
    finally:
        for watcher in watchers:
            watcher.stop()
    return 0


def _redraw(watchers: list[Any], args: argparse.Namespace) -> None:
    """A terminal: one table, redrawn in place."""
    from rich.live import Live

    from ..top import render_table

    with Live(refresh_per_second=4, screen=False) as live:
        while True:
            live.update(render_table([w.state for w in watchers], allocations=args.allocations))
            time.sleep(0.25)


def _append(watchers: list[Any], args: argparse.Namespace) -> None:
    """Not a terminal (a pipe, a file): like ``top -b``, a full-width table every interval,
    each under a line with its UTC time, flushed as it is printed (rich's live view would
    print nothing until it stops, and nothing at all when killed)."""
    from rich.console import Console

    from ..top import render_table

    console = Console(width=PIPE_WIDTH)
    while True:
        time.sleep(args.interval)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        console.print(f"memcontract top {stamp}", highlight=False)
        console.print(render_table([w.state for w in watchers], allocations=args.allocations))
        sys.stdout.flush()
