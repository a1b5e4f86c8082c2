"""Go side of the cross-language tests: find Go, build the example binaries once, run them.

Without ``go`` on PATH the Go tests skip, saying Go is needed, unless ``MEMCONTRACT_REQUIRE_GO=1``
(``.ci/run``), which fails them. A Go build that fails (or makes no binary) always fails them: a
broken build is a failure, never a skip. Every process started here is bounded in time and
stopped (SIGTERM, then SIGKILL) before its context manager exits.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
GODIR = REPO / "examples" / "go"
GOLIB = REPO / "go"
GO_CONTRACT = GODIR / "contracts" / "memory_contract.yaml"
REQUIRE_ENV = "MEMCONTRACT_REQUIRE_GO"
# What each module builds: (module directory, package pattern, the binaries it makes).
Build = tuple[Path, str, tuple[str, ...]]
BUILDS: tuple[Build, ...] = (
    (GODIR, "./cmd/...", ("inventory", "order", "contractdump", "wrrclient", "relayclient")),
    (GOLIB, "./internal/cmd/...", ("vectorenc",)),
)
BUILD_TIMEOUT = 600.0


def go_required() -> bool:
    """Whether a missing Go toolchain must fail the tests (CI)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def unavailable(reason: str) -> NoReturn:
    """Skip (fail with ``MEMCONTRACT_REQUIRE_GO=1``) because there is no Go toolchain."""
    if go_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the Go interop tests must run)", pytrace=False)
    pytest.skip(f"Go is needed for the cross-language tests: {reason}")


def child_env() -> dict[str, str]:
    """The environment for the Go binaries: ours without MEMCONTRACT_* (no forced pressure or
    contract leaking in from the caller's shell)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMCONTRACT_")}


def build(outdir: Path, builds: Sequence[Build] = BUILDS) -> Path:
    """Build the example commands and the library's vector encoder into ``outdir``: skips
    without a Go toolchain (see ``unavailable``), fails when a build fails."""
    go = shutil.which("go")
    if go is None:
        unavailable("no 'go' on PATH")
    for moddir, pattern, binaries in builds:
        what = f"go build {pattern} in {moddir}"
        try:
            proc = subprocess.run(
                [go, "build", "-o", f"{outdir}{os.sep}", pattern],
                cwd=moddir,
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"{what} took over {BUILD_TIMEOUT:.0f} s", pytrace=False)
        if proc.returncode != 0:
            pytest.fail(f"{what} failed:\n{proc.stderr.strip()}", pytrace=False)
        missing = [b for b in binaries if not (outdir / b).is_file()]
        if missing:
            pytest.fail(f"{what} made no {', '.join(missing)}", pytrace=False)
    return outdir


def run_lines(argv: list[str], *, stdin: str = "", timeout: float = 30.0) -> list[dict[str, Any]]:
    """Run a Go binary to completion (killed after ``timeout``); its stdout as JSON objects."""
    proc = subprocess.run(
        argv,
        input=stdin,
        env=child_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


class GoServer:
    """A long-running Go binary whose stdout JSON lines are read by a thread.

    ``with GoServer([...]) as server:`` starts it and waits (bounded) for its first line, the
    ``listening`` event (``server.address``); on exit it is sent SIGTERM, then SIGKILL if it
    does not stop in time, and reaped. ``lines`` holds everything it printed so far.
    """

    def __init__(
        self, argv: list[str], *, start_timeout: float = 15.0, ready: str = "listening"
    ) -> None:
        self.argv = argv
        self.start_timeout = start_timeout
        self.ready = ready
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stderr: list[str] = []
        self.address = ""

    def __enter__(self) -> GoServer:
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
            cwd=REPO,
            text=True,
        )
        try:
            assert self.proc.stdout is not None and self.proc.stderr is not None
            self._spawn(self._read_stdout, self.proc.stdout)
            self._spawn(self._read_stderr, self.proc.stderr)
            first = self.next_line(self.start_timeout)
            assert first.get("event") == self.ready, f"first line is not {self.ready!r}: {first}"
            if "port" in first:
                self.address = f"127.0.0.1:{int(first['port'])}"
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(self, target: Any, stream: IO[str]) -> None:
        thread = threading.Thread(target=target, args=(stream,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read_stdout(self, stream: IO[str]) -> None:
        for raw in stream:
            if raw.strip():
                try:
                    line = json.loads(raw)
                except ValueError:
                    line = {"event": "unparsed", "text": raw}
                self._queue.put(line)
        self._queue.put(None)

    def _read_stderr(self, stream: IO[str]) -> None:
        for raw in stream:
            self._stderr.append(raw)

    def next_line(self, timeout: float) -> dict[str, Any]:
        """The next stdout line (bounded wait); fails if the process ends or stays silent."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.argv[0]}: no output within {timeout} s") from None
        if line is None:
            self._queue.put(None)  # stay at end of stream for later callers
            raise AssertionError(f"{self.argv[0]} ended: {''.join(self._stderr).strip()}")
        self.lines.append(line)
        return line

    def events(self, event: str) -> list[dict[str, Any]]:
        """The lines read so far with this ``event``."""
        return [line for line in self.lines if line.get("event") == event]

    def drain(self, event: str) -> list[dict[str, Any]]:
        """Read every line printed so far (no waiting); the lines with this ``event``."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
        return self.events(event)

    def wait_events(self, event: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Read lines until ``count`` lines with ``event`` were seen (bounded in time)."""
        deadline = time.monotonic() + timeout
        while len(self.events(event)) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"want {count} {event!r} lines, got {self.events(event)}")
            self.next_line(left)
        return self.events(event)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; reap it, then drain what it printed."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
        finally:
            if proc.poll() is None:  # pragma: no cover - SIGKILL did not take
                proc.kill()
            for thread in self._threads:
                thread.join(timeout)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            while True:
                try:
                    line = self._queue.get_nowait()
                except queue.Empty:
                    break
                if line is not None:
                    self.lines.append(line)
