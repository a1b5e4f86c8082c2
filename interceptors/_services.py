"""Out-of-band pressure services (docs/design.md §10): ORCA's ``OpenRcaService`` and
``memcontract.v1.MemoryPressureService``, fed by a guard, for grpcio and grpc.aio servers.

Every message is built from the guard's cached snapshot; a stream wakes on its interval (or
polls for the next sample every :data:`POLL_S`), never per call of the server's other methods.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import grpc
import grpc.aio
from google.protobuf.timestamp_pb2 import Timestamp
from xds.data.orca.v3 import orca_load_report_pb2
from xds.service.orca.v3 import orca_pb2

from memcontract import wire
from memcontract.allocations import AllocationReport
from memcontract.guard import Guard, Snapshot
from memcontract.v1 import memcontract_pb2 as pb

ORCA_SERVICE = "xds.service.orca.v3.OpenRcaService"
PRESSURE_SERVICE = "memcontract.v1.MemoryPressureService"
#: The shortest interval either stream honours, seconds (a request below it gets it).
MIN_INTERVAL_S = 0.1
#: How often a WatchPressure stream looks for a new sample once its interval has passed.
POLL_S = 0.05


def allocation_report_proto(report: AllocationReport | None) -> pb.GetAllocationReportResponse:
    """The response for a guard's latest allocation report (``report`` unset when none)."""
    if report is None:
        return pb.GetAllocationReportResponse()
    taken = Timestamp()
    taken.FromNanoseconds(round(report.taken_at * 1e9))
    return pb.GetAllocationReportResponse(
        report=pb.AllocationReport(
            taken_at=taken,
            level=cast(Any, report.level + 1),  # BreachLevel: ladder level + 1
            sites=[
                pb.AllocationSite(location=s.location, size_bytes=s.size_bytes, blocks=s.blocks)
                for s in report.sites
            ],
            traced=report.traced,
            examined=report.examined,
        )
    )


