"""Fleet balancing with real, unmodified balancers (docs/design.md §10): gRPC's stock
``weighted_round_robin`` in grpc-go (per-call ORCA trailers, and out of band from
``OpenRcaService``) and in grpcio's C-core, over three Python backends, one of them driven to
90 % usage (FakeProbe). Each backend counts the calls it serves; the phases are: calm, one
backend pressured, pressure gone.

WRR weighs a backend by ``rps_fractional / (application_utilization + eps / rps * penalty)``.
With ``orca.rates: headroom`` (the default) the weight is ``headroom / (usage + error ratio *
penalty)``: shares follow memory alone, and return to even when the pressure goes. With
``orca.rates: calls`` (measured calls per second) the pressured backend is starved at once, but
memory usage does not fall with the traffic a backend gets: once the usages are equal again,
every split of the traffic reports weights in the proportion of the split itself (a neutral
equilibrium), so shares drift and come back only slowly. Both are proven here; the backends
run the default unless a test names ``calls``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from memcontract.interceptors import add_pressure_services, server_interceptor

from memcontract import Guard
from memcontract.contract import OrcaOptions
from memcontract.testing import FakeProbe

from .go_support import GoServer, build
from .support import make_contract

# A drill (`make drills`): each test measures traffic shares over settle-and-measure windows, a
# minute and more in all, which `make test`'s time budget cannot hold.
pytestmark = pytest.mark.drill

CALM, PRESSURED = 0.3, 0.9
SETTLE_S = 3.0  # after a change of pressure, before counting
MEASURE_S = 3.0
RECOVER_WITHIN_S = 12.0
# No blackout, weights recomputed every 100 ms, and grpc's default expiration (3 min): a calm
# backend's keys travel on a connection's first call, on a change and every 30 s (calm is
# free), so a weight must outlive 30 s without a report, as the balancers' default does.
WRR = {"blackoutPeriod": "0s", "weightUpdatePeriod": "0.1s"}


class CountingHealth(health.HealthServicer):  # type: ignore[misc]
    """The health service, counting the checks it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.served = 0
        self._lock = threading.Lock()

    def Check(self, request: object, context: object) -> object:
        with self._lock:
            self.served += 1
        return super().Check(request, context)


class MethodLog(grpc.ServerInterceptor):  # type: ignore[misc]
    """Records the methods called on a server."""

    def __init__(self) -> None:
        self.methods: set[str] = set()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.methods.add(details.method)
        return continuation(details)


ORCA_METHOD = "/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics"


class Backend:
    def __init__(self, rates: str | None) -> None:
        self.probe = FakeProbe()
        self.probe.set(usage=CALM)
        orca = OrcaOptions() if rates is None else OrcaOptions(rates=rates)  # None: the default
        contract = make_contract(sample_interval_ms=100, orca=orca)
        self.guard = Guard(contract, probe=self.probe, disable={"sample_allocations"})
        self.health = CountingHealth()
        self.log = MethodLog()
        self.server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(8),
            interceptors=[self.log, server_interceptor(self.guard)],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        add_pressure_services(self.server, self.guard)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def start(self) -> None:
        self.guard.start()
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0).wait(5)
        self.guard.stop()


@contextlib.contextmanager
def three_backends(rates: str | None = None) -> Iterator[list[Backend]]:
    backends = [Backend(rates) for _ in range(3)]
    try:
        for b in backends:
            b.start()
        yield backends
    finally:
        for b in backends:
            b.stop()


def served(backends: list[Backend], seconds: float) -> list[int]:
    """Calls each backend served over the next ``seconds``."""
    before = [b.health.served for b in backends]
    time.sleep(seconds)
    return [b.health.served - n for b, n in zip(backends, before, strict=True)]


