"""Child process of test_cgroup: a real grpcio server whose one non-core method keeps 1 MiB per
call, under a guard whose budget (1024 MiB) is far above the memory cgroup it runs in.

Prints its port, then serves until killed. ``--dry-run``: the same contract in dry run (the
negative control: nothing is shed, so the kernel's OOM killer should end it).
Usage: python -m tests.growserver [--dry-run]
"""

from __future__ import annotations

import sys
import threading
from concurrent import futures

import grpc
from memcontract.interceptors import server_interceptor

from memcontract import Contract, Guard

CONTRACT = """
version: cgroup-1
modules:
  - name: grow
    max_heap_mb: 1024              # above the cgroup limit: the limit is what binds
    alloc_rate_mb_per_sec: 1000    # the heap signal and the hard limit alone drive this test
    sample_interval_ms: 500
    dry_run: {dry_run}
"""
MIB = 1024 * 1024
kept: list[bytes] = []
lock = threading.Lock()


def eat(request: bytes, context: grpc.ServicerContext) -> bytes:
    """Keep 1 MiB for good (written, so it is resident)."""
    chunk = b"x" * MIB
    with lock:
        kept.append(chunk)
    return b""


def main() -> None:
    dry_run = "--dry-run" in sys.argv[1:]
    guard = Guard(Contract.from_yaml(CONTRACT.format(dry_run=str(dry_run).lower())))
    guard.start()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), interceptors=[server_interceptor(guard)]
    )
    handler = grpc.unary_unary_rpc_method_handler(eat)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("grow.Grow", {"Eat": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
