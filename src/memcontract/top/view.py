"""Showing targets: a ``rich`` table (live or once) and the ``--json`` form."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from memcontract import wire
from memcontract.pressure import MIB, Pressure
from memcontract.v1 import memcontract_pb2 as pb

from .collect import TargetState

_NUMERIC = ("usage", "used", "live", "capacity", "growth")
_LEVEL_STYLE = {0: "green", 1: "yellow", 2: "dark_orange", 3: "bold red"}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def at_level_for(state: TargetState, now: float) -> str:
    """Time at the current level; ``≥`` when the level was in force before watching began."""
    if state.level_since is None:
        return "-"
    prefix = "" if state.level_seen_entering else "≥"
    return prefix + _duration(now - state.level_since)


def render_table(
    states: list[TargetState], *, allocations: bool = False, now: float | None = None
) -> RenderableType:
    """The table of ``states`` (and their allocation reports when asked)."""
    now = time.monotonic() if now is None else now
    table = Table(title="memcontract top", title_justify="left")
    # The target is what a reader looks for: never cut (the others may wrap).
    widest = max((len(s.target) + 9 for s in states), default=10)
    table.add_column("target", no_wrap=True, min_width=min(widest, 40))
    columns = ("usage", "used", "live", "capacity", "level", "growth", "contract", "module")
    for name in (*columns, "at level"):
        table.add_column(name, justify="right" if name in _NUMERIC else "left")
    for state in states:
        p = state.pressure
        if state.error is not None:
            cell = Text(state.target + "\n")
            cell.append(state.error, style="red")
            table.add_row(cell, *([""] * 9))
            continue
        if p is None:
            table.add_row(state.target + "\nconnecting…", *([""] * 9))
            continue
        level = int(p.level)
        table.add_row(
            state.target + ("" if state.source == "watch" else " (health)"),
            wire.format_usage(p.usage_ratio),
            _used_text(p),
            "-" if p.live_bytes is None else f"{p.live_bytes / MIB:.0f} MiB",
            f"{p.capacity_bytes / MIB:.0f} MiB",
            Text(f"{level} {p.level.name}", style=_LEVEL_STYLE[level]),
            f"{p.alloc_rate_bytes_per_sec / MIB:.1f} MiB/s" if state.source == "watch" else "-",
            p.contract_version or "-",
            p.module or "-",
            at_level_for(state, now),
        )
    if not allocations:
        return table
    reports = [_report_text(s) for s in states if s.allocations is not None]
    return Group(table, *reports)


def _used_text(p: Pressure) -> str:
    """Used MiB, and the retained plateau while one is recorded (usage is then live)."""
    used = f"{p.used_bytes / MIB:.0f} MiB"
    if p.plateau_bytes is None:
        return used
    return f"{used} (retained {p.plateau_bytes / MIB:.0f})"


def _report_text(state: TargetState) -> Text:
    report = state.allocations
    assert report is not None
    lines = [f"{state.target}: top allocation sites at level {report.level - 1}"]
    lines += [
        f"  {s.location}  +{s.size_bytes / MIB:.1f} MiB ({s.blocks} blocks)" for s in report.sites
    ]
    return Text("\n".join(lines))


def _report_json(report: pb.AllocationReport) -> dict[str, Any]:
    return {
        "level": report.level - 1,
        "taken_at": report.taken_at.ToNanoseconds() / 1e9,
        "traced": report.traced,
        "examined": report.examined,
        "sites": [
            {"location": s.location, "size_bytes": s.size_bytes, "blocks": s.blocks}
            for s in report.sites
        ],
    }


def state_json(state: TargetState) -> dict[str, Any]:
    """One target as a JSON object (``--once --json``)."""
    out: dict[str, Any] = {"target": state.target, "reachable": state.error is None}
    if state.error is not None:
        out["error"] = state.error
    p = state.pressure
    if p is not None:
        out.update(
            source=state.source,
            usage_ratio=p.usage_ratio,
            used_bytes=p.used_bytes,
            capacity_bytes=p.capacity_bytes,
            level=int(p.level),
            alloc_rate_bytes_per_sec=p.alloc_rate_bytes_per_sec,
            contract_version=p.contract_version,
            module=p.module,
            sampled_at=p.sampled_at,
            live_bytes=p.live_bytes,
            live_source=p.live_source,
            plateau_bytes=p.plateau_bytes,
        )
    if state.allocations is not None:
        out["allocations"] = _report_json(state.allocations)
    return out
