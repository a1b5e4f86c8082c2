"""``memcontract loadtest`` over TLS and mutual TLS (certificates made with openssl per test)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from memcontract.cli import main
from memcontract.loadtest import LoadSpec, Tls, run

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(name: str, cwd: Path) -> None:
    """A key and a certificate for 127.0.0.1 signed by the test CA."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)  # fmt: skip
    (cwd / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", "san.ext",
             cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "1", "-subj", "/CN=loadtest-test-ca", cwd=cwd)  # fmt: skip
    _issue("server", cwd)
    _issue("client", cwd)
    return cwd


@pytest.fixture(scope="module")
def tls_target(pki: Path) -> Iterator[str]:
    """A sync grpcio server that requires a client certificate from the test CA."""
    server = grpc.server(futures.ThreadPoolExecutor(4))
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Tls", {"Echo": handler}),)
    )
    creds = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait(5)


def test_mutual_tls_from_the_cli(pki: Path, tls_target: str) -> None:
    argv = ["loadtest", tls_target, "--method", "/test.Tls/Echo", "--concurrency", "2"]
    argv += ["--total", "20", "--no-progress", "--cacert", str(pki / "ca.pem")]
    argv += ["--cert", str(pki / "client.pem"), "--key", str(pki / "client.key")]
    assert main(argv) == 0


def test_tls_report_counts_ok(pki: Path, tls_target: str) -> None:
    tls = Tls(*((pki / n).read_bytes() for n in ("ca.pem", "client.pem", "client.key")))
    report = run(LoadSpec(tls_target, "/test.Tls/Echo", concurrency=2, total=20, tls=tls))
    assert report.count("OK") == 20 and report.config["tls"] is True


def test_plaintext_to_a_tls_server_cannot_connect(
    tls_target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["loadtest", tls_target, "--method", "/test.Tls/Echo", "--rps", "5", "--insecure"]
    assert main([*argv, "--connect-timeout", "1s"]) == 1
    assert "cannot connect" in capsys.readouterr().err
