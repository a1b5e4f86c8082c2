"""The JSON form of a report (``NAME.json``): a stable schema, ``memcontract.loadtest/v2``.

:data:`SCHEMA` is the JSON Schema every file this module writes satisfies (the tests validate
against it; the README documents it). Reading a file back gives the same :class:`Report`, with
its histograms, so files merge exactly. v2 added, to v1: ``streams`` (a merged report keeps each
stream's own report; theirs have none), ``events``, ``harness`` (its own lag and CPU), the
errors' ``example`` and the timeline's ``loop_lag_ms``/``cpu_percent``; v1 files still read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import LoadTestError
from ..result import (
    OLD_SCHEMA_IDS,
    QUANTILES,
    SCHEMA_ID,
    ErrorCount,
    Event,
    Latency,
    Report,
    Second,
    SelfCheck,
    StatusStats,
)

_MS = {"type": "number", "minimum": 0}
_MS_OR_NULL = {"type": ["number", "null"], "minimum": 0}
_COUNT = {"type": "integer", "minimum": 0}
_LATENCY = {
    "type": "object",
    "required": [*(name for name, _ in QUANTILES), "max", "mean"],
    "properties": {**{name: _MS for name, _ in QUANTILES}, "max": _MS, "mean": _MS},
    "additionalProperties": False,
}

_LATENCY_OR_NULL = {"oneOf": [_LATENCY, {"type": "null"}]}
_EVENT = {
    "type": "object",
    "required": ["unix", "kind", "text", "stream", "level"],
    "additionalProperties": False,
    "properties": {
        "unix": {"type": "number"},
        "kind": {"enum": ["phase", "stop", "level", "server-level"]},
        "text": {"type": "string"},
        "stream": {"type": "string"},
        "level": {"type": ["integer", "null"], "minimum": 0, "maximum": 3},
    },
}
_HARNESS = {
    "type": "object",
    "required": [
        "send_lag_ms",
        "loop_lag_ms",
        "send_lag_histogram",
        "loop_lag_histogram",
        "lag_p99_ms",
        "behind",
        "cpu_saturated_s",
        "cpu_peak_percent",
        "warnings",
    ],
    "additionalProperties": False,
    "properties": {
        "send_lag_ms": _LATENCY_OR_NULL,
        "loop_lag_ms": _LATENCY_OR_NULL,
        "send_lag_histogram": {"type": ["string", "null"]},
        "loop_lag_histogram": {"type": ["string", "null"]},
        "lag_p99_ms": _MS,
        "behind": {"type": "boolean"},
        "cpu_saturated_s": _COUNT,
        "cpu_peak_percent": _MS_OR_NULL,
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}


def _report_schema(streams: dict[str, Any]) -> dict[str, Any]:
    """The schema of a report whose ``streams`` are as given (nested reports have none)."""
    return {
        "type": "object",
        "required": [
            "schema",
            "config",
            "sources",
            "start_unix",
            "end_unix",
            "duration_s",
            "totals",
            "latency_ms",
            "statuses",
            "errors",
            "timeline",
            "events",
            "harness",
            "streams",
        ],
        "additionalProperties": False,
        "properties": {
            "schema": {"const": SCHEMA_ID},
            "config": {
                "type": "object",
                "required": ["target", "method", "mode"],
                "properties": {
                    "target": {"type": "string"},
                    "method": {"type": "string", "pattern": "^/[^/]+/[^/]+$"},
                    "mode": {"enum": ["open", "closed"]},
                    "schedule": {"type": ["string", "null"]},
                    "concurrency": {"type": ["integer", "null"], "minimum": 1},
                    "duration_s": {"type": ["number", "null"]},
                    "total": {"type": ["integer", "null"]},
                    "warmup_s": {"type": "number"},
                    "timeout_s": {"type": "number"},
                    "connections": {"type": "integer", "minimum": 1},
                    "workers": {"type": "integer", "minimum": 1},
                    "label": {"type": ["string", "null"]},
                },
            },
            "sources": {"type": "array", "items": {"type": "string"}},
            "start_unix": {"type": "number"},
            "end_unix": {"type": "number"},
            "duration_s": {"type": "number", "minimum": 0},
            "totals": {
                "type": "object",
                "required": [
                    "sent",
                    "answered",
                    "late",
                    "dropped",
                    "out_of_range",
                    "rate_sent",
                    "rate_answered",
                ],
                "additionalProperties": False,
                "properties": {
                    "sent": _COUNT,
                    "answered": _COUNT,
                    "late": _COUNT,
                    "dropped": _COUNT,
                    "out_of_range": _COUNT,
                    "rate_sent": _MS,
                    "rate_answered": _MS,
                },
            },
            "latency_ms": {"oneOf": [_LATENCY, {"type": "null"}]},
            "statuses": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "count", "latency_ms", "histogram", "service_histogram"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "string", "pattern": "^[A-Z_]+$"},
                        "count": _COUNT,
                        "latency_ms": _LATENCY,
                        "histogram": {"type": "string"},
                        "service_histogram": {"type": "string"},
                    },
                },
            },
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "details", "count", "example"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "string"},
                        "details": {"type": "string"},
                        "count": _COUNT,
                        "example": {"type": "string"},
                    },
                },
            },
            "timeline": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "second",
                        "unix",
                        "sent",
                        "answered",
                        "codes",
                        "p50_ms",
                        "p99_ms",
                        "max_ms",
                        "usage_percent",
                        "level",
                        "late",
                        "dropped",
                        "histogram",
                        "loop_lag_ms",
                        "cpu_percent",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "second": {"type": "integer"},
                        "unix": {"type": "integer"},
                        "sent": _COUNT,
                        "answered": _COUNT,
                        "codes": {"type": "object", "additionalProperties": _COUNT},
                        "p50_ms": _MS_OR_NULL,
                        "p99_ms": _MS_OR_NULL,
                        "max_ms": _MS_OR_NULL,
                        "usage_percent": _MS_OR_NULL,
                        "level": {"type": ["integer", "null"], "minimum": 0, "maximum": 3},
                        "late": _COUNT,
                        "dropped": _COUNT,
                        "histogram": {"type": ["string", "null"]},
                        "loop_lag_ms": _MS_OR_NULL,
                        "cpu_percent": _MS_OR_NULL,
                    },
                },
            },
            "events": {"type": "array", "items": _EVENT},
            "harness": _HARNESS,
            "streams": streams,
        },
    }


#: JSON Schema (draft 2020-12) of the report file: a report, whose ``streams`` are reports
#: of one stream each (with no streams of their own).
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "memcontract loadtest report",
    **_report_schema({"type": "array", "items": _report_schema({"type": "array", "maxItems": 0})}),
}


def second_to_dict(second: Second) -> dict[str, Any]:
    """One timeline entry."""
    return {
        "second": second.second,
        "unix": second.unix,
        "sent": second.sent,
        "answered": second.answered,
        "codes": dict(second.codes),
        "p50_ms": second.p50_ms,
        "p99_ms": second.p99_ms,
        "max_ms": second.max_ms,
        "usage_percent": second.usage_percent,
        "level": second.level,
        "late": second.late,
        "dropped": second.dropped,
        "histogram": second.histogram,
        "loop_lag_ms": second.loop_lag_ms,
        "cpu_percent": second.cpu_percent,
    }


def second_from_dict(data: Mapping[str, Any]) -> Second:
    """The inverse of :func:`second_to_dict`."""
    return Second(**{**data, "codes": dict(data["codes"])})


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (see :data:`SCHEMA`)."""
    return {
        "schema": SCHEMA_ID,
        "config": dict(report.config),
        "sources": list(report.sources),
        "start_unix": report.start_unix,
        "end_unix": report.end_unix,
        "duration_s": report.duration_s,
        "totals": {
            "sent": report.sent,
            "answered": report.answered,
            "late": report.late,
            "dropped": report.dropped,
            "out_of_range": report.out_of_range,
            "rate_sent": report.rate_sent,
            "rate_answered": report.rate_answered,
        },
        "latency_ms": report.overall.to_dict() if report.overall else None,
        "statuses": [
            {
                "code": s.code,
                "count": s.count,
                "latency_ms": s.latency.to_dict(),
                "histogram": s.histogram,
                "service_histogram": s.service_histogram,
            }
            for s in report.statuses
        ],
        "errors": [
            {"code": e.code, "details": e.details, "count": e.count, "example": e.example}
            for e in report.errors
        ],
        "timeline": [second_to_dict(s) for s in report.timeline],
        "events": [
            {"unix": e.unix, "kind": e.kind, "text": e.text, "stream": e.stream, "level": e.level}
            for e in report.events
        ],
        "harness": _harness_to_dict(report.harness),
        "streams": [report_to_dict(stream) for stream in report.streams],
    }


