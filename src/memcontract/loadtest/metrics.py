"""Accumulating one worker's measurements, merging workers and files exactly, freezing a Report.

Per status code a pair of HDR histograms (wrk2): latency from the intended start and from the
actual send. Per wall-clock second a bucket: calls sent, answered (by status), a histogram of
the latencies that ended in it, and the target's last ``x-memory-usage`` / highest
``x-memory-level`` seen in it. Seconds count from the start of the measured part (second ``k``
is ``[start + k, start + k + 1)``), so the k-th seconds of several workers (which start
together) or machines line up when merged with :meth:`Metrics.add` (histograms add exactly).

Latencies are recorded in microseconds in [1 µs, 1 h]; a value the histogram cannot hold is
counted in ``out_of_range`` (HdrHistogram's ``record_value`` returns False), never lost silently.

The harness measures itself beside the target (wrk2's lesson: a client that falls behind
reports its own delay as the target's): each call's send lag, the event loop's lag and its
thread's CPU per second (``SelfCheck``). Level changes read in trailers become events.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from hdrh.histogram import HdrHistogram

from .result import (
    CPU_SATURATED_PERCENT,
    QUANTILES,
    ErrorCount,
    Event,
    Latency,
    Report,
    Second,
    SelfCheck,
    StatusStats,
    stream_label,
)

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3  # per-status histograms: 0.1 % resolution
SECOND_DIGITS = 2  # per-second histograms: 1 %, a tenth of the memory
LATE_S = 0.010  # a call sent more than this after its intended start is "late"
LATE_MS = LATE_S * 1000
MAX_ERROR_KINDS = 64  # distinct (code, details) pairs kept; the rest are pooled
OTHER_DETAILS = "(other details)"
_Carry = tuple[float | None, int | None]  # (usage %, level) a second carries to the next
_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def normalise(details: str) -> str:
    """``details`` with every number written ``N``: one group per kind of error.

    >>> normalise("memory level 3: usage 102.3% of 96 MiB")
    'memory level N: usage N% of N MiB'
    """
    return _NUMBER_RE.sub("N", details)


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    """An empty histogram of microseconds, [1 µs, 1 h], ``digits`` significant digits."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def record(histogram: HdrHistogram, value: int) -> bool:
    """``histogram.record_value(value)`` (same buckets, same False when out of range), faster.

    hdrh finds the bucket through ``bin(value)``; ``int.bit_length`` is the same number
    (``64 - clz``) without the string, and the hot path records two values per call.
    """
    h = histogram
    bucket = (value | h.sub_bucket_mask).bit_length() - h.unit_magnitude
    bucket -= h.sub_bucket_half_count_magnitude + 1
    index = ((bucket + 1) << h.sub_bucket_half_count_magnitude) - h.sub_bucket_half_count
    index += value >> (bucket + h.unit_magnitude)
    if value < 0 or index >= h.counts_len:
        return False
    h.counts[index] += 1
    h.total_count += 1
    if value < h.min_value:
        h.min_value = value
    if value > h.max_value:
        h.max_value = value
    return True


def encode(histogram: HdrHistogram) -> str:
    """HdrHistogram's compressed base64 form (exact; see :func:`decode`)."""
    data: bytes = histogram.encode()
    return data.decode("ascii")


def decode(text: str) -> HdrHistogram:
    """The histogram :func:`encode` wrote."""
    return HdrHistogram.decode(text.encode("ascii"))


def summarize(histogram: HdrHistogram) -> Latency:
    """Quantiles, max and mean of a histogram of microseconds, in milliseconds."""
    quantiles = {name: histogram.get_value_at_percentile(p) / 1000.0 for name, p in QUANTILES}
    return Latency(quantiles, histogram.get_max_value() / 1000.0, histogram.get_mean_value() / 1000)


