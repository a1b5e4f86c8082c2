"""The Go gateway (``go/cmd/memcontract-gateway``) end to end, as a black box: Go client ->
gateway -> Go server, on loopback.

Every process is real: the Go ``inventory`` server and ``relayclient`` client (built once
per module), the gateway binary (SIGTERM-stopped, its exit status checked), and grpcio
clients where a test needs hundreds of calls. Without Go these tests skip; with
``MEMCONTRACT_REQUIRE_GO=1`` they fail. The long fault drills are in test_gateway_drills.py
(``make drills``).
"""

from __future__ import annotations

import asyncio
import base64
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from .gateway_support import build_gateway
from .go_support import GODIR, REPO, GoServer, build, run_lines

sys.path.insert(0, str(GODIR / "gen" / "python"))
from inventory.v1 import inventory_pb2, inventory_pb2_grpc  # type: ignore[import-not-found]

pytestmark = pytest.mark.timeout(600)

SERVICE = "/inventory.v1.InventoryService/"
PING = SERVICE + "Ping"
# Headers each gRPC implementation sets for its own hop, and the upstream's ORCA report,
# which the gateway never passes on (a client balancing over gateways must not weigh one by
# whichever upstream answered).
TRANSPORT = {"content-type", "grpc-accept-encoding", "endpoint-load-metrics-bin"}


@pytest.fixture(scope="module")
def go_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go example binaries (skip without Go; fail under MEMCONTRACT_REQUIRE_GO=1)."""
    return build(tmp_path_factory.mktemp("gobin"))


@pytest.fixture(scope="module")
def gw_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gateway binary."""
    return build_gateway(tmp_path_factory.mktemp("gwbin"))


def inventory(go_bin: Path, *flags: str, listen: str = "127.0.0.1:0") -> GoServer:
    """The Go inventory server on a free loopback port (``with`` starts and stops it)."""
    return GoServer([str(go_bin / "inventory"), "-listen", listen, *flags])


def gateway(gw_bin: Path, *upstreams: str, flags: tuple[str, ...] = ()) -> GoServer:
    """The gateway on a free loopback port in front of ``upstreams``."""
    argv = [str(gw_bin), "--listen", "127.0.0.1:0", *flags]
    for u in upstreams:
        argv += ["--upstream", u]
    return GoServer(argv, start_timeout=60)


def relay(go_bin: Path, target: str, method: str, *flags: str) -> dict[str, Any]:
    """One call by the Go relayclient; what it printed."""
    argv = [str(go_bin / "relayclient"), "-target", target, "-method", method, *flags]
    (line,) = run_lines(argv, timeout=60)
    return line


def stopped(server: GoServer) -> dict[str, Any]:
    """SIGTERM the gateway, check it exits 0, return its ``stopped`` line (the last one)."""
    server.stop(timeout=30)
    assert server.proc is not None and server.proc.returncode == 0, server.lines
    (line,) = server.events("stopped")
    assert server.lines[-1] is line
    return line


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """What must be the same byte for byte direct and through the gateway: all but the
    transport headers and what changes per call (sample times, milliseconds left)."""

    def keep(md: dict[str, list[str]] | None) -> dict[str, list[str]]:
        varying = {"x-memory-pressure-bin", "x-memory-usage", "x-echo-deadline-ms"}
        return {k: v for k, v in (md or {}).items() if k not in TRANSPORT | varying}

    return {**result, "header": keep(result["header"]), "trailer": keep(result["trailer"])}


def wait_calls(server: GoServer, method: str, count: int) -> list[dict[str, Any]]:
    """Read the upstream's lines until it logged ``count`` calls of ``method`` (bounded)."""
    deadline = time.monotonic() + 15
    while (
        len(found := [c for c in server.events("call") if c["method"] == SERVICE + method]) < count
    ):
        server.next_line(max(0.01, deadline - time.monotonic()))
    return found


