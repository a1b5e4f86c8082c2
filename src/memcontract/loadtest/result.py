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

SCHEMA_ID = "memcontract.loadtest/v2"
#: Older schemas :func:`~memcontract.loadtest.report.jsonfmt.read` still reads (fields added
#: since take their empty value).
OLD_SCHEMA_IDS = ("memcontract.loadtest/v1",)

#: Past this p99 of its own lag (ms), the harness says latencies include its delay.
SELF_LAG_WARN_MS = 10.0
#: A second in which the harness's event-loop thread was busy this share of the time (%).
CPU_SATURATED_PERCENT = 90.0

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
    """How many calls ended with ``code`` and ``details`` (numbers in them normalised to ``N``,
    so ``usage 102.3%`` and ``usage 97%`` are one group); ``example`` is one raw text of the
    group. Distinct groups are capped (the rest are pooled)."""

    code: str
    details: str
    count: int
    example: str = ""


@dataclass(frozen=True)
class Event:
    """Something that happened at Unix time ``unix`` (s), drawn as a marker on every chart.

    ``kind``: ``phase`` (a schedule step or ramp begins or ends), ``stop`` (a stream's load
    stopped), ``level`` (the target's ``x-memory-level`` changed, as read in trailers) or
    ``server-level`` (the target's own transition, read from its ``MemoryPressureService``).
    ``stream`` is the stream's label (empty for the target's own events), ``level`` the new
    level (0-3) for level events, ``text`` what a person reads.
    """

    unix: float
    kind: str
    text: str
    stream: str = ""
    level: int | None = None


@dataclass(frozen=True)
class SelfCheck:
    """The harness measuring itself, in milliseconds.

    ``send_lag`` is each call's actual send minus its intended start (open loop only; ``None``
    in closed loop or with no call); ``loop_lag`` how late the event loop woke a timer (sampled
    every ``LOOP_TICK_S``); their histograms are encoded HdrHistograms of microseconds (exact
    merges). ``cpu_saturated_s`` counts the seconds in which the harness's event-loop thread
    was busy at least ``CPU_SATURATED_PERCENT`` % of the time, ``cpu_peak_percent`` its busiest
    second (``None`` when not measured).
    """

    send_lag: Latency | None = None
    loop_lag: Latency | None = None
    send_lag_histogram: str | None = None
    loop_lag_histogram: str | None = None
    cpu_saturated_s: int = 0
    cpu_peak_percent: float | None = None

    @property
    def lag_p99_ms(self) -> float:
        """The larger of the send lag's and the loop lag's p99 (ms; 0 when neither measured)."""
        values = [lat.quantiles["p99"] for lat in (self.send_lag, self.loop_lag) if lat]
        return max(values, default=0.0)

    @property
    def behind(self) -> bool:
        """The harness's own lag p99 exceeds ``SELF_LAG_WARN_MS``: latencies include it."""
        return self.lag_p99_ms > SELF_LAG_WARN_MS

    def warnings(self) -> list[str]:
        """What a person must know before reading the latencies (empty: nothing)."""
        found = []
        if self.behind:
            starved = ""
            if not self.cpu_saturated_s and self.cpu_peak_percent is not None:
                starved = (
                    f"; its own CPU was not saturated (busiest second "
                    f"{self.cpu_peak_percent:.0f}%): the machine is busy"
                )
            found.append(
                f"the harness fell behind (its own lag p99 {self.lag_p99_ms:.1f} ms > "
                f"{SELF_LAG_WARN_MS:g} ms): latencies include the harness's delay{starved}"
            )
        if self.cpu_saturated_s:
            found.append(
                f"the harness's CPU was saturated in {self.cpu_saturated_s} s of the run "
                "(its event loop busy >= "
                f"{CPU_SATURATED_PERCENT:g}%): add --workers, or measure from another machine"
            )
        return found


@dataclass(frozen=True)
class Second:
    """Second number ``second`` of the run, ``[start + second, start + second + 1)``.

    ``unix`` is the Unix second it began in (for display).

    ``sent`` counts calls sent in this second, ``answered`` calls that ended in it (any status;
    ``codes`` splits them), ``p50_ms``/``p99_ms``/``max_ms`` their latency (``None`` if none
    ended). ``usage_percent`` (0-100+) is the last ``x-memory-usage`` the target reported in
    this second and ``level`` (0-3) the highest ``x-memory-level``; ``None`` when none was seen.
    ``late`` calls went out more than ``LATE_MS`` after their intended start; ``dropped`` ones
    were not sent because the in-flight bound was reached. With targets that send their keys
    only when they change, an absent key means "unchanged": a second that saw none carries
    the usage last seen and the level in force when the second before it ended.
    ``loop_lag_ms`` is the harness's worst event-loop lag in this second and ``cpu_percent``
    how busy its event-loop thread was (% of the second; the busiest worker's), ``None`` when
    not measured.
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
    loop_lag_ms: float | None = None
    cpu_percent: float | None = None


@dataclass(frozen=True)
class Report:
    """Everything a run measured; immutable, rendered by the ``report`` package.

    ``config`` is what was asked (target, method, mode, rates, ...). ``start_unix``/``end_unix``
    bound the measured part (after warm-up). ``overall`` is every status together.
    ``out_of_range`` counts latencies the histograms could not hold (over an hour).
    ``sources`` names the files a merged report came from (empty for a run).
    ``events`` are the timeline's markers (sorted by time), ``harness`` the harness's own lag.
    ``streams``: a merge of several streams (method and label) keeps each one's own report
    here (their totals add up to this one's exactly); empty for a single stream, which is
    its own (see :meth:`stream_reports`).
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
    events: tuple[Event, ...] = field(default=())
    harness: SelfCheck = field(default_factory=SelfCheck)
    streams: tuple[Report, ...] = field(default=())

    @property
    def label(self) -> str:
        """The stream's label: ``config["label"]``, else the method's last part."""
        return stream_label(self.config)

    def stream_reports(self) -> tuple[Report, ...]:
        """Each stream's report: ``streams``, or this report alone when it is one stream."""
        return self.streams or (self,)

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


def stream_label(config: Mapping[str, Any]) -> str:
    """A stream's label from a report's config (the method's last part by default).

    >>> stream_label({"method": "/pkg.Svc/Get"}), stream_label({"method": "/a/B", "label": "x"})
    ('Get', 'x')
    """
    label = config.get("label")
    if label:
        return str(label)
    return str(config.get("method", "")).rsplit("/", 1)[-1] or "?"
