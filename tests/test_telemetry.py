"""Guard telemetry through the OpenTelemetry API, read back with the SDK's in-memory reader."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from memcontract.telemetry import PROBE_FAILURES

from .support import Rig, make_contract


def _rig() -> tuple[Rig, InMemoryMetricReader, InMemorySpanExporter]:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    rig = Rig(
        make_contract(),
        meter_provider=MeterProvider(metric_readers=[reader]),
        tracer_provider=tracer_provider,
    )
    return rig, reader, exporter


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    data = reader.get_metrics_data()
    out: dict[str, list[tuple[dict[str, Any], float]]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out[metric.name] = [
                    (dict(p.attributes or {}), p.value) for p in metric.data.data_points
                ]
    return out


def test_gauges_follow_the_snapshot() -> None:
    rig, reader, _ = _rig()
    rig.step(0.5, alloc_rate_mb=3)
    points = _points(reader)
    assert points["memcontract.memory.usage_ratio"] == [({}, 0.5)]
    assert points["memcontract.memory.capacity"] == [({}, 100 * 1048576)]
    assert points["memcontract.memory.used"] == [({}, 50 * 1048576)]
    assert points["memcontract.level"] == [({}, 0)]
    assert points["memcontract.memory.alloc_rate"] == [({}, 3 * 1048576)]


def test_level2_pauses_non_essential_gauges() -> None:
    rig, reader, _ = _rig()
    rig.run([0.91, 0.91])
    points = _points(reader)
    assert points["memcontract.level"] == [({}, 2)]
    assert (
        "memcontract.memory.alloc_rate" not in points
        or points["memcontract.memory.alloc_rate"] == []
    )


def test_counters_and_transition_span_events() -> None:
    rig, reader, exporter = _rig()
    rig.step(fail=True)
    rig.run([0.96, 0.96])
    points = _points(reader)
    assert points[PROBE_FAILURES] == [({"source": "read"}, 1)]
    events = [e for span in exporter.get_finished_spans() for e in span.events]
    assert [(e.attributes or {}).get("memcontract.level.new") for e in events] == [1, 2]
    assert all(e.name == "memcontract.level.transition" for e in events)