def health(address: str) -> int:
    """The gateway's grpc.health.v1 ``Check`` status."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def until(what: str, cond: Any, timeout: float = 15.0) -> None:
    """Poll ``cond()`` every 20 ms until it is true (fails after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ECHO = ("-md", "x-echo-a=1", "-md", "x-echo-a=2", "-md", "x-echo-b-bin=AAEC/w==")


# --- pass-through ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "list", "reserve", "exchange"])
def test_four_arities_pass_through_byte_for_byte(go_bin: Path, gw_bin: Path, method: str) -> None:
    with inventory(go_bin) as up, gateway(gw_bin, up.address) as gw:
        direct = relay(go_bin, up.address, method, "-n", "3", *ECHO)
        via = relay(go_bin, gw.address, method, "-n", "3", *ECHO)
        assert via["code"] == "OK" and via["messages"], via
        assert comparable(via) == comparable(direct)
        assert via["header"]["x-echo-b-bin"] == ["AAEC/w=="]
        assert via["trailer"]["x-echo-a"] == ["1", "2"]
        assert via["trailer"]["x-memory-level"] == direct["trailer"]["x-memory-level"]
        assert "x-memory-pressure-bin" in via["trailer"]
        assert "endpoint-load-metrics-bin" in direct["trailer"]
        assert "endpoint-load-metrics-bin" not in via["trailer"]
    assert stopped(gw)["calls"] == {up.address: 1}


def test_error_status_and_trailers_pass_through(go_bin: Path, gw_bin: Path) -> None:
    with inventory(go_bin) as up, gateway(gw_bin, up.address) as gw:
        direct = relay(go_bin, up.address, "get", "-sku", "missing", *ECHO)
        via = relay(go_bin, gw.address, "get", "-sku", "missing", *ECHO)
    assert via["code"] == "NOT_FOUND" and via["message"] == 'no item "missing"'
    assert comparable(via) == comparable(direct)


def test_large_request_metadata_passes(go_bin: Path, gw_bin: Path) -> None:
    # Go servers accept 1 MiB of headers by default; so does the gateway (--max-metadata-bytes).
    big = "v" * (48 * 1024)
    with inventory(go_bin) as up, gateway(gw_bin, up.address) as gw:
        via = relay(go_bin, gw.address, "get", "-md", f"x-echo-big={big}")
        assert via["code"] == "OK", via["message"]
        assert via["header"]["x-echo-big"] == [big]
    with (
        inventory(go_bin) as up,
        gateway(gw_bin, up.address, flags=("--max-metadata-bytes", "8192")) as gw,
    ):
        refused = relay(go_bin, gw.address, "get", "-md", f"x-echo-big={big}")
        assert refused["code"] != "OK"
        assert big not in refused["message"]  # the client's own headers are not echoed back


def test_max_message_sizes_are_enforced_each_way(go_bin: Path, gw_bin: Path) -> None:
    # GetItem's answer carries the SKU back: about as large as the request.
    with inventory(go_bin) as up:
        with gateway(gw_bin, up.address, flags=("--max-request-bytes", "1000")) as gw:
            assert relay(go_bin, gw.address, "get", "-sku", "s" * 900)["code"] == "OK"
            big = relay(go_bin, gw.address, "get", "-sku", "s" * 1100)
            assert big["code"] == "RESOURCE_EXHAUSTED", big  # refused before forwarding
        with gateway(gw_bin, up.address, flags=("--max-response-bytes", "1000")) as gw:
            assert relay(go_bin, gw.address, "get", "-sku", "s" * 900)["code"] == "OK"
            big = relay(go_bin, gw.address, "get", "-sku", "s" * 1100)
            assert big["code"] == "RESOURCE_EXHAUSTED", big  # the answer was too large
    # The too-large request never reached the upstream's handler: its call was cancelled.
    assert [c["code"] for c in up.events("call")][:2] == ["OK", "CANCELLED"]


def test_deadline_and_cancellation_reach_the_upstream(go_bin: Path, gw_bin: Path) -> None:
    with inventory(go_bin) as up, gateway(gw_bin, up.address) as gw:
        via = relay(go_bin, gw.address, "get", "-timeout", "3s")
        left = int(via["header"]["x-echo-deadline-ms"][0])
        assert 1000 < left <= 3000, left
        # A server stream pausing 3 s per item, cancelled by the client after 0.5 s.
        start = time.monotonic()
        cancelled = relay(
            go_bin, gw.address, "list", "-n", "3", "-interval-ms", "3000", "-cancel-after", "500ms"
        )
        assert cancelled["code"] == "CANCELLED"
        (seen,) = wait_calls(up, "ListItems", 1)
        assert seen["code"] == "CANCELLED"
        assert time.monotonic() - start < 2.9  # ended by the cancel, not by the pause
        # The deadline ends the upstream's call too.
        expired = relay(
            go_bin, gw.address, "list", "-n", "3", "-interval-ms", "3000", "-timeout", "500ms"
        )
        assert expired["code"] == "DEADLINE_EXCEEDED"
        seen = wait_calls(up, "ListItems", 2)[1]
        assert seen["code"] in ("DEADLINE_EXCEEDED", "CANCELLED"), seen


def test_upstream_killed_mid_stream(go_bin: Path, gw_bin: Path) -> None:
    with (
        inventory(go_bin) as up,
        gateway(gw_bin, up.address) as gw,
        grpc.insecure_channel(gw.address) as channel,
    ):
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        stream = stub.ListItems(
            inventory_pb2.ListItemsRequest(count=3, interval_ms=2000), timeout=30
        )
        stream.initial_metadata()  # the stream is open upstream (headers come before items)
        assert up.proc is not None
        up.proc.kill()
        with pytest.raises(grpc.RpcError) as failed:
            list(stream)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert up.address not in (failed.value.details() or "")  # errors name no upstream
        # No upstream serves: health says so, and a call fails fast naming no upstream.
        until("NOT_SERVING", lambda: health(gw.address) == NOT_SERVING)
        refused = relay(go_bin, gw.address, "get", "-timeout", "5s")
        assert refused["code"] == "UNAVAILABLE" and "127.0.0.1" not in refused["message"], refused
        # Once an upstream listens on that port again, new calls go through.
        port = up.address.rsplit(":", 1)[1]
        with inventory(go_bin, listen=f"127.0.0.1:{port}"):
            until("SERVING again", lambda: health(gw.address) == SERVING)
            assert relay(go_bin, gw.address, "get")["code"] == "OK"
        gw.stop(timeout=30)
    states = [(line["upstream"], line["state"]) for line in gw.events("upstream")]
    assert states.count((up.address, "READY")) == 2, states  # lost, then back
    assert any(s in ("IDLE", "TRANSIENT_FAILURE") for _, s in states), states


def test_unreachable_upstream_fails_fast(go_bin: Path, gw_bin: Path) -> None:
    with inventory(go_bin) as up:
        dead = up.address  # a port that was just free, now closed again
    with gateway(gw_bin, dead) as gw:
        start = time.monotonic()
        result = relay(go_bin, gw.address, "get", "-timeout", "30s")
        assert result["code"] == "UNAVAILABLE", result
        assert dead not in result["message"] and "127.0.0.1" not in result["message"], result
        assert time.monotonic() - start < 10
        assert health(gw.address) == NOT_SERVING
    with gateway(gw_bin, dead, flags=("--expose-upstream-addresses",)) as gw:
        result = relay(go_bin, gw.address, "get", "-timeout", "30s")
        assert dead in result["message"], result


# --- pressure -------------------------------------------------------------------------------


def go_contract(tmp_path: Path, pushback_ms: int) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: v9\nmodules:\n  - name: inventory\n    max_heap_mb: 1024\n"
        f"    core_methods: ['{PING}']\n    retry_pushback_ms: {pushback_ms}\n"
    )
    return path


