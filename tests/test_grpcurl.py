"""grpcurl against a calm service still shows its keys: grpcurl opens a connection of its own,
and a connection's first call carries them (calm is free, docs/design.md §5). grpcurl is
installed by ``make grpcurl`` (part of ``make test``'s Go targets) into examples/go/bin."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc  # type: ignore[import-untyped]
from memcontract.interceptors import add_reflection, server_interceptor

from .go_support import GODIR, child_env, unavailable
from .support import Rig, make_contract

GRPCURL = GODIR / "bin" / "grpcurl"
HEALTH = "grpc.health.v1.Health"


def serve(rig: Rig) -> Iterator[str]:
    """A health service with reflection behind ``rig``'s guard, on a free port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(4), interceptors=[server_interceptor(rig.guard)]
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    add_reflection(server, [HEALTH])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait(5)


@pytest.fixture
def calm_service() -> Iterator[str]:
    rig = Rig(make_contract())
    rig.step(0.30)
    assert rig.guard.snapshot.wire.quiet
    yield from serve(rig)


@pytest.fixture
def shedding_service() -> Iterator[str]:
    rig = Rig(make_contract())
    assert rig.run([0.97] * 3)[-1] == 3
    yield from serve(rig)


def grpcurl(address: str, *args: str) -> str:
    if not GRPCURL.is_file():
        unavailable("grpcurl is not installed: run `make grpcurl`")
    proc = subprocess.run(
        [str(GRPCURL), "-plaintext", "-v", address, *(args or [f"{HEALTH}/Check"])],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_grpcurl_shows_a_calm_services_keys_on_each_of_its_connections(calm_service: str) -> None:
    for _ in range(2):  # each grpcurl run is a connection of its own: its first call
        out = grpcurl(calm_service)
        trailers = out.split("Response trailers received:", 1)[1]
        assert "x-memory-usage: 30%" in trailers, out
        assert "x-memory-level: 0" in trailers and "x-memory-pressure-bin" in trailers, out


def test_grpcurl_lists_and_calls_a_service_at_level_3(shedding_service: str) -> None:
    """Server reflection is always core: grpcurl asks it for descriptors before every call, so
    shedding it at level 3 would take grpcurl and ghz away from an operator when they are needed
    most (a user's drill: `grpcurl list` failed with RESOURCE_EXHAUSTED)."""
    assert HEALTH in grpcurl(shedding_service, "list")
    trailers = grpcurl(shedding_service).split("Response trailers received:", 1)[1]
    assert "x-memory-level: 3" in trailers
