"""Guard telemetry through the OpenTelemetry API, read back with the SDK's in-memory reader
(the ``metrics`` fixture): what an exporter sees, by the published names."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from memcontract.telemetry import PROBE_FAILURES

from .support import Metrics, Rig, make_contract


def _rig(metrics: Metrics) -> tuple[Rig, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    rig = Rig(make_contract(), meter_provider=metrics.provider, tracer_provider=tracer_provider)
    return rig, exporter


def test_gauges_follow_the_snapshot(metrics: Metrics) -> None:
    rig, _ = _rig(metrics)
    rig.step(0.5, alloc_rate_mb=3)
    points = metrics.points()
    assert points["memcontract.memory.usage_ratio"] == [({}, 0.5)]
    assert points["memcontract.memory.capacity"] == [({}, 100 * 1048576)]
    assert points["memcontract.memory.used"] == [({}, 50 * 1048576)]
    assert points["memcontract.level"] == [({}, 0)]
    assert points["memcontract.memory.alloc_rate"] == [({}, 3 * 1048576)]


def test_level2_pauses_non_essential_gauges(metrics: Metrics) -> None:
    rig, _ = _rig(metrics)
    rig.run([0.91, 0.91])
    points = metrics.points()
    assert points["memcontract.level"] == [({}, 2)]
    assert (
        "memcontract.memory.alloc_rate" not in points
        or points["memcontract.memory.alloc_rate"] == []
    )


def test_counters_and_transition_span_events(metrics: Metrics) -> None:
    rig, exporter = _rig(metrics)
    rig.step(fail=True)
    rig.run([0.96, 0.96])
    assert metrics.points()[PROBE_FAILURES] == [({"source": "read"}, 1)]
    events = [e for span in exporter.get_finished_spans() for e in span.events]
    assert [(e.attributes or {}).get("memcontract.level.new") for e in events] == [1, 2]
    assert all(e.name == "memcontract.level.transition" for e in events)
