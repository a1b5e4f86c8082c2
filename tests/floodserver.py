"""A real guarded grpcio server in a child process, and a caller that floods it with headers.

Used by test_flood; also prints the figures of issue 10 item 1 (run from the repository root)::

    .venv/bin/python -m tests.floodserver report

The child (``python floodserver.py serve MAX_HEAP_MB TRUST``, TRUST ``all`` or a CIDR to trust
only) prints one JSON line ``{"port": N}`` when serving, then serves until its stdin closes.
``/flood.Echo/Echo`` answers its request; the trailers carry the guard's state.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent import futures
from types import TracebackType
from typing import Any

import grpc
import psutil
from memcontract.interceptors import server_interceptor

from memcontract import Contract, Guard
from memcontract.trust import TrustPolicy

CONTRACT = """
modules:
  - name: flood
    max_heap_mb: {max_heap_mb}
    alloc_rate_mb_per_sec: 1000000   # the heap signal alone
    sample_interval_ms: 100
    core_methods: ["/flood.Echo/SampledAt"]   # the test's own question is never shed
"""
INTERVAL_S = 0.1
METHOD = "/flood.Echo/Echo"
SAMPLED_AT = "/flood.Echo/SampledAt"
MIB = 1024 * 1024
# A 64 KiB limit on received metadata (grpcio's default is 8 KiB; services raise it).
OPTIONS = [("grpc.max_metadata_size", 64 * 1024)]


def serve(max_heap_mb: int, trust_arg: str) -> None:
    """The child: serve until stdin closes."""
    trust = None if trust_arg == "all" else TrustPolicy.only(networks=[trust_arg])
    guard = Guard(Contract.from_yaml(CONTRACT.format(max_heap_mb=max_heap_mb))).start()

    def echo(request: bytes, context: Any) -> bytes:
        return request

    def sampled_at(request: bytes, context: Any) -> bytes:
        # Asked directly: a calm server's trailers carry no pressure while nothing changes.
        return repr(guard.pressure.sampled_at).encode()

    server = grpc.server(
        futures.ThreadPoolExecutor(4),
        interceptors=[server_interceptor(guard, trust=trust)],
        options=OPTIONS,
    )
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "SampledAt": grpc.unary_unary_rpc_method_handler(sampled_at),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("flood.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"port": port}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop(0).wait(5)
    guard.stop()


class FloodServer:
    """The child server, as a context manager: ``address``, ``rss()``, ``call()``."""

    def __init__(self, max_heap_mb: int, trust: str, *, quiet: bool = False) -> None:
        self._args = [sys.executable, __file__, "serve", str(max_heap_mb), trust]
        self._stderr = subprocess.DEVNULL if quiet else None
        self._child: subprocess.Popen[str] | None = None
        self.address = ""

    def __enter__(self) -> FloodServer:
        self._child = subprocess.Popen(
            self._args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self._child.stdout is not None
        line = self._child.stdout.readline()
        self.address = f"127.0.0.1:{json.loads(line)['port']}"
        self._channel = grpc.insecure_channel(self.address, options=OPTIONS)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._channel.close()
        assert self._child is not None and self._child.stdin is not None
        self._child.stdin.close()
        try:
            self._child.wait(10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()

    def rss(self) -> int:
        """The child's resident memory now, bytes."""
        assert self._child is not None
        return int(psutil.Process(self._child.pid).memory_info().rss)

    def call(self, metadata: Any = None) -> tuple[grpc.StatusCode, dict[str, Any]]:
        """One call; its status and trailers."""
        try:
            _, call = self._channel.unary_unary(METHOD).with_call(
                b"x", timeout=10, metadata=metadata
            )
            return call.code(), dict(call.trailing_metadata() or ())
        except grpc.RpcError as err:
            return err.code(), dict(err.trailing_metadata() or ())  # type: ignore[attr-defined]

    def flood(self, key: str, calls: int = 4090, size: int = 7000) -> int:
        """``calls`` calls, each with a unique ``size``-byte value under ``key``; the growth of
        the server's RSS, bytes."""
        for _ in range(50):  # warm the server's paths first: growth is the flood's alone
            self.call()
        before = self.rss()
        stub = self._channel.unary_unary(METHOD)
        for start in range(0, calls, 32):  # 32 in flight: a flood, not a trickle
            batch = [
                stub.future(b"x", timeout=10, metadata=((key, _value(key, i, size)),))
                for i in range(start, min(start + 32, calls))
            ]
            for future in batch:
                future.exception()  # wait; the outcome is the test's business, not the flood's
        self.wait_for_samples_after(time.time())
        return self.rss() - before

    def wait_for_samples_after(self, since: float, samples: int = 3, seconds: float = 10) -> None:
        """Wait until the server's guard has taken a sample ``samples`` intervals after
        ``since`` (Unix time): it has seen the flood's growth as long as level 3 needs to
        confirm it."""
        deadline = time.monotonic() + seconds
        sampled_at = self._channel.unary_unary(SAMPLED_AT)
        while True:
            if float(sampled_at(b"", timeout=10)) >= since + samples * INTERVAL_S:
                return
            assert time.monotonic() < deadline, f"no sample {samples} intervals after the flood"
            time.sleep(0.01)


def _value(key: str, i: int, size: int) -> str | bytes:
    """A unique value of ``size`` bytes (bytes for a ``-bin`` key)."""
    text = str(i).rjust(size, "0")
    return text.encode() if key.endswith("-bin") else text


def report() -> None:
    """Print RSS growth under an x-memory-usage flood against an unrelated header's flood."""
    for trust in ("10.0.0.0/8", "all"):
        for key in ("x-flood-other", "x-memory-usage"):
            with FloodServer(72, trust, quiet=True) as server:
                start = server.rss()
                growth = server.flood(key)
                time.sleep(1)
                code, trailers = server.call()
                print(
                    f"trust={trust:<10} {key:<15} RSS {start / MIB:5.1f} -> "
                    f"{server.rss() / MIB:5.1f} MiB (flood +{growth / MIB:5.1f} MiB); "
                    f"then a normal call: {code.name}, level {trailers.get('x-memory-level')}"
                )


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        report()