class Bucket:
    """One wall-clock second of one or more workers (mutable; see ``result.Second``)."""

    __slots__ = (
        "answered",
        "codes",
        "cpu",
        "dropped",
        "histogram",
        "late",
        "level",
        "loop_lag",
        "sent",
        "usage",
    )

    def __init__(self) -> None:
        self.sent = 0
        self.answered = 0
        self.late = 0
        self.dropped = 0
        self.codes: Counter[str] = Counter()
        self.histogram: HdrHistogram | None = None
        self.usage: float | None = None  # percent, last seen
        self.level: int | None = None  # highest seen
        self.loop_lag: float | None = None  # ms, the worst in the second
        self.cpu: float | None = None  # % of the second the event-loop thread was busy

    def record(self, code: str, micros: int) -> bool:
        """One answered call; False when the latency is out of the histogram's range."""
        self.answered += 1
        self.codes[code] += 1
        if self.histogram is None:
            self.histogram = new_histogram(SECOND_DIGITS)
        return record(self.histogram, micros)

    def memory(self, usage: float | None, level: int | None) -> None:
        """The target's state as read from one call's trailers."""
        if usage is not None:
            self.usage = usage
        if level is not None and (self.level is None or level > self.level):
            self.level = level

    def add(self, other: Bucket) -> None:
        """Merge another worker's same second (usage: the other's if it saw one)."""
        self.sent += other.sent
        self.answered += other.answered
        self.late += other.late
        self.dropped += other.dropped
        self.codes.update(other.codes)
        if other.histogram is not None:
            if self.histogram is None:
                self.histogram = new_histogram(SECOND_DIGITS)
            self.histogram.add(other.histogram)
        self.memory(other.usage, other.level)
        self.loop_lag = _max(self.loop_lag, other.loop_lag)
        self.cpu = _max(self.cpu, other.cpu)

    def freeze(self, second: int, start_unix: float) -> Second:
        """The immutable record of second ``second`` of a run that began at ``start_unix``."""
        h = self.histogram
        has = h is not None and h.get_total_count() > 0

        def ms(value: float) -> float | None:
            return value / 1000.0 if has else None

        return Second(
            second=second,
            unix=int(start_unix) + second,
            sent=self.sent,
            answered=self.answered,
            codes=dict(sorted(self.codes.items())),
            p50_ms=ms(h.get_value_at_percentile(50.0)) if h else None,
            p99_ms=ms(h.get_value_at_percentile(99.0)) if h else None,
            max_ms=ms(h.get_max_value()) if h else None,
            usage_percent=self.usage,
            level=self.level,
            late=self.late,
            dropped=self.dropped,
            histogram=encode(h) if h is not None and has else None,
            loop_lag_ms=self.loop_lag,
            cpu_percent=self.cpu,
        )

    @classmethod
    def thaw(cls, second: Second) -> Bucket:
        """A bucket holding what ``second`` recorded (its histogram decoded)."""
        bucket = cls()
        bucket.sent, bucket.answered = second.sent, second.answered
        bucket.late, bucket.dropped = second.late, second.dropped
        bucket.codes.update(second.codes)
        bucket.histogram = decode(second.histogram) if second.histogram else None
        bucket.usage, bucket.level = second.usage_percent, second.level
        bucket.loop_lag, bucket.cpu = second.loop_lag_ms, second.cpu_percent
        return bucket


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


