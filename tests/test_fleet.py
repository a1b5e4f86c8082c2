"""Fleet-wide balancing (docs/design.md §10), one process: the ORCA report's utilization and call
rates, counted by the real server interceptors, and the out-of-band pressure services on real
grpcio and grpc.aio servers. The balancers themselves are in test_balancers.py."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from memcontract.interceptors import add_pressure_services
from xds.data.orca.v3 import orca_load_report_pb2
from xds.service.orca.v3 import orca_pb2

from memcontract import wire
from memcontract.contract import OrcaOptions
from memcontract.pressure import Level, Pressure
from memcontract.v1 import memcontract_pb2 as pb
from memcontract.v1 import memcontract_pb2_grpc as pb_grpc

from .grpc_support import Calls, call_sync, serve
from .support import Rig, make_contract

ORCA_METHOD = "/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics"


def parse_orca(data: Any) -> orca_load_report_pb2.OrcaLoadReport:
    report = orca_load_report_pb2.OrcaLoadReport()
    report.ParseFromString(data)
    return report


def trailer_report(rig: Rig) -> orca_load_report_pb2.OrcaLoadReport:
    (value,) = [v for k, v in rig.guard.snapshot.trailing_metadata if k == wire.ORCA_BIN]
    return parse_orca(value)


# --- the report -------------------------------------------------------------------------------


def test_orca_report_carries_memory_as_application_utilization_and_the_rates() -> None:
    report = parse_orca(wire.orca_report(Pressure(0.9, level=Level.DEGRADED), rps=120.5, eps=3))
    assert report.application_utilization == 0.9
    assert report.mem_utilization == 0.9
    assert (report.rps_fractional, report.eps) == (120.5, 3.0)
    assert report.named_metrics[wire.ORCA_LEVEL] == 2
    # Over budget: mem_utilization is clamped to ORCA's [0, 1], application_utilization is not.
    over = parse_orca(wire.orca_report(Pressure(1.7)))
    assert (over.mem_utilization, over.application_utilization) == (1.0, 1.7)
    off = parse_orca(wire.orca_report(Pressure(0.9), application_utilization=False))
    assert (off.mem_utilization, off.application_utilization) == (0.9, 0.0)


def test_guard_turns_call_counts_into_rates_once_per_sample() -> None:
    rig = Rig(make_contract(sample_interval_ms=500, orca=OrcaOptions(rates="calls")))
    for _ in range(40):
        rig.guard.calls.count_call()
    for _ in range(5):
        rig.guard.calls.count_error()
    rig.step(0.5)
    assert (rig.guard.snapshot.rps, rig.guard.snapshot.eps) == (80.0, 10.0)
    report = trailer_report(rig)
    assert (report.rps_fractional, report.eps, report.application_utilization) == (80, 10, 0.5)
    rig.step(0.5)  # nothing counted over this sample
    assert (rig.guard.snapshot.rps, rig.guard.snapshot.eps) == (0.0, 0.0)


def test_headroom_rates_make_the_weight_depend_on_memory_and_errors_only() -> None:
    rig = Rig(make_contract(sample_interval_ms=500, orca=OrcaOptions(rates="headroom")))
    for _ in range(40):
        rig.guard.calls.count_call()
    for _ in range(10):
        rig.guard.calls.count_error()
    rig.step(0.6)
    report = trailer_report(rig)
    # WRR's weight rps / (utilization + eps / rps * penalty) becomes 0.4 / (0.6 + 0.25 * penalty)
    assert report.rps_fractional == pytest.approx(0.4)
    assert report.eps == pytest.approx(0.4 * 0.25)
    assert report.application_utilization == 0.6
    assert (rig.guard.snapshot.rps, rig.guard.snapshot.eps) == (80.0, 20.0)  # measured, kept
    rig.step(1.3)  # over budget, idle: still a weight (a zero rate would be ignored)
    report = trailer_report(rig)
    assert (report.rps_fractional, report.eps) == (0.01, 0.0)


def test_contract_turns_application_utilization_off() -> None:
    rig = Rig(make_contract(orca=OrcaOptions(application_utilization="none")))
    rig.step(0.7)
    report = trailer_report(rig)
    assert (report.application_utilization, report.mem_utilization) == (0.0, 0.7)


# --- counting in the real interceptors ---------------------------------------------------------

KINDS = ["sync", "aio", "aio-sync", "sync-wrapped", "aio-wrapped"]


@pytest.mark.parametrize("kind", KINDS)
def test_server_interceptors_count_calls_and_failed_calls(kind: str) -> None:
    rig = Rig(make_contract(sample_interval_ms=500, core_methods=("/test.Echo/Core",)))
    base, _, wrapped = kind.partition("-wrapped")
    with (
        serve(base, rig.guard, Calls(), wrapped=bool(wrapped)) as address,
        grpc.insecure_channel(address) as channel,
    ):
        outcomes = [
            call_sync(channel, arity, mode)[0]
            for arity, mode, times in (
                ("UnaryUnary", b"ok", 6),
                ("UnaryUnary", b"abort", 2),
                ("UnaryUnary", b"error", 1),
                ("UnaryStream", b"ok", 2),
                ("UnaryStream", b"abort", 1),
                ("StreamUnary", b"ok", 1),
            )
            for _ in range(times)
        ]
        failed = sum(code != grpc.StatusCode.OK for code in outcomes)
        assert (len(outcomes), failed) == (13, 4)
        rig.step(0.5)
        assert (rig.guard.snapshot.rps, rig.guard.snapshot.eps) == (13 / 0.5, 4 / 0.5)

        # At level 3 a shed call is a failed call; a core call is not.
        for _ in range(3):
            rig.step(0.99)
        assert rig.guard.level == Level.CRITICAL
        codes = [call_sync(channel, "UnaryUnary", b"ok")[0] for _ in range(4)]
        codes.append(call_sync(channel, "Core", b"ok")[0])
        assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4 + [grpc.StatusCode.OK]
        rig.step(0.99)
        assert (rig.guard.snapshot.rps, rig.guard.snapshot.eps) == (5 / 0.5, 4 / 0.5)


# --- the pressure services ---------------------------------------------------------------------


def orca_stream(channel: grpc.Channel, interval_s: float) -> Any:
    request = orca_pb2.OrcaLoadReportRequest()
    request.report_interval.FromNanoseconds(round(interval_s * 1e9))
    stream = channel.unary_stream(
        ORCA_METHOD,
        request_serializer=orca_pb2.OrcaLoadReportRequest.SerializeToString,
        response_deserializer=orca_load_report_pb2.OrcaLoadReport.FromString,
    )
    return stream(request, timeout=20)


def arrival_gaps(stream: Any, count: int) -> tuple[list[Any], list[float]]:
    messages, times = [], []
    for message in stream:
        messages.append(message)
        times.append(time.monotonic())
        if len(messages) == count:
            break
    stream.cancel()
    return messages, [b - a for a, b in itertools.pairwise(times)]


@contextlib.contextmanager
def services_channel(kind: str, rig: Rig) -> Iterator[grpc.Channel]:
    """A channel to a ``kind`` server with the pressure services of ``rig``'s guard."""
    with (
        serve(kind, rig.guard, Calls(), services=True) as address,
        grpc.insecure_channel(address) as channel,
    ):
        yield channel


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_pressure_service_get_and_allocation_report(kind: str) -> None:
    rig = Rig(make_contract(sample_interval_ms=100))
    rig.step(0.5)
    with services_channel(kind, rig) as channel:
        stub = pb_grpc.MemoryPressureServiceStub(channel)
        got = stub.GetPressure(pb.GetPressureRequest(), timeout=10).pressure
        assert wire.from_proto(got) == rig.guard.pressure
        report = stub.GetAllocationReport(pb.GetAllocationReportRequest(), timeout=10)
        assert not report.HasField("report")  # never at level 2
        # At level 3 both services still answer: they are core, like health.
        for _ in range(3):
            rig.step(0.99)
        assert rig.guard.level == Level.CRITICAL
        got = stub.GetPressure(pb.GetPressureRequest(), timeout=10).pressure
        assert got.level == pb.BREACH_LEVEL_CRITICAL
        messages, _ = arrival_gaps(orca_stream(channel, 0.1), 1)
        assert messages[0].application_utilization == 0.99


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_watch_pressure_sends_each_sample_at_most_once_per_interval(kind: str) -> None:
    rig = Rig(make_contract(sample_interval_ms=100))
    rig.step(0.5)
    with services_channel(kind, rig) as channel:
        stub = pb_grpc.MemoryPressureServiceStub(channel)
        watch = stub.WatchPressure(pb.WatchPressureRequest(interval_ms=600), timeout=20)
        first = next(watch)
        sent = time.monotonic()
        assert first.pressure.usage_ratio == 0.5
        # Three samples inside one interval: one message, carrying the latest.
        for usage in (0.6, 0.7, 0.85):
            rig.step(usage)
        second = next(watch)
        assert time.monotonic() - sent >= 0.5  # the interval, less timer slack
        assert (second.pressure.usage_ratio, second.pressure.level) == (
            0.85,
            pb.BREACH_LEVEL_ALERT,
        )
        # No new sample: nothing is sent; the next sample is.
        time.sleep(0.8)
        rig.step(0.5)
        third = next(watch)
        assert third.pressure.usage_ratio == 0.5
        assert (
            third.pressure.sampled_at.ToNanoseconds() > second.pressure.sampled_at.ToNanoseconds()
        )
        watch.cancel()


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_orca_stream_honours_the_requested_interval_with_a_floor(kind: str) -> None:
    rig = Rig(make_contract(sample_interval_ms=100))
    for _ in range(10):
        rig.guard.calls.count_call()
    rig.step(0.4)
    with services_channel(kind, rig) as channel:
        # Spans, not single gaps: one late message makes the next gap short.
        messages, gaps = arrival_gaps(orca_stream(channel, 0.4), 4)
        assert sum(gaps) >= 3 * 0.4 * 0.9, gaps
        assert messages[0].application_utilization == 0.4
        assert messages[0].rps_fractional == pytest.approx(1 - 0.4)  # default rates: headroom
        assert messages[0].named_metrics[wire.ORCA_LEVEL] == 0
        # 1 ms asked: the floor (100 ms) applies.
        _, gaps = arrival_gaps(orca_stream(channel, 0.001), 5)
        assert sum(gaps) >= 4 * 0.1 * 0.9, gaps


def test_add_pressure_services_on_an_unwrapped_server_without_interceptors() -> None:
    # The services need no interceptor: a plain grpcio server serves them.
    import concurrent.futures

    rig = Rig(make_contract())
    rig.step(0.3)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    add_pressure_services(server, rig.guard)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.MemoryPressureServiceStub(channel)
            assert stub.GetPressure(pb.GetPressureRequest(), timeout=10).pressure.usage_ratio == 0.3
    finally:
        server.stop(0).wait(5)
