"""Child process of test_fork: a parent with a running guard forks, as preforking servers do.

``python forkchild.py prefork N``: the parent starts a guard (sampler thread), then forks N
workers, as grpcio's multiprocessing example does (no gRPC object exists before the fork).
Worker i allocates (i + 1) x 150 MiB for real, creates its own grpcio server guarded by the
inherited guard, and prints ``{"worker": i, "port": P, "allocated_mb": M}``. Everyone runs
until stdin closes.

``python forkchild.py locks N``: the parent's guard samples a probe that holds the sample
lock most of the time, and the parent forks N children while it runs; each child stops and
restarts the guard and exits. Prints ``{"forks": N, "hung": H}`` (a child still running after
10 s is hung; it is killed, and no more children are forked).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from concurrent import futures
from typing import Any

from memcontract import Contract, Guard
from memcontract.probe import Reading, SystemProbe

MIB = 1024 * 1024
CONTRACT = """
modules:
  - name: prefork
    max_heap_mb: {max_heap_mb}
    alloc_rate_mb_per_sec: 1000000   # the heap signal alone
    sample_interval_ms: {interval}
"""


def prefork(workers: int) -> None:
    guard = Guard(Contract.from_yaml(CONTRACT.format(max_heap_mb=4096, interval=100))).start()
    children = []
    for i in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                worker(guard, i)
            finally:
                os._exit(0)
        children.append(pid)
    sys.stdin.read()
    guard.stop()
    for pid in children:
        os.waitpid(pid, 0)


def worker(guard: Guard, index: int) -> None:
    import grpc
    from memcontract.interceptors import server_interceptor

    allocated_mb = (index + 1) * 150
    block = bytearray(b"\x01") * (allocated_mb * MIB)  # every page written: resident

    def echo(request: bytes, context: Any) -> bytes:
        return request

    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[server_interceptor(guard)])
    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("fork.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    line = {"worker": index, "pid": os.getpid(), "port": port, "allocated_mb": allocated_mb}
    print(json.dumps(line), flush=True)
    sys.stdin.read()
    server.stop(0).wait(5)
    guard.stop()
    del block


class SlowProbe(SystemProbe):
    """A real probe that takes a while: the sampler holds its lock most of the time."""

    def read(self, budget_bytes: int) -> Reading:
        time.sleep(0.005)
        return super().read(budget_bytes)


def locks(forks: int) -> None:
    contract = Contract.from_yaml(CONTRACT.format(max_heap_mb=4096, interval=1))
    guard = Guard(contract, probe=SlowProbe()).start()
    hung = 0
    for _ in range(forks):
        time.sleep(0.003)
        pid = os.fork()
        if pid == 0:
            guard.stop()
            guard.start()
            guard.sample_once()
            guard.stop()
            os._exit(0)
        deadline = time.monotonic() + 10
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                hung += 1
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)
        if hung:  # one hang is the answer; do not wait out the others
            break
    guard.stop()
    print(json.dumps({"forks": forks, "hung": hung}), flush=True)


if __name__ == "__main__":
    mode, count = sys.argv[1], int(sys.argv[2])
    prefork(count) if mode == "prefork" else locks(count)