def test_edge_shedding_at_level_3(go_bin: Path, gw_bin: Path, tmp_path: Path) -> None:
    contract = str(go_contract(tmp_path, pushback_ms=60_000))
    flags = (
        "-contract",
        contract,
        "-module",
        "inventory",
        "-force-usage",
        "0.97",
        "-force-level",
        "3",
    )
    with (
        inventory(go_bin, *flags) as up,
        gateway(gw_bin, up.address, flags=("--core-method", PING)) as gw,
    ):
        # A core call passes and reveals the level; from then on no non-core call reaches it.
        assert relay(go_bin, gw.address, "ping")["code"] == "OK"
        for method in ("get", "list", "reserve", "exchange"):
            shed = relay(go_bin, gw.address, method)
            assert shed["code"] == "RESOURCE_EXHAUSTED", shed
            assert "not forwarded" in shed["message"] and up.address not in shed["message"]
            # the upstream's 60 s pushback, capped by max_fail_fast_ms (30 s by default)
            assert 0 < int(shed["trailer"]["grpc-retry-pushback-ms"][0]) <= 30_000
            assert shed["trailer"]["x-memory-level"] == ["3"]
        assert relay(go_bin, gw.address, "ping")["code"] == "OK"
        wait_calls(up, "Ping", 2)
        service = [c["method"] for c in up.events("call") if c["method"].startswith(SERVICE)]
        assert service == [PING, PING]
    line = stopped(gw)
    assert line["edge_sheds"] == 4
    levels = [(e["upstream"], e["level"]) for e in gw.events("level")]
    assert levels == [(up.address, 3)], levels