def check_steering(backends: list[Backend], *, drifting: bool = False) -> list[int]:
    """Pressure backend 0: each calm backend must serve at least 3x what it serves.

    ``drifting`` (``orca.rates: calls``): the calm backends' split is a neutral equilibrium
    and may wander (one calm backend can end up near the balancer's minimum weight too), so
    only what that mode guarantees is checked: backend 0 gets at most a ninth of the calls,
    a third of an even share.
    """
    time.sleep(SETTLE_S)
    calm = served(backends, MEASURE_S)
    assert min(calm) > 50, f"too little traffic to judge: {calm}"
    backends[0].probe.set(usage=PRESSURED)
    time.sleep(SETTLE_S)
    counts = served(backends, MEASURE_S)
    pressured, *others = counts
    if drifting:
        assert 9 * pressured <= sum(counts), (calm, counts)
    else:
        assert all(other >= 3 * max(pressured, 1) for other in others), (calm, counts)
    print(f"calls served over {MEASURE_S:g} s: calm {calm}, backend 0 pressured {counts}")
    return counts


def check_recovery(backends: list[Backend]) -> list[int]:
    """Pressure gone: the shares return to even (largest at most 1.5x the smallest)."""
    backends[0].probe.set(usage=CALM)
    deadline = time.monotonic() + RECOVER_WITHIN_S
    history = []
    while True:
        counts = served(backends, 2.0)
        history.append(counts)
        if min(counts) > 20 and max(counts) <= 1.5 * min(counts):
            print(f"pressure gone, calls per 2 s: {history}")
            return counts
        assert time.monotonic() < deadline, f"not even within {RECOVER_WITHIN_S} s: {history}"


# --- grpcio (C-core) ---------------------------------------------------------------------------


@pytest.mark.parametrize("rates", [None, "calls"], ids=["default", "calls"])
def test_grpcio_weighted_round_robin_steers_by_memory(rates: str | None) -> None:
    with three_backends(rates) as backends:
        target = "ipv4:" + ",".join(b.address for b in backends)
        config = json.dumps({"loadBalancingConfig": [{"weighted_round_robin": WRR}]})
        stop = threading.Event()
        failures: list[grpc.RpcError] = []
        with grpc.insecure_channel(target, options=[("grpc.service_config", config)]) as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            def caller() -> None:
                while not stop.is_set():
                    try:
                        stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    except grpc.RpcError as err:
                        failures.append(err)
                    stop.wait(0.005)

            threads = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
            for thread in threads:
                thread.start()
            try:
                check_steering(backends, drifting=rates == "calls")
                if rates is None:  # the default, headroom; see the module docstring for "calls"
                    check_recovery(backends)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(10)
        assert not failures, failures[:3]


# --- grpc-go ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def go_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("gobin"))


def go_client(go_bin: Path, backends: list[Backend], *extra: str) -> GoServer:
    targets = ",".join(b.address for b in backends)
    argv = [str(go_bin / "wrrclient"), "-targets", targets, "-duration", "60s", "-blackout", "0s"]
    argv += ["-weight-update", "100ms", "-weight-expiration", "3m", *extra]
    return GoServer(argv, ready="started")


def test_go_weighted_round_robin_steers_by_memory_per_call(go_bin: Path) -> None:
    with three_backends() as backends, go_client(go_bin, backends) as client:
        check_steering(backends)
        check_recovery(backends)
        assert all(line["errors"] == 0 for line in client.drain("window")), client.lines
        assert not any(ORCA_METHOD in b.log.methods for b in backends)


def test_go_weighted_round_robin_steers_by_memory_out_of_band(go_bin: Path) -> None:
    # enable_oob_load_report: the weights come from each backend's OpenRcaService stream
    # (the per-call trailers are still sent, and ignored by the policy in this mode).
    with three_backends() as backends:
        with go_client(go_bin, backends, "-oob", "-oob-period", "200ms") as client:
            check_steering(backends)
            check_recovery(backends)
            assert all(line["errors"] == 0 for line in client.drain("window")), client.lines
        # The weights came from the OpenRcaService streams: every backend served one.
        assert all(ORCA_METHOD in b.log.methods for b in backends)
