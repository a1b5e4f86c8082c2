"""``memcontract gateway`` end to end: Go client -> gateway -> Go server, on loopback.

Every process is real: the Go ``inventory`` server and ``relayclient`` client
(``examples/go/cmd``, built once per module), the gateway as ``python -m memcontract.cli
gateway`` (SIGTERM-stopped, its exit status checked), and grpcio clients where a test needs
hundreds of calls. Without Go these tests skip; with ``MEMCONTRACT_REQUIRE_GO=1`` they fail.
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

from .go_support import REPO, GoServer, build, child_env, run_lines

sys.path.insert(0, str(REPO / "examples" / "go" / "gen" / "python"))
from inventory.v1 import inventory_pb2, inventory_pb2_grpc  # type: ignore[import-not-found]

pytestmark = pytest.mark.timeout(600)

SERVICE = "/inventory.v1.InventoryService/"
PING = SERVICE + "Ping"
GATEWAY = [sys.executable, "-m", "memcontract.cli", "gateway"]
# Headers each gRPC implementation sets for its own hop, and ORCA's report, which grpcio
# (the gateway's runtime) never shows to Python code, so cannot forward.
TRANSPORT = {"content-type", "grpc-accept-encoding", "endpoint-load-metrics-bin"}


@pytest.fixture(scope="module")
def go_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go binaries (skip without Go; fail under MEMCONTRACT_REQUIRE_GO=1)."""
    return build(tmp_path_factory.mktemp("gobin"))


def inventory(go_bin: Path, *flags: str) -> GoServer:
    """The Go inventory server on a free loopback port (``with`` starts and stops it)."""
    return GoServer([str(go_bin / "inventory"), "-listen", "127.0.0.1:0", *flags])


def gateway(*upstreams: str, flags: tuple[str, ...] = ()) -> GoServer:
    """The gateway on a free loopback port in front of ``upstreams``."""
    argv = [*GATEWAY, "--listen", "127.0.0.1:0", "--reflection-timeout-s", "5", *flags]
    for u in upstreams:
        argv += ["--upstream", u]
    return GoServer(argv, start_timeout=60)


def relay(go_bin: Path, target: str, method: str, *flags: str) -> dict[str, Any]:
    """One call by the Go relayclient; what it printed."""
    argv = [str(go_bin / "relayclient"), "-target", target, "-method", method, *flags]
    (line,) = run_lines(argv, timeout=60)
    return line


def stopped(server: GoServer) -> dict[str, Any]:
    """SIGTERM the gateway, check it exits 0, return its ``stopped`` line."""
    server.stop(timeout=30)
    assert server.proc is not None and server.proc.returncode == 0, server.lines
    (line,) = server.events("stopped")
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


