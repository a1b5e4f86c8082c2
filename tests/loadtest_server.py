"""A raw-bytes grpc.aio service for the load harness's tests, run as its own process.

    python -m tests.loadtest_server     # prints the bound port on its first line; SIGTERM stops

Methods (service ``test.Load``): ``Echo`` (unary, returns the request), ``Sleep`` (unary; the
request is a decimal number of milliseconds to sleep before answering) and ``Stream``
(server-streaming, three messages), ``Meta`` (unary; INVALID_ARGUMENT unless the request
metadata holds ``x-test: yes``). Its own process so that its CPU does not share the test's
GIL: the rates the tests check are the harness's, not a starved server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

SERVICE = "test.Load"
ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def serving(module: str, *args: str) -> Iterator[str]:
    """Run ``python -m module args`` (a server printing its port first) from the repository
    root; yield ``127.0.0.1:PORT``; stop it after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield f"127.0.0.1:{proc.stdout.readline().strip()}"
    finally:
        proc.terminate()
        proc.wait(10)


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def sleep(request: bytes, context: Any) -> bytes:
    await asyncio.sleep(float(request or b"0") / 1000)
    return b""


async def meta(request: bytes, context: Any) -> bytes:
    if ("x-test", "yes") not in tuple(context.invocation_metadata() or ()):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "x-test: yes missing")
    return b""


async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for i in range(3):
        yield b"%d" % i


async def main() -> None:
    server = grpc.aio.server()
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "Meta": grpc.unary_unary_rpc_method_handler(meta),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


if __name__ == "__main__":
    asyncio.run(main())