class Metrics:
    """One worker's (or a merge's) measurements; not thread-safe (one event loop records).

    Times are Unix seconds (floats). ``start_unix`` is when measuring began (after warm-up).
    ``closed_loop`` says every call is sent at its intended start, so the two histograms of a
    status are one (recorded once: the hot path is shorter).
    """

    def __init__(self, start_unix: float, *, closed_loop: bool = False) -> None:
        self.closed_loop = closed_loop
        self.start_unix = start_unix
        self.end_unix = start_unix
        self.latency: dict[str, HdrHistogram] = {}
        self.service: dict[str, HdrHistogram] = {}
        self.buckets: dict[int, Bucket] = {}
        self.errors: Counter[tuple[str, str]] = Counter()
        self.examples: dict[tuple[str, str], str] = {}
        self.send_lag = new_histogram(SECOND_DIGITS)
        self.loop_lag = new_histogram(SECOND_DIGITS)
        self.events: list[Event] = []
        self.level: int | None = None  # the target's level as last read in trailers
        self._live_carry: _Carry = (None, None)  # what the next live second carries over
        self.sent = 0
        self.answered = 0
        self.late = 0
        self.dropped = 0
        self.out_of_range = 0

    def bucket(self, unix: float) -> Bucket:
        """The bucket of the second of the run holding ``unix`` (floored; before start: -1)."""
        key = math.floor(unix - self.start_unix)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket()
        return bucket

    def on_sent(self, intended: float, sent: float) -> None:
        """A call went out at ``sent`` for its ``intended`` start (Unix s)."""
        self.sent += 1
        bucket = self.bucket(sent)
        bucket.sent += 1
        if not self.closed_loop:
            record(self.send_lag, max(LOWEST_US, int((sent - intended) * 1_000_000)))
        if sent - intended > LATE_S:
            self.late += 1
            bucket.late += 1

    def on_dropped(self, intended: float, count: int = 1) -> None:
        """``count`` calls due in the second of ``intended`` were not sent (the in-flight
        bound was reached)."""
        self.dropped += count
        self.bucket(intended).dropped += count

    def on_done(
        self,
        code: str,
        intended: float,
        sent: float,
        done: float,
        details: str | None = None,
    ) -> Bucket:
        """A call ended at ``done`` with status ``code``; returns its second's bucket."""
        self.answered += 1
        if done > self.end_unix:
            self.end_unix = done
        micros = max(LOWEST_US, int((done - intended) * 1_000_000))
        hist = self.latency.get(code)
        if hist is None:
            hist = self.latency[code] = new_histogram()
            self.service[code] = hist if self.closed_loop else new_histogram()
        ok = record(hist, micros)
        service = self.service[code]
        if service is not hist:
            ok = record(service, max(LOWEST_US, int((done - sent) * 1_000_000))) and ok
        bucket = self.bucket(done)
        if not bucket.record(code, micros) or not ok:
            self.out_of_range += 1
        if details is not None:
            self.on_error(code, details)
        return bucket

    def on_error(self, code: str, details: str, count: int = 1, example: str | None = None) -> None:
        """``count`` calls ended with ``code`` and ``details`` (grouped with numbers as N)."""
        key = (code, normalise(details))
        if key not in self.errors and len(self.errors) >= MAX_ERROR_KINDS:
            key = (code, OTHER_DETAILS)
        self.errors[key] += count
        self.examples.setdefault(key, details if example is None else example)

    def on_memory(self, at: float, usage: float | None, level: int | None) -> None:
        """The target's state read from the trailers of a call that ended at ``at`` (Unix s).

        ``None`` is a key the trailers did not carry: unchanged since last seen (targets that
        send keys only on change), not level 0. A level unlike the last one read is an event.
        """
        self.bucket(at).memory(usage, level)
        if level is not None and level != self.level:
            text = (
                f"level {level} at first read"
                if self.level is None
                else (f"level {self.level} -> {level}")
            )
            self.events.append(Event(at, "level", text, level=level))
            self.level = level

    def on_loop_lag(self, at: float, lag_s: float) -> None:
        """The event loop woke a timer ``lag_s`` late at ``at`` (Unix s)."""
        record(self.loop_lag, max(LOWEST_US, int(lag_s * 1_000_000)))
        bucket = self.bucket(at)
        bucket.loop_lag = _max(bucket.loop_lag, lag_s * 1000)

    def on_cpu(self, at: float, percent: float) -> None:
        """The harness's event-loop thread was busy ``percent`` % of the second ending ``at``."""
        bucket = self.bucket(at - 1e-6)
        bucket.cpu = _max(bucket.cpu, percent)

    def on_event(self, event: Event) -> None:
        """A phase boundary or a load stop (see ``result.Event``)."""
        self.events.append(event)

    def add(self, other: Metrics) -> None:
        """Merge ``other`` into this (exact: counts and histograms add). Runs are laid over
        each other from their starts (as their seconds are): the merged run is as long as the
        longer one, from the earlier start, and each run's events keep their offsets."""
        length = max(self.end_unix - self.start_unix, other.end_unix - other.start_unix)
        start = min(self.start_unix, other.start_unix)
        self.events = [_moved(e, start - self.start_unix) for e in self.events]
        self.events.extend(_moved(e, start - other.start_unix) for e in other.events)
        self.start_unix, self.end_unix = start, start + length
        for code, hist in other.latency.items():
            self._histogram(self.latency, code).add(hist)
            self._histogram(self.service, code).add(other.service[code])
        for key, bucket in other.buckets.items():
            self.buckets.setdefault(key, Bucket()).add(bucket)
        self.errors.update(other.errors)
        for group, example in other.examples.items():
            self.examples.setdefault(group, example)
        self.send_lag.add(other.send_lag)
        self.loop_lag.add(other.loop_lag)
        self.sent += other.sent
        self.answered += other.answered
        self.late += other.late
        self.dropped += other.dropped
        self.out_of_range += other.out_of_range

    @staticmethod
    def _histogram(table: dict[str, HdrHistogram], code: str) -> HdrHistogram:
        hist = table.get(code)
        if hist is None:
            hist = table[code] = new_histogram()
        return hist

    def freeze(self, config: Mapping[str, Any], sources: Iterable[str] = ()) -> Report:
        """The immutable report of everything recorded so far."""
        overall = new_histogram()
        for hist in self.latency.values():
            overall.add(hist)
        statuses = tuple(
            StatusStats(
                code=code,
                count=hist.get_total_count(),
                latency=summarize(hist),
                histogram=encode(hist),
                service_histogram=encode(self.service[code]),
            )
            for code, hist in sorted(self.latency.items(), key=lambda kv: (kv[0] != "OK", kv[0]))
        )
        errors = tuple(
            ErrorCount(code, details, count, self.examples.get((code, details), ""))
            for (code, details), count in sorted(self.errors.items(), key=lambda kv: -kv[1])
        )
        timeline = self._timeline()
        events = _distinct_levels(sorted(self.events, key=lambda e: e.unix))
        label = stream_label(config)
        return Report(
            config=dict(config),
            start_unix=self.start_unix,
            end_unix=self.end_unix,
            sent=self.sent,
            answered=self.answered,
            late=self.late,
            dropped=self.dropped,
            out_of_range=self.out_of_range,
            overall=summarize(overall) if overall.get_total_count() else None,
            statuses=statuses,
            errors=errors,
            timeline=timeline,
            sources=tuple(sources),
            events=tuple(
                e if e.stream or e.kind == "server-level" else _tag(e, label) for e in events
            ),
            harness=self._self_check(timeline),
        )

    def _timeline(self) -> tuple[Second, ...]:
        """The seconds, the target's usage and level carried over seconds that read none."""
        changes = self._level_changes()
        seconds = []
        carry: _Carry = (None, None)
        for key in sorted(self.buckets):
            second, carry = self._carried(self.buckets[key], key, carry, changes)
            seconds.append(second)
        return tuple(seconds)

    def live_second(self, key: int) -> Second:
        """Second ``key`` as it closes, for a live display: usage and level carried over as in
        the report's timeline (seconds must be asked for in order)."""
        bucket = self.buckets.get(key) or Bucket()
        second, self._live_carry = self._carried(
            bucket, key, self._live_carry, self._level_changes()
        )
        return second

    def _level_changes(self) -> list[tuple[float, int | None]]:
        return sorted((e.unix, e.level) for e in self.events if e.kind == "level")

    def _carried(
        self, bucket: Bucket, key: int, carry: _Carry, changes: list[tuple[float, int | None]]
    ) -> tuple[Second, _Carry]:
        """Second ``key`` with the usage and level carried over from ``carry`` where it read
        none; and what the next second carries: its usage, and the level in force when it
        ends (a second's ``level`` is the highest it read, which may not be the last)."""
        second = bucket.freeze(key, self.start_unix)
        usage, level = carry
        if second.usage_percent is None and usage is not None:
            second = replace(second, usage_percent=usage)
        if second.level is None and level is not None:
            second = replace(second, level=level)
        level = second.level
        end = self.start_unix + key + 1
        for at, changed in changes:
            if end - 1 <= at < end:
                level = changed
        return second, (second.usage_percent, level)

    def _self_check(self, timeline: tuple[Second, ...]) -> SelfCheck:
        cpu = [s.cpu_percent for s in timeline if s.cpu_percent is not None]
        send, loop = self.send_lag, self.loop_lag
        return SelfCheck(
            send_lag=summarize(send) if send.get_total_count() else None,
            loop_lag=summarize(loop) if loop.get_total_count() else None,
            send_lag_histogram=encode(send) if send.get_total_count() else None,
            loop_lag_histogram=encode(loop) if loop.get_total_count() else None,
            cpu_saturated_s=sum(1 for p in cpu if p >= CPU_SATURATED_PERCENT),
            cpu_peak_percent=max(cpu, default=None),
        )

    @classmethod
    def from_report(cls, report: Report) -> Metrics:
        """Measurements equal to those ``report`` was frozen from (histograms decoded)."""
        metrics = cls(report.start_unix)
        metrics.end_unix = report.end_unix
        for status in report.statuses:
            metrics.latency[status.code] = decode(status.histogram)
            metrics.service[status.code] = decode(status.service_histogram)
        for second in report.timeline:
            metrics.buckets[second.second] = Bucket.thaw(second)
        for error in report.errors:
            metrics.on_error(error.code, error.details, error.count, error.example)
        for name, histogram in (
            ("send_lag", report.harness.send_lag_histogram),
            ("loop_lag", report.harness.loop_lag_histogram),
        ):
            if histogram:
                setattr(metrics, name, decode(histogram))
        metrics.events = list(report.events)
        metrics.sent, metrics.answered = report.sent, report.answered
        metrics.late, metrics.dropped = report.late, report.dropped
        metrics.out_of_range = report.out_of_range
        return metrics