def _harness_to_dict(check: SelfCheck) -> dict[str, Any]:
    return {
        "send_lag_ms": check.send_lag.to_dict() if check.send_lag else None,
        "loop_lag_ms": check.loop_lag.to_dict() if check.loop_lag else None,
        "send_lag_histogram": check.send_lag_histogram,
        "loop_lag_histogram": check.loop_lag_histogram,
        "lag_p99_ms": check.lag_p99_ms,
        "behind": check.behind,
        "cpu_saturated_s": check.cpu_saturated_s,
        "cpu_peak_percent": check.cpu_peak_percent,
        "warnings": check.warnings(),
    }


def _harness_from_dict(data: Mapping[str, Any] | None) -> SelfCheck:
    if not data:
        return SelfCheck()

    def latency(key: str) -> Latency | None:
        value = data.get(key)
        return Latency.from_dict(value) if value else None

    return SelfCheck(
        send_lag=latency("send_lag_ms"),
        loop_lag=latency("loop_lag_ms"),
        send_lag_histogram=data.get("send_lag_histogram"),
        loop_lag_histogram=data.get("loop_lag_histogram"),
        cpu_saturated_s=data.get("cpu_saturated_s", 0),
        cpu_peak_percent=data.get("cpu_peak_percent"),
    )


def report_from_dict(data: Mapping[str, Any]) -> Report:
    """The report :func:`report_to_dict` wrote (KeyError/TypeError on other data)."""
    totals = data["totals"]
    return Report(
        config=dict(data["config"]),
        start_unix=data["start_unix"],
        end_unix=data["end_unix"],
        sent=totals["sent"],
        answered=totals["answered"],
        late=totals["late"],
        dropped=totals["dropped"],
        out_of_range=totals["out_of_range"],
        overall=Latency.from_dict(data["latency_ms"]) if data["latency_ms"] else None,
        statuses=tuple(
            StatusStats(
                code=s["code"],
                count=s["count"],
                latency=Latency.from_dict(s["latency_ms"]),
                histogram=s["histogram"],
                service_histogram=s["service_histogram"],
            )
            for s in data["statuses"]
        ),
        errors=tuple(
            ErrorCount(e["code"], e["details"], e["count"], e.get("example", ""))
            for e in data["errors"]
        ),
        timeline=tuple(second_from_dict(s) for s in data["timeline"]),
        sources=tuple(data["sources"]),
        events=tuple(Event(**e) for e in data.get("events", ())),
        harness=_harness_from_dict(data.get("harness")),
        streams=tuple(report_from_dict(s) for s in data.get("streams", ())),
    )


def write(report: Report, path: str | Path) -> None:
    """Write ``report`` as JSON to ``path``."""
    Path(path).write_text(json.dumps(report_to_dict(report), indent=1) + "\n")


def read(path: str | Path) -> Report:
    """A report file written by :func:`write`; LoadTestError naming the file otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise LoadTestError(f"{path}: {err.strerror or err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LoadTestError(f"{path}: not JSON: {err}") from None
    if not isinstance(data, dict) or data.get("schema") not in (SCHEMA_ID, *OLD_SCHEMA_IDS):
        raise LoadTestError(f"{path}: not a loadtest report (schema {SCHEMA_ID!r} expected)")
    try:
        return report_from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        raise LoadTestError(f"{path}: malformed report: {err!r}") from None
