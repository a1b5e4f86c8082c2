"""The example order client: calls the inventory through memcontract's client interceptor.

From the repository root, with a server running (``python -m examples.python.server``)::

    python -m examples.python.client --target 127.0.0.1:50061
    python -m examples.python.client --target 127.0.0.1:50061 --fake-usage 0.9

It calls GetStock (``--calls`` times, same SKU), Report and Ping, and prints each call's
status, the server's ``x-memory-*`` trailers and, at the end, the peer table (what each
callee last reported). With ``--fake-usage 0.9`` this process reports 90% usage (a
``FakeProbe``), so the server stops caching for it: every GetStock then reads the database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import grpc
from memcontract.interceptors import client_interceptor

from memcontract import Contract, Guard, Pressure
from memcontract.testing import FakeProbe

from .inventory_demo.v1 import inventory_demo_pb2 as pb
from .inventory_demo.v1 import inventory_demo_pb2_grpc as pb_grpc
from .server import CONTRACT

SHOWN = ("x-memory-", "grpc-retry-pushback-ms")


def memory_trailers(trailers: Iterable[tuple[str, Any]] | None) -> str:
    """The server's memcontract trailers as one line (``-bin`` values by size)."""
    parts = []
    for key, value in trailers or ():
        if not key.startswith(SHOWN):
            continue
        shown = f"<{len(value)} bytes>" if isinstance(value, bytes) else value
        parts.append(f"{key}={shown}")
    return " ".join(parts) or "(none)"


def describe_peer(target: str, p: Pressure) -> str:
    """One line of the peer table."""
    return (
        f"  {target}  usage {p.usage_ratio * 100:.1f}%  level {int(p.level)}  "
        f"capacity {p.capacity_mib} MiB  module {p.module or '-'}  contract {p.contract_version}"
    )


class OrderClient:
    """The calls the demo makes, each printed as it completes."""

    def __init__(self, channel: grpc.Channel, out: TextIO = sys.stdout) -> None:
        self.stub = pb_grpc.InventoryDemoStub(channel)
        self.out = out

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def get_stock(self, sku: str, timeout: float) -> grpc.StatusCode:
        try:
            reply, call = self.stub.GetStock.with_call(pb.GetStockRequest(sku=sku), timeout=timeout)
        except grpc.RpcError as err:
            return self.failed("GetStock", err)
        denied = f" cache_denied={reply.cache_denied}" if reply.cache_denied else ""
        self.say(
            f"GetStock {sku}: OK quantity={reply.quantity} source={reply.source}{denied}\n"
            f"  trailers: {memory_trailers(call.trailing_metadata())}"
        )
        return grpc.StatusCode.OK

    def report(self, rows: int, timeout: float) -> grpc.StatusCode:
        call = self.stub.Report(pb.ReportRequest(rows=rows), timeout=timeout)
        chunks = received = size = 0
        try:
            for chunk in call:
                chunks += 1
                received += len(chunk.rows)
                size += chunk.ByteSize()
        except grpc.RpcError as err:
            return self.failed("Report", err)
        self.say(
            f"Report: OK {received} rows in {chunks} chunks ({size / 1048576:.1f} MiB)\n"
            f"  trailers: {memory_trailers(call.trailing_metadata())}"
        )
        return grpc.StatusCode.OK

    def ping(self, timeout: float) -> grpc.StatusCode:
        try:
            reply, call = self.stub.Ping.with_call(pb.PingRequest(), timeout=timeout)
        except grpc.RpcError as err:
            return self.failed("Ping", err)
        seen = reply.caller
        # A calm caller's keys travel only when they change: absent means calm.
        me = f"usage {seen.usage_ratio * 100:.1f}% level {seen.level}" if seen.present else "calm"
        self.say(
            f"Ping: OK (the server saw this caller's pressure: {me})\n"
            f"  trailers: {memory_trailers(call.trailing_metadata())}"
        )
        return grpc.StatusCode.OK

    def failed(self, method: str, err: grpc.RpcError) -> grpc.StatusCode:
        code: grpc.StatusCode = err.code()
        self.say(
            f"{method}: {code.name} {err.details()}\n"
            f"  trailers: {memory_trailers(err.trailing_metadata())}"
        )
        return code


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.python.client", description="memcontract example order client"
    )
    parser.add_argument("--target", default="127.0.0.1:50061", help="inventory server address")
    parser.add_argument("--sku", default="sku-0001", help="SKU for GetStock")
    parser.add_argument("--calls", type=int, default=3, help="GetStock calls (same SKU)")
    parser.add_argument("--report-rows", type=int, default=20_000, help="rows asked of Report")
    parser.add_argument("--no-report", action="store_true", help="skip the Report call")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-call deadline, seconds")
    parser.add_argument("--contract", default=str(CONTRACT), help="memory contract file")
    parser.add_argument("--module", default="order", help="module of the contract in force")
    parser.add_argument(
        "--fake-usage",
        type=float,
        default=None,
        help="report this usage ratio (e.g. 0.9) instead of this process's real memory",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    """Run the calls; exit 1 when the server could not be reached, else 0."""
    args = parse_args(argv)
    contract = Contract.load(args.contract, module=args.module)
    probe = None if args.fake_usage is None else FakeProbe().set(usage=args.fake_usage)
    guard = Guard(contract, probe=probe)
    with guard:
        channel = grpc.intercept_channel(
            grpc.insecure_channel(args.target), client_interceptor(guard, args.target)
        )
        with channel:
            client = OrderClient(channel, out)
            codes = [client.get_stock(args.sku, args.timeout) for _ in range(args.calls)]
            if not args.no_report:
                codes.append(client.report(args.report_rows, args.timeout))
            codes.append(client.ping(args.timeout))
        client.say(f"peers (as reported to this {contract.module.name} process):")
        for target, pressure in sorted(guard.peers.snapshot().items()):
            client.say(describe_peer(target, pressure))
    unreachable = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    return 1 if any(code in unreachable for code in codes) else 0


if __name__ == "__main__":
    sys.exit(main())