def _tag(event: Event, stream: str) -> Event:
    return replace(event, stream=stream, text=f"{event.text} ({stream})")


def _distinct_levels(events: list[Event]) -> list[Event]:
    """``events`` (sorted) less the level events that repeat their stream's previous level
    (several workers of one stream each see the same change)."""
    last: dict[str, int | None] = {}
    kept = []
    for event in events:
        if event.kind == "level":
            if event.stream in last and last[event.stream] == event.level:
                continue
            last[event.stream] = event.level
        kept.append(event)
    return kept


def _moved(event: Event, by: float) -> Event:
    """``event`` ``by`` seconds later (a run laid over another from its start)."""
    return event if by == 0 else replace(event, unix=event.unix + by)


def _merge_exact(
    reports: Iterable[Report], config: Mapping[str, Any], sources: Iterable[str]
) -> Report:
    merged: Metrics | None = None
    for report in reports:
        metrics = Metrics.from_report(report)
        if merged is None:
            merged = metrics
        else:
            merged.add(metrics)
    if merged is None:
        raise ValueError("merge needs at least one report")
    return merged.freeze(config, sources)


def stream_key(report: Report) -> tuple[str, str]:
    """What makes two reports one stream: the same method and label."""
    return (str(report.config.get("method", "")), report.label)


def merge(reports: Iterable[Report], config: Mapping[str, Any], sources: Iterable[str]) -> Report:
    """One report of several runs, exact through their histograms.

    Runs of one stream (same method and label: workers, machines) merge into one; different
    streams are kept apart in ``streams`` (each merged exactly), and the totals, statuses and
    timeline are all of them together, exactly. ``config`` is the merged report's.
    """
    parts = [stream for report in reports for stream in report.stream_reports()]
    groups: dict[tuple[str, str], list[Report]] = {}
    for part in parts:
        groups.setdefault(stream_key(part), []).append(part)
    streams = tuple(_merge_exact(group, group[0].config, ()) for group in groups.values())
    if len(streams) == 1:
        return _merge_exact(streams, config, sources)
    total = _merge_exact(streams, config, sources)
    return replace(total, streams=streams)
