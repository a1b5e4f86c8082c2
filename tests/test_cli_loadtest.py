"""``memcontract loadtest`` from the command line: outputs, merge, and every bad argument."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import psutil
import pytest

from memcontract.cli import main
from memcontract.loadtest.metrics import decode
from memcontract.loadtest.report import jsonfmt

from .loadtest_server import ROOT, serving

PROTO = ROOT / "examples/python/protos/inventory_demo/v1/inventory_demo.proto"
SERVICE = "/inventory_demo.v1.InventoryDemo"


@pytest.fixture(scope="module")
def inventory() -> Iterator[str]:
    """The example inventory service (grpc.aio), in its own process."""
    with serving("examples.python.server", "--port", "0", "--aio") as address:
        yield address


def _proto_args(method: str, data: str = "{}") -> list[str]:
    return ["--method", f"{SERVICE}/{method}", "--proto", str(PROTO), "--data", data]


def test_out_writes_json_csv_html_and_merge_adds_exactly(
    inventory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, merged = (str(tmp_path / n) for n in ("a", "b", "merged"))
    args = ["loadtest", inventory, *_proto_args("GetStock", '{"sku": "sku-0001"}'), "--no-progress"]
    assert main([*args, "--rps", "50", "--duration", "2s", "--out", a]) == 0
    assert main([*args, "--concurrency", "2", "--total", "70", "--workers", "2", "--out", b]) == 0
    out = capsys.readouterr().out
    assert "p99.9" in out and f"wrote {a}.json {a}.csv {a}.html" in out
    for name in (a, b):
        data = json.loads(Path(f"{name}.json").read_text())
        jsonschema.validate(data, jsonfmt.SCHEMA)
        assert Path(f"{name}.csv").read_text().count("\n") >= 2  # header and a second
        assert "<svg" in Path(f"{name}.html").read_text()
    ra, rb = jsonfmt.read(f"{a}.json"), jsonfmt.read(f"{b}.json")
    assert ra.sent == 100 and rb.sent == 70
    assert ra.timeline[0].usage_percent is not None and ra.timeline[0].level == 0

    assert main(["loadtest", "merge", f"{a}.json", f"{b}.json", "--out", merged]) == 0
    rm = jsonfmt.read(f"{merged}.json")
    jsonschema.validate(json.loads(Path(f"{merged}.json").read_text()), jsonfmt.SCHEMA)
    assert rm.sent == rm.answered == 170 and rm.count("OK") == 170
    assert rm.sources == (f"{a}.json", f"{b}.json")
    (ok,) = rm.statuses
    both = decode(ra.statuses[0].histogram)
    both.add(decode(rb.statuses[0].histogram))
    assert list(decode(ok.histogram).counts) == list(both.counts)


def test_server_streaming_method_from_the_proto(inventory: str) -> None:
    args = _proto_args("Report", '{"rows": 200, "chunk_rows": 50}')
    assert main(["loadtest", inventory, *args, "--concurrency", "1", "--total", "3"]) == 0


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], *words: str) -> None:
    assert main(["loadtest", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--rps", "10"], ["--method"]),
        (["--method", "nope", "--rps", "10"], ["--method", "/package.Service/Method"]),
        (["--method", "/a.B/C", "--rps", "0"], ["--rps", "> 0"]),
        (["--method", "/a.B/C", "--rps", "-5"], ["--rps", "> 0"]),
        (["--method", "/a.B/C", "--rps", "inf"], ["--rps", "finite"]),
        (["--method", "/a.B/C", "--rps", "nan"], ["--rps", "finite"]),
        (["--method", "/a.B/C", "--schedule", "const:inf"], ["--schedule", "finite"]),
        (["--method", "/a.B/C", "--schedule", "ramp:1->"], ["--schedule"]),
        (["--method", "/a.B/C", "--schedule", "const:0"], ["--schedule", "> 0"]),
        (["--method", "/a.B/C"], ["--rps", "--concurrency"]),
        (["--method", "/a.B/C", "--rps", "5", "--concurrency", "2"], ["--rps", "--concurrency"]),
        (["--method", "/a.B/C", "--concurrency", "0"], ["--concurrency"]),
        (["--method", "/a.B/C", "--concurrency", "2", "--duration", "soon"], ["--duration"]),
        (["--method", "/a.B/C", "--concurrency", "2", "--timeout", "0s"], ["--timeout"]),
        (["--method", "/a.B/C", "--concurrency", "2", "--workers", "0"], ["--workers"]),
        (["--method", "/a.B/C", "--concurrency", "2", "--metadata", "novalue"], ["--metadata"]),
        (["--method", "/a.B/C", "--concurrency", "2", "--metadata", "Bad Key=1"], ["--metadata"]),
        (
            ["--method", "/a.B/C", "--concurrency", "2", "--data-file", "/nonexistent/x"],
            ["--data-file", "/nonexistent/x"],
        ),
        (["--method", "/a.B/C", "--concurrency", "2", "--data", "{}"], ["--proto"]),
        (
            ["--method", "/a.B/C", "--concurrency", "2", "--proto", "/nonexistent.proto"],
            ["--proto", "/nonexistent.proto"],
        ),
        (["--method", "/a.B/C", "--concurrency", "2", "--cert", "c.pem"], ["--cert", "--key"]),
        (
            ["--method", "/a.B/C", "--concurrency", "2", "--insecure", "--cacert", "ca.pem"],
            ["--insecure"],
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    _fails(["127.0.0.1:1", *argv], capsys, *words)


def test_bad_payload_and_methods_against_the_proto(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["127.0.0.1:1", "--concurrency", "1", "--proto", str(PROTO)]
    _fails([*base, "--method", f"{SERVICE}/Nope"], capsys, "no such method", "Nope")
    _fails(
        [*base, "--method", f"{SERVICE}/Ping", "--data", "{not json"],
        capsys,
        "--data",
        "PingRequest",
    )
    _fails(
        [*base, "--method", f"{SERVICE}/GetStock", "--data", '{"nope": 1}'],
        capsys,
        "--data",
        "nope",
    )
    broken = tmp_path / "broken.proto"
    broken.write_text('syntax = "proto3";\nmessage {')
    _fails(
        ["127.0.0.1:1", "--concurrency", "1", "--proto", str(broken), "--method", "/a.B/C"],
        capsys,
        "broken.proto",
    )


def test_unknown_method_on_the_server(inventory: str, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(
        [inventory, "--method", f"{SERVICE}/Missing", "--concurrency", "1"],
        capsys,
        "UNIMPLEMENTED",
        "Missing",
    )


def test_merge_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notjson = tmp_path / "n.json"
    notjson.write_text("{")
    other = tmp_path / "o.json"
    other.write_text('{"a": 1}')
    _fails(["merge"], capsys, "report files")
    _fails(["merge", str(tmp_path / "missing.json")], capsys, "missing.json")
    _fails(["merge", str(notjson)], capsys, "not JSON")
    _fails(["merge", str(other)], capsys, "not a loadtest report")


def test_unreachable_target_is_a_clear_error_not_a_hang(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    argv = [
        "loadtest",
        "127.0.0.1:1",
        "--method",
        "/a.B/C",
        "--rps",
        "10",
        "--connect-timeout",
        "1s",
    ]
    assert main(argv) == 1
    assert time.monotonic() - started < 15
    err = capsys.readouterr().err
    assert "cannot connect to 127.0.0.1:1" in err and "Traceback" not in err


def _wait_connected(pid: int, port: int, *, count: int, within: float = 60) -> None:
    """Until the process and its children hold ``count`` connections to ``port``."""
    deadline = time.monotonic() + within
    root = psutil.Process(pid)
    while time.monotonic() < deadline:
        held = 0
        for proc in [root, *root.children()]:
            with contextlib.suppress(psutil.Error):
                connections = getattr(proc, "net_connections", None) or proc.connections  # psutil<6
                held += sum(
                    1
                    for c in connections("tcp")
                    if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
                )
        if held >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"no {count} connections to port {port} within {within} s")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_ends_the_run_with_a_report(inventory: str, tmp_path: Path, workers: str) -> None:
    out = tmp_path / "cut"
    argv = ["loadtest", inventory, "--method", f"{SERVICE}/Ping", "--rps", "20"]
    argv += ["--duration", "120s", "--workers", workers, "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "memcontract.cli", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_connected(proc.pid, int(inventory.rsplit(":", 1)[1]), count=int(workers))
    time.sleep(2)  # measuring
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "answered" in stdout
    report = jsonfmt.read(f"{out}.json")
    assert 0 < report.sent == report.answered < 20 * 60


def test_merge_of_two_methods_keeps_each_stream(
    inventory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ping, stock, merged = (str(tmp_path / n) for n in ("ping", "stock", "merged"))
    base = ["loadtest", inventory, "--no-progress"]
    ping_args = [*_proto_args("Ping"), "--label", "core", "--out", ping]
    assert main([*base, *ping_args, "--schedule", "step:20,40:1s"]) == 0
    stock_args = [*_proto_args("GetStock", '{"sku": "sku-0001"}'), "--out", stock]
    assert main([*base, *stock_args, "--rps", "30", "--duration", "1s"]) == 0
    assert main(["loadtest", "merge", f"{ping}.json", f"{stock}.json", "--out", merged]) == 0
    out = capsys.readouterr().out
    assert "2 streams" in out and "core OK" in out and "GetStock OK" in out
    report = jsonfmt.read(f"{merged}.json")
    assert [(s.label, s.sent) for s in report.streams] == [("core", 60), ("GetStock", 30)]
    assert report.sent == 90 and report.count("OK") == 90
    kinds = sorted((e.kind, e.stream) for e in report.events if e.kind in ("phase", "stop"))
    assert kinds == [("phase", "core"), ("stop", "GetStock"), ("stop", "core")]
    page = Path(f"{merged}.html").read_text()
    assert "<title>memcontract loadtest: core, GetStock on" in page


def test_no_arguments_and_bad_values_first(capsys: pytest.CaptureFixture[str]) -> None:
    # With no arguments: the target and --method, not merge's report files.
    assert main(["loadtest"]) == 2
    err = capsys.readouterr().err
    assert "TARGET" in err and "--method" in err and "report" not in err
    # A wrong value is said before a missing mode or method.
    _fails(["127.0.0.1:1", "--method", "/a.B/C", "--duration", "xx"], capsys, "--duration")
    _fails(["127.0.0.1:1", "--duration", "5"], capsys, "--method")
    _fails(["127.0.0.1:1", "--timeout", "soon", "--rps", "5"], capsys, "--timeout")