def test_routes_to_the_calm_upstream(go_bin: Path, gw_bin: Path) -> None:
    calm_flags = ("-force-usage", "0.30", "-force-level", "0")
    hot_flags = ("-force-usage", "0.92", "-force-level", "2")
    with inventory(go_bin, *calm_flags) as calm, inventory(go_bin, *hot_flags) as hot:
        with (
            gateway(gw_bin, calm.address, hot.address) as gw,
            grpc.insecure_channel(gw.address) as ch,
        ):
            stub = inventory_pb2_grpc.InventoryServiceStub(ch)
            for i in range(300):
                stub.GetItem(inventory_pb2.GetItemRequest(sku=f"s{i}"), timeout=10)
        counts = stopped(gw)["calls"]
    assert sum(counts.values()) == 300
    assert counts[calm.address] >= 0.8 * 300, counts
    assert counts[hot.address] >= 1, counts  # still probed, so its recovery is seen


def test_level_3_upstream_gets_no_call_while_another_can(go_bin: Path, gw_bin: Path) -> None:
    hot_flags = ("-force-usage", "0.97", "-force-level", "3")
    with inventory(go_bin) as calm, inventory(go_bin, *hot_flags) as hot:
        with (
            gateway(gw_bin, calm.address, hot.address) as gw,
            grpc.insecure_channel(gw.address) as ch,
        ):
            stub = inventory_pb2_grpc.InventoryServiceStub(ch)
            refused = 0
            for i in range(300):
                try:
                    stub.GetItem(inventory_pb2.GetItemRequest(sku=f"s{i}"), timeout=10)
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
                    refused += 1
        line = stopped(gw)
    # At most the call that revealed hot's level (shed by hot itself, not retried: it reached
    # an upstream); none refused by the gateway, which picks the calm upstream instead.
    assert refused <= 1 and line["edge_sheds"] == 0, (refused, line)
    assert line["calls"][calm.address] >= 299, line


def test_untrusted_clients_memory_headers_are_stripped(go_bin: Path, gw_bin: Path) -> None:
    spoof = ("-md", "x-memory-usage=99%", "-md", "x-memory-level=3", "-md", "x-echo-a=1")
    with inventory(go_bin) as up:
        for trust, present in (("127.0.0.0/8", True), ("10.0.0.0/8", False)):
            with gateway(gw_bin, up.address, flags=("--trust-network", trust)) as gw:
                result = relay(go_bin, gw.address, "get", *spoof)
                response = inventory_pb2.GetItemResponse.FromString(
                    base64.b64decode(result["messages"][0])
                )
                assert response.caller.present is present, trust
                assert result["header"]["x-echo-a"] == ["1"]  # the rest is forwarded
            stripped = stopped(gw)["stripped"]["untrusted_memory_keys"]
            assert stripped == (0 if present else 2), stripped