class PressureServices:
    """The messages both bindings send, and the intervals they honour.

    Args:
        guard: whose snapshot is served.
        min_interval: the floor on requested intervals, seconds.
    """

    def __init__(self, guard: Guard, min_interval: float = MIN_INTERVAL_S) -> None:
        self.guard = guard
        self.min_interval = min_interval

    def interval(self, requested_s: float) -> float:
        """Seconds between messages: the request (0: the sample interval), at least the floor."""
        return max(requested_s or self.guard.module.sample_interval, self.min_interval)

    def orca_interval(self, request: orca_pb2.OrcaLoadReportRequest) -> float:
        """The reporting interval of an ORCA stream."""
        given = request.report_interval
        return self.interval(given.seconds + given.nanos / 1e9)

    def load_report(self) -> orca_load_report_pb2.OrcaLoadReport:
        """The ORCA report of the latest sample (as in every call's trailers)."""
        snapshot = self.guard.snapshot
        orca = self.guard.module.orca
        rps, eps = orca.reported_rates(snapshot.rps, snapshot.eps, snapshot.pressure.usage_ratio)
        return wire.orca_load_report(
            snapshot.pressure, rps=rps, eps=eps, application_utilization=orca.reports_memory
        )

    def pressure(self, snapshot: Snapshot | None = None) -> pb.MemoryPressure:
        """The ``MemoryPressure`` of ``snapshot`` (default: the latest)."""
        return wire.to_proto((snapshot or self.guard.snapshot).pressure)

    def allocation_report(self) -> pb.GetAllocationReportResponse:
        """The guard's latest allocation report."""
        return allocation_report_proto(self.guard.allocation_report())

    # -- grpcio (sync): each stream holds one worker thread and sleeps on an Event ----------

    def sync_handlers(self) -> dict[str, dict[str, grpc.RpcMethodHandler]]:
        """Method handlers by service, for a grpcio server."""
        return self._handlers(
            get=lambda request, context: pb.GetPressureResponse(pressure=self.pressure()),
            watch=self._watch,
            report=lambda request, context: self.allocation_report(),
            orca=self._stream_core_metrics,
        )

    def _watch(self, request: pb.WatchPressureRequest, context: Any) -> Iterator[Any]:
        interval = self.interval(request.interval_ms / 1000)
        ended = _ended_event(context)
        last = None
        while True:
            snapshot = self.guard.snapshot
            if snapshot is not last:
                yield pb.WatchPressureResponse(pressure=self.pressure(snapshot))
                last = snapshot
                wait = interval
            else:
                wait = POLL_S
            if ended.wait(wait):
                return

    def _stream_core_metrics(self, request: Any, context: Any) -> Iterator[Any]:
        interval = self.orca_interval(request)
        ended = _ended_event(context)
        while True:
            yield self.load_report()
            if ended.wait(interval):
                return

    # -- grpc.aio: async generators; the server cancels them when the call ends -----------

    def aio_handlers(self) -> dict[str, dict[str, grpc.RpcMethodHandler]]:
        """Method handlers by service, for a grpc.aio server."""

        async def get(request: Any, context: Any) -> pb.GetPressureResponse:
            return pb.GetPressureResponse(pressure=self.pressure())

        async def report(request: Any, context: Any) -> pb.GetAllocationReportResponse:
            return self.allocation_report()

        return self._handlers(
            get=get, watch=self._watch_aio, report=report, orca=self._stream_core_metrics_aio
        )

    async def _watch_aio(
        self, request: pb.WatchPressureRequest, context: Any
    ) -> AsyncIterator[Any]:
        interval = self.interval(request.interval_ms / 1000)
        last = None
        while True:
            snapshot = self.guard.snapshot
            if snapshot is not last:
                yield pb.WatchPressureResponse(pressure=self.pressure(snapshot))
                last = snapshot
                await asyncio.sleep(interval)
            else:
                await asyncio.sleep(POLL_S)

    async def _stream_core_metrics_aio(self, request: Any, context: Any) -> AsyncIterator[Any]:
        interval = self.orca_interval(request)
        while True:
            yield self.load_report()
            await asyncio.sleep(interval)

    def _handlers(
        self, *, get: Any, watch: Any, report: Any, orca: Any
    ) -> dict[str, dict[str, grpc.RpcMethodHandler]]:
        return {
            PRESSURE_SERVICE: {
                "GetPressure": grpc.unary_unary_rpc_method_handler(
                    get,
                    request_deserializer=pb.GetPressureRequest.FromString,
                    response_serializer=pb.GetPressureResponse.SerializeToString,
                ),
                "WatchPressure": grpc.unary_stream_rpc_method_handler(
                    watch,
                    request_deserializer=pb.WatchPressureRequest.FromString,
                    response_serializer=pb.WatchPressureResponse.SerializeToString,
                ),
                "GetAllocationReport": grpc.unary_unary_rpc_method_handler(
                    report,
                    request_deserializer=pb.GetAllocationReportRequest.FromString,
                    response_serializer=pb.GetAllocationReportResponse.SerializeToString,
                ),
            },
            ORCA_SERVICE: {
                "StreamCoreMetrics": grpc.unary_stream_rpc_method_handler(
                    orca,
                    request_deserializer=orca_pb2.OrcaLoadReportRequest.FromString,
                    response_serializer=orca_load_report_pb2.OrcaLoadReport.SerializeToString,
                ),
            },
        }


def _ended_event(context: Any) -> threading.Event:
    """An event set when the call ends (the client cancels, the deadline passes)."""
    ended = threading.Event()
    if not context.add_callback(ended.set):  # already over
        ended.set()
    return ended


def add_pressure_services(
    server: Any, guard: Guard, *, min_interval: float = MIN_INTERVAL_S
) -> None:
    """Register the out-of-band services of ``guard`` on a grpcio or grpc.aio ``server``.

    * ``xds.service.orca.v3.OpenRcaService/StreamCoreMetrics``: ORCA reports (as in every
      call's trailers) every requested ``report_interval`` (unset: the guard's sample
      interval), for ``weighted_round_robin`` clients with ``enable_oob_load_report``.
    * ``memcontract.v1.MemoryPressureService``: ``GetPressure``; ``WatchPressure``, which sends
      the pressure at once and then on every new sample (so every level change), at most once
      per requested ``interval_ms`` (0: the sample interval); ``GetAllocationReport``, the
      guard's latest allocation report.

    Requested intervals below ``min_interval`` seconds get ``min_interval``. Both services are
    always core: they answer at level 3. Call before ``server.start()``.

    On a grpcio (sync) server each open stream holds one worker thread of the server's pool
    for its lifetime (grpcio pulls streamed responses on a worker): a client with
    ``enable_oob_load_report`` holds one per channel, ``memcontract top`` one per watcher. Size
    the pool for them, or serve with grpc.aio, where a stream is a task.
    """
    services = PressureServices(guard, min_interval)
    is_aio = isinstance(server, grpc.aio.Server) or isinstance(
        getattr(server, "_server", None), grpc.aio.Server
    )
    handlers = services.aio_handlers() if is_aio else services.sync_handlers()
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, methods)
            for name, methods in handlers.items()
        )
    )
