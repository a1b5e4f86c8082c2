"""A guarded grpcio backend in a child process whose memory level the test sets (FakeProbe).

Each child is its own process, so its own instance (docs/design.md §5): three of them behind one
channel are three backends as a client sees them in production.

The child (``python pressureserver.py``) prints ``{"port": N}`` when serving, then reads
commands from stdin, one per line, answering each with one JSON line:

- ``usage U L``: the probe reads usage ``U``; answers ``{"level": L}`` once the guard is at
  level ``L`` (``{"level": other}`` after 10 s without);
- ``arrivals``: the monotonic times (``CLOCK_MONOTONIC``, shared with the parent) at which
  ``/peers.Echo/Echo`` calls arrived since the last ``arrivals``, shed or not.

``/peers.Echo/Echo`` is non-core; ``/peers.Echo/Core`` is core. A shed call asks for a
``PUSHBACK_MS`` pushback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent import futures
from types import TracebackType
from typing import Any

import grpc
from memcontract.interceptors import server_interceptor

from memcontract import Contract, Guard
from memcontract.testing import FakeProbe

PUSHBACK_MS = 300
CONTRACT = f"""
modules:
  - name: backend
    max_heap_mb: 100
    core_methods: ["/peers.Echo/Core"]
    sample_interval_ms: 50
    retry_pushback_ms: {PUSHBACK_MS}
    ladder: {{confirm: {{level1: 1, level2: 1, level3: 1}}, recover_after: 1}}
"""
ECHO = "/peers.Echo/Echo"
CORE = "/peers.Echo/Core"


class Arrivals(grpc.ServerInterceptor):  # type: ignore[misc]
    """Records when each Echo call arrives (before memcontract's interceptor sheds it)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if details.method == ECHO:
            with self.lock:
                self.times.append(time.monotonic())
        return continuation(details)

    def take(self) -> list[float]:
        with self.lock:
            taken, self.times = self.times, []
        return taken


def serve() -> None:
    """The child: serve and obey commands until stdin closes."""
    probe = FakeProbe()
    probe.set(usage=0.3)
    guard = Guard(
        Contract.from_yaml(CONTRACT), probe=probe, disable={"recover", "sample_allocations"}
    )
    guard.start()
    arrivals = Arrivals()
    server = grpc.server(
        futures.ThreadPoolExecutor(8), interceptors=[arrivals, server_interceptor(guard)]
    )

    def echo(request: bytes, context: Any) -> bytes:
        return request

    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Core": grpc.unary_unary_rpc_method_handler(echo),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("peers.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"port": port}), flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "usage":
            probe.set(usage=float(args[0]))
            deadline = time.monotonic() + 10
            while guard.level != int(args[1]) and time.monotonic() < deadline:
                time.sleep(0.01)  # polling the guard's level, with a deadline
            answer: dict[str, Any] = {"level": int(guard.level)}
        elif command == "arrivals":
            answer = {"arrivals": arrivals.take()}
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)
    server.stop(0).wait(5)
    guard.stop()


class PressureServer:
    """The child, as a context manager: ``address``, ``set_level()``, ``arrivals()``."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[str] | None = None
        self.address = ""

    def start(self) -> PressureServer:
        self._child = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.address = f"127.0.0.1:{self._read()['port']}"
        return self

    def _read(self) -> dict[str, Any]:
        assert self._child is not None and self._child.stdout is not None
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError("the backend child exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, command: str) -> dict[str, Any]:
        assert self._child is not None and self._child.stdin is not None
        self._child.stdin.write(command + "\n")
        self._child.stdin.flush()
        return self._read()

    def set_level(self, level: int) -> None:
        """Drive the backend to ``level`` (0 or 3) and wait until its guard is there."""
        usage = {0: 0.3, 3: 0.97}[level]
        answer = self._ask(f"usage {usage} {level}")
        assert answer == {"level": level}, answer

    def arrivals(self) -> list[float]:
        """When Echo calls arrived since the last time this was asked (monotonic seconds)."""
        times: list[float] = self._ask("arrivals")["arrivals"]
        return times

    def stop(self) -> None:
        if self._child is None:
            return
        assert self._child.stdin is not None
        self._child.stdin.close()
        try:
            self._child.wait(10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()

    def __enter__(self) -> PressureServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    serve()
