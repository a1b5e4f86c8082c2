"""A real Prometheus for the tests: the Debian ``prometheus`` package's binaries.

:func:`tools` finds ``prometheus`` and ``promtool``; where they are missing and the tests run
as root with apt-get (a fresh CI machine), it installs Debian's ``prometheus`` package first.
Where it cannot, the tests skip with the reason, or fail with ``MEMCONTRACT_REQUIRE_PROMETHEUS=1``
(``.ci/run``). :class:`Prometheus` runs one on a free loopback port (asked for as port 0 and
read back from ``/proc``), scraping the targets it is given every second, and stops it after.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "deploy" / "prometheus" / "memcontract-rules.yaml"
REQUIRE_ENV = "MEMCONTRACT_REQUIRE_PROMETHEUS"
APT_TIMEOUT_S = 600.0
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Tools:
    prometheus: str
    promtool: str


def unavailable(reason: str) -> NoReturn:
    """Skip (fail with ``MEMCONTRACT_REQUIRE_PROMETHEUS=1``): Prometheus cannot run here."""
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the Prometheus tests must run)", pytrace=False)
    pytest.skip(f"Prometheus (Debian package 'prometheus') is needed: {reason}")


def _found() -> Tools | None:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    return Tools(prometheus, promtool) if prometheus and promtool else None


@functools.cache
def _install() -> str | None:
    """Install Debian's prometheus package; None, or why it could not be done."""
    if shutil.which("apt-get") is None:
        return "no promtool/prometheus on PATH and no apt-get to install them"
    if os.geteuid() != 0:
        return "no promtool/prometheus on PATH, and installing them needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
    ):
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)} took over {APT_TIMEOUT_S:.0f} s"
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}"
    return None


def tools() -> Tools:
    """``prometheus`` and ``promtool``, installed first where missing and possible."""
    found = _found()
    if found is None:
        problem = _install()
        found = _found()
        if found is None:
            unavailable(problem or "apt-get installed prometheus but no binaries are on PATH")
    return found


def _listening_ports(pid: int) -> set[int]:
    """TCP ports process ``pid`` listens on (its socket inodes matched in /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def poll(what: str, check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    """``check()`` until it returns something true, at most ``timeout`` s; that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)  # polling with a deadline, not synchronisation by sleep
    raise AssertionError(f"{what}: not within {timeout:g} s (last: {last!r})")


class Prometheus:
    """A Prometheus scraping ``targets`` (job name -> ``host:port`` list) every second, with
    the memcontract rules loaded; a context manager. ``url`` is its HTTP API root."""

    def __init__(self, workdir: Path, targets: dict[str, list[str]]) -> None:
        self.binary = tools().prometheus
        self.workdir = workdir
        self.targets = targets
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": addresses}]}
                for job, addresses in self.targets.items()
            ],
        }

    def __enter__(self) -> Prometheus:
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config()))
        self.log = (self.workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                "--web.listen-address=127.0.0.1:0",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            port = poll("Prometheus listens", self._port, START_TIMEOUT_S)
            self.url = f"http://127.0.0.1:{port}"
            poll("Prometheus is ready", self._ready, START_TIMEOUT_S)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _port(self) -> int | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.logged()}")
        ports = _listening_ports(self.proc.pid)
        return min(ports) if ports else None

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError):
            return False

    def logged(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-2000:]

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.log.close()

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; its ``data`` (AssertionError with Prometheus's message)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            body = json.load(err)
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (or matrix/scalar as Prometheus returns it)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result