def test_own_contract_sheds_at_level_3_and_reports_its_keys(
    go_bin: Path, gw_bin: Path, tmp_path: Path
) -> None:
    # A budget far below the process's RSS: level 3 after a few samples.
    contract = tmp_path / "gateway.yaml"
    contract.write_text(
        "version: gw1\nmodules:\n  - name: gateway\n    max_heap_mb: 1\n"
        f"    sample_interval_ms: 50\n    core_methods: ['{PING}']\n"
    )
    with (
        inventory(go_bin) as up,
        gateway(gw_bin, up.address, flags=("--contract", str(contract))) as gw,
    ):
        deadline = time.monotonic() + 20
        while (result := relay(go_bin, gw.address, "get"))["code"] == "OK":
            assert time.monotonic() < deadline, result
        assert result["code"] == "RESOURCE_EXHAUSTED", result
        assert 'module "gateway" is at memory level 3' in result["message"]
        assert result["trailer"]["x-memory-contract"] == ["gw1"]
        ping = relay(go_bin, gw.address, "ping")
        assert ping["code"] == "OK"
        assert ping["trailer"]["x-memory-contract"] == ["gw1"]  # its keys replace the upstream's
        assert ping["trailer"]["x-memory-level"] == ["3"]
        assert len(ping["trailer"]["endpoint-load-metrics-bin"]) == 1  # its report, one
    assert any(e["level"] == 3 for e in gw.events("own_level"))


# --- scale, drain, TLS ----------------------------------------------------------------------


