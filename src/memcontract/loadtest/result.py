"""The frozen outcome of a load test: one :class:`Report`, rendered by ``report/`` (JSON, CSV,
HTML, text) and merged exactly through its histograms (``metrics.Metrics.from_report``).

Latencies are milliseconds, measured from each call's **intended** start (open loop; the actual
send in closed loop, where both are the same). Histograms are HdrHistogram's compressed,
base64 encoding (microseconds), so a report read back from JSON merges with no loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA_ID = "memcontract.loadtest/v1"

#: The quantiles every latency summary carries: (name, percentile).
QUANTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
)


@dataclass(frozen=True)
class Latency:
    """A latency distribution summed up in milliseconds: quantiles by name, max, mean."""

    quantiles: Mapping[str, float]
    max: float
    mean: float

    def to_dict(self) -> dict[str, float]:
        """``{"p50": ms, ..., "max": ms, "mean": ms}``."""
        return {**self.quantiles, "max": self.max, "mean": self.mean}

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> Latency:
        """The inverse of :meth:`to_dict`."""
        return cls({name: data[name] for name, _ in QUANTILES}, data["max"], data["mean"])


@dataclass(frozen=True)
class StatusStats:
    """Calls that ended with one status ``code`` (``OK``, ``RESOURCE_EXHAUSTED``, ...).

    ``latency`` is from the intended start; ``histogram`` and ``service_histogram`` (from the
    actual send, wrk2's second histogram) are encoded HdrHistograms of microseconds.
    """

    code: str
    count: int
    latency: Latency
    histogram: str
    service_histogram: str


@dataclass(frozen=True)
class ErrorCount:
    """How many calls ended with ``code`` and these ``details`` (distinct details are capped)."""

    code: str
    details: str
    count: int


@dataclass(frozen=True)
class Second:
    """Second number ``second`` of the run, ``[start + second, start + second + 1)``.

    ``unix`` is the Unix second it began in (for display).

    ``sent`` counts calls sent in this second, ``answered`` calls that ended in it (any status;
    ``codes`` splits them), ``p50_ms``/``p99_ms``/``max_ms`` their latency (``None`` if none
    ended). ``usage_percent`` (0-100+) is the last ``x-memory-usage`` the target reported in
    this second and ``level`` (0-3) the highest ``x-memory-level``; ``None`` when none was seen.
    ``late`` calls went out more than ``LATE_MS`` after their intended start; ``dropped`` ones
    were not sent because the in-flight bound was reached.
    """

    second: int
    unix: int
    sent: int
    answered: int
    codes: Mapping[str, int]
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    usage_percent: float | None
    level: int | None
    late: int
    dropped: int
    histogram: str | None = None


@dataclass(frozen=True)
class Report:
    """Everything a run measured; immutable, rendered by the ``report`` package.

    ``config`` is what was asked (target, method, mode, rates, ...). ``start_unix``/``end_unix``
    bound the measured part (after warm-up). ``overall`` is every status together.
    ``out_of_range`` counts latencies the histograms could not hold (over an hour).
    ``sources`` names the files a merged report came from (empty for a run).
    """

    config: Mapping[str, Any]
    start_unix: float
    end_unix: float
    sent: int
    answered: int
    late: int
    dropped: int
    out_of_range: int
    overall: Latency | None
    statuses: tuple[StatusStats, ...]
    errors: tuple[ErrorCount, ...]
    timeline: tuple[Second, ...]
    sources: tuple[str, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        """Length of the measured part (s)."""
        return max(0.0, self.end_unix - self.start_unix)

    @property
    def rate_sent(self) -> float:
        """Calls sent per second over the measured part."""
        return self.sent / self.duration_s if self.duration_s else 0.0

    @property
    def rate_answered(self) -> float:
        """Calls answered (any status) per second over the measured part."""
        return self.answered / self.duration_s if self.duration_s else 0.0

    def count(self, code: str) -> int:
        """Calls that ended with status ``code`` (0 if none)."""
        return sum(s.count for s in self.statuses if s.code == code)