def calls(server: GoServer, method: str) -> list[dict[str, Any]]:
    """The upstream's ``call`` lines for ``method`` read so far (after a short settle)."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            server.next_line(max(0.01, deadline - time.monotonic()))
        except AssertionError:
            break
    return [c for c in server.events("call") if c["method"] == SERVICE + method]


ECHO = ("-md", "x-echo-a=1", "-md", "x-echo-a=2", "-md", "x-echo-b-bin=AAEC/w==")


#: Methods the gateway learns from the Go inventory's reflection: InventoryService's 5 and the
#: pressure services' 4 (OpenRcaService 1, MemoryPressureService 3); health is its own.
INVENTORY_METHODS = 5 + 4


# --- pass-through ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "list", "reserve", "exchange"])
def test_four_arities_pass_through_byte_for_byte(go_bin: Path, method: str) -> None:
    with inventory(go_bin) as up, gateway(up.address) as gw:
        direct = relay(go_bin, up.address, method, "-n", "3", *ECHO)
        via = relay(go_bin, gw.address, method, "-n", "3", *ECHO)
        assert via["code"] == "OK" and via["messages"], via
        assert comparable(via) == comparable(direct)
        assert via["header"]["x-echo-b-bin"] == ["AAEC/w=="]
        assert via["trailer"]["x-echo-a"] == ["1", "2"]
        assert via["trailer"]["x-memory-level"] == direct["trailer"]["x-memory-level"]
        assert "x-memory-pressure-bin" in via["trailer"]
        assert gw.lines[0]["methods"] == INVENTORY_METHODS  # learned from the upstream's reflection
    assert stopped(gw)["calls"] == {up.address: 1}


def test_error_status_and_trailers_pass_through(go_bin: Path) -> None:
    with inventory(go_bin) as up, gateway(up.address) as gw:
        direct = relay(go_bin, up.address, "get", "-sku", "missing", *ECHO)
        via = relay(go_bin, gw.address, "get", "-sku", "missing", *ECHO)
    assert via["code"] == "NOT_FOUND" and via["message"] == 'no item "missing"'
    assert comparable(via) == comparable(direct)


def test_unknown_arity_goes_as_raw_bidi(go_bin: Path, tmp_path: Path) -> None:
    # Reflection times out at once: nothing is known, every method is a raw bidi stream.
    with inventory(go_bin) as up, gateway(up.address, flags=("--reflection-timeout-s", "0")) as gw:
        assert gw.lines[0]["methods"] == 0
        for method in ("get", "list", "reserve", "exchange"):
            direct = relay(go_bin, up.address, method, *ECHO)
            via = relay(go_bin, gw.address, method, *ECHO)
            assert comparable(via) == comparable(direct), method


def test_max_message_sizes_are_enforced_each_way(go_bin: Path) -> None:
    # GetItem's answer carries the SKU back: about as large as the request.
    with inventory(go_bin) as up:
        with gateway(up.address, flags=("--max-request-bytes", "1000")) as gw:
            assert relay(go_bin, gw.address, "get", "-sku", "s" * 900)["code"] == "OK"
            big = relay(go_bin, gw.address, "get", "-sku", "s" * 1100)
            assert big["code"] == "RESOURCE_EXHAUSTED", big  # refused before forwarding
        assert stopped(gw)["calls"][up.address] == 1
        with gateway(up.address, flags=("--max-response-bytes", "1000")) as gw:
            assert relay(go_bin, gw.address, "get", "-sku", "s" * 900)["code"] == "OK"
            big = relay(go_bin, gw.address, "get", "-sku", "s" * 1100)
            assert big["code"] == "RESOURCE_EXHAUSTED", big  # the answer was too large
        assert stopped(gw)["calls"][up.address] == 2


def test_deadline_and_cancellation_reach_the_upstream(go_bin: Path) -> None:
    with inventory(go_bin) as up, gateway(up.address) as gw:
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


def test_upstream_killed_mid_stream(go_bin: Path) -> None:
    with inventory(go_bin) as up, gateway(up.address) as gw:
        argv = [
            str(go_bin / "relayclient"),
            "-target",
            gw.address,
            "-method",
            "list",
            "-n",
            "3",
            "-interval-ms",
            "2000",
        ]
        client = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=child_env())
        try:
            time.sleep(1.0)  # the stream is open, waiting for its first item
            assert up.proc is not None
            up.proc.kill()
            out, _ = client.communicate(timeout=30)
        finally:
            client.kill()
        assert '"code":"UNAVAILABLE"' in out, out
        # The gateway lives on: health answers, and a call fails fast while nothing listens.
        with grpc.insecure_channel(gw.address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert check.status == health_pb2.HealthCheckResponse.SERVING
        # Once an upstream listens on that port again, new calls go through.
        port = up.address.rsplit(":", 1)[1]
        with GoServer([str(go_bin / "inventory"), "-listen", f"127.0.0.1:{port}"]):
            deadline = time.monotonic() + 30
            while (result := relay(go_bin, gw.address, "get", "-timeout", "5s"))["code"] != "OK":
                assert time.monotonic() < deadline, result
                time.sleep(0.2)


def test_unreachable_upstream_fails_fast(go_bin: Path) -> None:
    with GoServer([str(go_bin / "inventory"), "-listen", "127.0.0.1:0"]) as up:
        dead = up.address  # a port that was just free, now closed again
    flags = ("--reflection-timeout-s", "0.5")
    with gateway(dead, flags=flags) as gw:
        start = time.monotonic()
        result = relay(go_bin, gw.address, "get", "-timeout", "30s")
        assert result["code"] == "UNAVAILABLE", result
        assert time.monotonic() - start < 10


# --- pressure -------------------------------------------------------------------------------


def go_contract(tmp_path: Path, pushback_ms: int) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "version: v9\nmodules:\n  - name: inventory\n    max_heap_mb: 1024\n"
        f"    core_methods: ['{PING}']\n    retry_pushback_ms: {pushback_ms}\n"
    )
    return path


def test_edge_shedding_at_level_3(go_bin: Path, tmp_path: Path) -> None:
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
    with inventory(go_bin, *flags) as up, gateway(up.address, flags=("--core-method", PING)) as gw:
        # A core call passes and reveals the level; from then on no non-core call reaches it.
        assert relay(go_bin, gw.address, "ping")["code"] == "OK"
        for method in ("get", "list", "reserve", "exchange"):
            shed = relay(go_bin, gw.address, method)
            assert shed["code"] == "RESOURCE_EXHAUSTED", shed
            assert "not forwarded" in shed["message"]
            assert 0 < int(shed["trailer"]["grpc-retry-pushback-ms"][0]) <= 60_000
            assert shed["trailer"]["x-memory-level"] == ["3"]
        assert relay(go_bin, gw.address, "ping")["code"] == "OK"
        calls(up, "Ping")
        # (its reflection is shed too: the gateway then forwards every method as a raw stream)
        service = [c["method"] for c in up.events("call") if c["method"].startswith(SERVICE)]
        assert service == [PING, PING]
    assert stopped(gw)["edge_sheds"] == 4


def test_routes_to_the_calm_upstream(go_bin: Path) -> None:
    calm_flags = ("-force-usage", "0.30", "-force-level", "0")
    hot_flags = ("-force-usage", "0.92", "-force-level", "2")
    with inventory(go_bin, *calm_flags) as calm, inventory(go_bin, *hot_flags) as hot:
        with gateway(calm.address, hot.address) as gw, grpc.insecure_channel(gw.address) as ch:
            stub = inventory_pb2_grpc.InventoryServiceStub(ch)
            for i in range(300):
                stub.GetItem(inventory_pb2.GetItemRequest(sku=f"s{i}"), timeout=10)
        counts = stopped(gw)["calls"]
    assert sum(counts.values()) == 300
    assert counts[calm.address] >= 0.8 * 300, counts
    assert counts[hot.address] >= 1, counts  # still probed, so its recovery is seen


def test_untrusted_clients_memory_headers_are_stripped(go_bin: Path) -> None:
    spoof = ("-md", "x-memory-usage=99%", "-md", "x-memory-level=3", "-md", "x-echo-a=1")
    with inventory(go_bin) as up:
        for trust, present in (("127.0.0.0/8", True), ("10.0.0.0/8", False)):
            with gateway(up.address, flags=("--trust-network", trust)) as gw:
                result = relay(go_bin, gw.address, "get", *spoof)
                response = inventory_pb2.GetItemResponse.FromString(
                    base64.b64decode(result["messages"][0])
                )
                assert response.caller.present is present, trust
                assert result["header"]["x-echo-a"] == ["1"]  # the rest is forwarded


def test_own_contract_sheds_at_level_3_and_reports_its_keys(go_bin: Path, tmp_path: Path) -> None:
    # A budget far below the interpreter's RSS: level 3 after three samples.
    contract = tmp_path / "gateway.yaml"
    contract.write_text(
        "version: gw1\nmodules:\n  - name: gateway\n    max_heap_mb: 1\n"
        f"    sample_interval_ms: 50\n    core_methods: ['{PING}']\n"
    )
    with inventory(go_bin) as up, gateway(up.address, flags=("--contract", str(contract))) as gw:
        deadline = time.monotonic() + 20
        while (result := relay(go_bin, gw.address, "get"))["code"] == "OK":
            assert time.monotonic() < deadline, result
        assert result["code"] == "RESOURCE_EXHAUSTED", result
        assert "module gateway at level 3" in result["message"]
        assert result["trailer"]["x-memory-contract"] == ["gw1"]
        ping = relay(go_bin, gw.address, "ping")
        assert ping["code"] == "OK"
        assert ping["trailer"]["x-memory-contract"] == ["gw1"]  # its keys replace the upstream's


# --- scale, drain, workers, TLS -------------------------------------------------------------


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


def test_thousand_open_streams_while_unary_calls_succeed(go_bin: Path) -> None:
    with inventory(go_bin) as up, gateway(up.address) as gw:
        asyncio.run(_open_streams(gw.address, 1000))
    assert stopped(gw)["calls"][up.address] == 1020


async def _drain(server: GoServer, address: str) -> list[int]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        request = inventory_pb2.ListItemsRequest(count=2, interval_ms=1500)
        in_flight = [stub.ListItems(request, timeout=60) for _ in range(20)]
        await asyncio.gather(*(c.initial_metadata() for c in in_flight))
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        serving = health_pb2.HealthCheckResponse
        assert (await watch.read()).status == serving.SERVING
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        assert (await watch.read()).status == serving.NOT_SERVING  # while it drains
        watch.cancel()
        return [len([m async for m in c]) for c in in_flight]


def test_sigterm_drains_in_flight_calls(go_bin: Path) -> None:
    with inventory(go_bin) as up, gateway(up.address) as gw:
        assert asyncio.run(_drain(gw, gw.address)) == [2] * 20
        assert gw.proc is not None
        assert gw.proc.wait(30) == 0
        assert gw.wait_events("stopped", 1)[0]["calls"] == {up.address: 20}


def test_two_workers_share_the_port(go_bin: Path) -> None:
    with inventory(go_bin) as up, gateway(up.address, flags=("--workers", "2")) as gw:
        listening = gw.wait_events("listening", 2, timeout=60)
        assert {line["port"] for line in listening} == {gw.lines[0]["port"]}
        for _ in range(24):  # one connection per call: the kernel spreads them
            assert relay(go_bin, gw.address, "get")["code"] == "OK"
        gw.stop(timeout=30)
        assert gw.proc is not None and gw.proc.returncode == 0
    per_worker = [line["calls"][up.address] for line in gw.events("stopped")]
    assert len(per_worker) == 2 and sum(per_worker) == 24 and min(per_worker) > 0, per_worker


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


def test_tls_end_to_end(go_bin: Path, tmp_path: Path) -> None:
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
        with inventory(go_bin, *tls) as up, gateway(up.address, flags=flags) as gw:
            assert gw.lines[0]["methods"] == INVENTORY_METHODS  # reflection over TLS too
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


# --- the command line -----------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEWAY, *args], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--listen", "127.0.0.1:0"), "at least one --upstream"),
        (("--listen", "nowhere", "--upstream", "127.0.0.1:1"), "listen: 'nowhere' is not"),
        (("--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--workers", "0"), "workers"),
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
                "--reflection-timeout-s",
                "0",
            ),
            "not a PEM pair",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_message(args: tuple[str, ...], message: str) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2, proc
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_listen_port_in_use_exits_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli(
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            "127.0.0.1:1",
            "--reflection-timeout-s",
            "0",
        )
    assert proc.returncode == 2, proc
    assert f"listen: cannot bind 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


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
        ("listen: [unclosed\n", "cfg.yaml:2: not valid YAML"),
        ("- a list\n", "cfg.yaml:1: expected a mapping of options"),
    ],
)
def test_bad_config_file_exits_2_with_one_message(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    proc = run_cli("--config", str(path))
    assert proc.returncode == 2, proc
    assert message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_config_file_with_flags_winning(go_bin: Path, tmp_path: Path) -> None:
    with inventory(go_bin) as up:
        path = tmp_path / "gw.yaml"
        path.write_text(f"listen: 127.0.0.1:1\nupstream: {up.address}\ngrace_s: 2\n")
        argv = [*GATEWAY, "--config", str(path), "--listen", "127.0.0.1:0"]
        with GoServer(argv, start_timeout=60) as gw:
            assert relay(go_bin, gw.address, "ping")["code"] == "OK"
        assert gw.proc is not None and gw.proc.returncode == 0


def test_help_documents_every_option() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    from memcontract.gateway import GatewayOptions

    repeated = {
        "upstreams": "upstream",
        "core_methods": "core-method",
        "descriptor_sets": "descriptor-set",
        "trust_networks": "trust-network",
        "trust_identities": "trust-identity",
    }
    for name in GatewayOptions.__dataclass_fields__:
        if name != "worker":
            flag = "--" + repeated.get(name, name.replace("_", "-"))
            assert f"{flag} " in proc.stdout, flag
    assert "--config FILE" in proc.stdout


def test_descriptor_set_reflection_lists_services_and_resolves_methods(tmp_path: Path) -> None:
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
    flags = ("--descriptor-set", str(path), "--reflection-timeout-s", "0")
    with (
        gateway("127.0.0.1:1", flags=flags) as gw,
        grpc.insecure_channel(gw.address) as channel,
    ):
        file = inventory_pb2.DESCRIPTOR.name
        assert file_containing(channel, "inventory.v1.InventoryService.Ping") == [file]
        assert file_containing(channel, "inventory.v1.InventoryService") == [file]
        missing = file_containing(channel, "inventory.v1.InventoryService.Nope")
        assert missing == grpc.StatusCode.NOT_FOUND