async def _open_streams(address: str, streams: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        request = inventory_pb2.ListItemsRequest(count=1, interval_ms=60_000)
        opened = [stub.ListItems(request, timeout=120) for _ in range(streams)]
        await asyncio.wait_for(asyncio.gather(*(c.initial_metadata() for c in opened)), 90)
        for i in range(20):
            await stub.GetItem(inventory_pb2.GetItemRequest(sku=f"u{i}"), timeout=10)
        assert all(not c.done() for c in opened)
        for c in opened:
            c.cancel()


def test_thousand_open_streams_while_unary_calls_succeed(go_bin: Path, gw_bin: Path) -> None:
    with inventory(go_bin) as up, gateway(gw_bin, up.address) as gw:
        asyncio.run(_open_streams(gw.address, 1000))
    assert stopped(gw)["calls"][up.address] == 1020


async def _drain(server: GoServer, address: str) -> list[int]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        request = inventory_pb2.ListItemsRequest(count=2, interval_ms=1500)
        in_flight = [stub.ListItems(request, timeout=60) for _ in range(20)]
        await asyncio.gather(*(c.initial_metadata() for c in in_flight))
        health_stub = health_pb2_grpc.HealthStub(channel)
        watch = health_stub.Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        assert (await watch.read()).status == NOT_SERVING  # from the first moment of the drain
        check = await health_stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert check.status == NOT_SERVING  # Check too, not only Watch
        # the watch is left open: the gateway must not wait for it beyond --grace-s
        return [len([m async for m in c]) for c in in_flight]


def test_sigterm_drains_in_flight_calls(go_bin: Path, gw_bin: Path) -> None:
    flags = ("--grace-s", "8")
    with inventory(go_bin) as up, gateway(gw_bin, up.address, flags=flags) as gw:
        until("serving", lambda: health(gw.address) == SERVING)
        start = time.monotonic()
        assert asyncio.run(_drain(gw, gw.address)) == [2] * 20
        assert gw.proc is not None
        assert gw.proc.wait(30) == 0
        assert time.monotonic() - start < 12
        (line,) = gw.wait_events("stopped", 1)
        assert line["calls"] == {up.address: 20}
        assert gw.lines[-1] is line
        assert not any(line.get("event") == "call" for line in gw.lines)  # no per-call noise
        assert "Traceback" not in "".join(gw._stderr) and "panic" not in "".join(gw._stderr)


def test_ignored_python_options_are_accepted_with_a_warning(go_bin: Path, gw_bin: Path) -> None:
    flags = ("--workers", "2", "--reflection-timeout-s", "0")
    with inventory(go_bin) as up, gateway(gw_bin, up.address, flags=flags) as gw:
        assert relay(go_bin, gw.address, "get")["code"] == "OK"
        gw.stop(timeout=30)
    warnings = "".join(gw._stderr)
    assert "--workers: ignored" in warnings and "--reflection-timeout-s: ignored" in warnings


@contextmanager
def certificates(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A CA and a localhost server certificate it signed, made now with openssl."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    )
    yield {name: str(tmp_path / name) for name in ("ca.pem", "server.pem", "server.key")}


def test_tls_end_to_end(go_bin: Path, gw_bin: Path, tmp_path: Path) -> None:
    # TLS both ways: client -> gateway and gateway -> upstream (the gateway checks the
    # upstream's certificate against the CA, under the name given).
    with certificates(tmp_path) as pem:
        tls = ("-tls-cert", pem["server.pem"], "-tls-key", pem["server.key"])
        flags = (
            "--tls-cert",
            pem["server.pem"],
            "--tls-key",
            pem["server.key"],
            "--upstream-ca",
            pem["ca.pem"],
            "--upstream-server-name",
            "localhost",
        )
        with inventory(go_bin, *tls) as up, gateway(gw_bin, up.address, flags=flags) as gw:
            for method in ("get", "exchange"):
                via = relay(
                    go_bin,
                    gw.address,
                    method,
                    "-tls-ca",
                    pem["ca.pem"],
                    "-server-name",
                    "localhost",
                    *ECHO,
                )
                assert via["code"] == "OK" and via["header"]["x-echo-a"] == ["1", "2"], via
            plaintext = relay(go_bin, gw.address, "get", "-timeout", "3s")
            assert plaintext["code"] == "UNAVAILABLE"
        # An upstream whose certificate does not carry the name: no call goes to it.
        wrong = (*flags[:-1], "elsewhere")
        with inventory(go_bin, *tls) as up, gateway(gw_bin, up.address, flags=wrong) as gw:
            refused = relay(
                go_bin, gw.address, "get", "-tls-ca", pem["ca.pem"], "-server-name", "localhost"
            )
            assert refused["code"] == "UNAVAILABLE", refused


# --- the command line -----------------------------------------------------------------------


def run_cli(gw_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(gw_bin), *args], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--listen", "127.0.0.1:0"), "at least one --upstream"),
        (("--listen", "nowhere", "--upstream", "127.0.0.1:1"), "listen: 'nowhere' is not"),
        (
            ("--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--tls-cert", "x.pem"),
            "tls_cert and tls_key go together",
        ),
        (("--upstream", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--bogus"), "unrecognized"),
        (("--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--workers", "two"), "invalid"),
        (
            (
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:1",
                "--descriptor-set",
                "README.md",
            ),
            "descriptor_sets: README.md: not a FileDescriptorSet",
        ),
        (
            (
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:1",
                "--tls-cert",
                "README.md",
                "--tls-key",
                "README.md",
            ),
            "not a PEM pair",
        ),
        (
            ("--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--contract", "README.md"),
            "contract: README.md",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_message(
    gw_bin: Path, args: tuple[str, ...], message: str
) -> None:
    proc = run_cli(gw_bin, *args)
    assert proc.returncode == 2, proc
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == ""


def test_listen_port_in_use_exits_2(gw_bin: Path) -> None:
    # Go's net.Listen sets no SO_REUSEPORT: a second gateway cannot share a port.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli(gw_bin, "--listen", f"127.0.0.1:{port}", "--upstream", "127.0.0.1:1")
    assert proc.returncode == 2, proc
    assert f"listen: cannot bind 127.0.0.1:{port}: address already in use" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_second_gateway_on_the_same_port_exits_2(go_bin: Path, gw_bin: Path) -> None:
    with inventory(go_bin) as up, gateway(gw_bin, up.address) as gw:
        proc = run_cli(gw_bin, "--listen", gw.address, "--upstream", up.address)
        assert proc.returncode == 2, proc
        assert "address already in use" in proc.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "listen: 127.0.0.1:0\nupstreams: [127.0.0.1:1]\nworkerz: 2\n",
            "cfg.yaml:3: workerz: unknown key (did you mean 'workers'?)",
        ),
        (
            "listen: 127.0.0.1:0\nupstreams: [127.0.0.1:1]\nworkers: lots\n",
            "cfg.yaml:3: workers: expected int, got 'lots'",
        ),
        ("listen: [unclosed\n", "cfg.yaml:1: not valid YAML"),
        ("- a list\n", "cfg.yaml:1: expected a mapping of options"),
    ],
)
def test_bad_config_file_exits_2_with_one_message(
    gw_bin: Path, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    proc = run_cli(gw_bin, "--config", str(path))
    assert proc.returncode == 2, proc
    assert message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_config_file_with_flags_winning(go_bin: Path, gw_bin: Path, tmp_path: Path) -> None:
    with inventory(go_bin) as up:
        path = tmp_path / "gw.yaml"
        path.write_text(
            f"listen: 127.0.0.1:1\nupstream: {up.address}\ngrace_s: 2\nworkers: 2\n"
            "reflection_timeout_s: 3\n"
        )
        argv = [str(gw_bin), "--config", str(path), "--listen", "127.0.0.1:0"]
        with GoServer(argv, start_timeout=60) as gw:
            assert relay(go_bin, gw.address, "ping")["code"] == "OK"
        assert gw.proc is not None and gw.proc.returncode == 0
    assert "gw.yaml:4: workers: ignored" in "".join(gw._stderr)


#: The options of the Python gateway, every one still accepted (workers and
#: reflection_timeout_s with a warning), and the Go gateway's own.
OPTIONS = (
    "listen",
    "upstream",
    "contract",
    "module",
    "core-method",
    "descriptor-set",
    "workers",
    "grace-s",
    "max-request-bytes",
    "max-response-bytes",
    "reflection-timeout-s",
    "trust-network",
    "trust-identity",
    "tls-cert",
    "tls-key",
    "tls-client-ca",
    "upstream-tls",
    "upstream-ca",
    "upstream-cert",
    "upstream-key",
    "upstream-server-name",
    "drain-delay-s",
    "max-metadata-bytes",
    "expose-upstream-addresses",
    "metrics-port",
)


def test_help_documents_every_option(gw_bin: Path) -> None:
    proc = run_cli(gw_bin, "--help")
    assert proc.returncode == 0
    for name in OPTIONS:
        assert f"--{name} " in proc.stdout, name
    assert "--config FILE" in proc.stdout


def test_descriptor_set_reflection_lists_services_and_resolves_methods(
    gw_bin: Path, tmp_path: Path
) -> None:
    # with --descriptor-set the gateway answers reflection itself; a method's full name (what
    # ghz asks before calling) resolves too, and the upstream is never needed
    from google.protobuf import descriptor_pb2

    from .support import file_containing

    fds = descriptor_pb2.FileDescriptorSet()
    pending = [inventory_pb2.DESCRIPTOR]
    while pending:
        file = pending.pop()
        if all(f.name != file.name for f in fds.file):
            file.CopyToProto(fds.file.add())
            pending.extend(file.dependencies)
    path = tmp_path / "inventory.pb"
    path.write_bytes(fds.SerializeToString())
    flags = ("--descriptor-set", str(path))
    with (
        gateway(gw_bin, "127.0.0.1:1", flags=flags) as gw,
        grpc.insecure_channel(gw.address) as channel,
    ):
        assert gw.lines[0]["methods"] == 5
        file = inventory_pb2.DESCRIPTOR.name
        assert file_containing(channel, "inventory.v1.InventoryService.Ping") == [file]
        assert file_containing(channel, "inventory.v1.InventoryService") == [file]
        missing = file_containing(channel, "inventory.v1.InventoryService.Nope")
        assert missing == grpc.StatusCode.NOT_FOUND


def test_python_gateway_command_points_to_the_go_one() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "memcontract.cli", "gateway", "--listen", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "go install github.com/memcontract/memcontract/go/cmd/memcontract-gateway@latest" in line
    assert "make gateway" in line
