"""Who gets the calls: the gateway's pick against grpc's own ``weighted_round_robin``.

Two Go inventory upstreams report their memory in every trailer: ``calm`` at 30 % (level 0)
and ``hot`` at 92 % (level 2). The same number of unary calls goes (a) from a grpcio channel
balancing over both with the ``weighted_round_robin`` policy (gRFC A58, fed by the ORCA
``endpoint-load-metrics-bin`` trailer the Go interceptor sends) and (b) through
the Go gateway (``memcontract-gateway``) with both as upstreams. Each upstream counts what it
served.

Usage::

    .venv/bin/python bench/routing.py            # 2000 calls each way
    .venv/bin/python bench/routing.py --calls 500
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc

REPO = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(REPO / "examples" / "go" / "gen" / "python"))
from inventory.v1 import inventory_pb2, inventory_pb2_grpc  # type: ignore[import-not-found]  # noqa: E402

# No blackout: the default (10 s) would keep a run this short on plain round robin.
WRR = {
    "loadBalancingConfig": [
        {"weighted_round_robin": {"blackoutPeriod": "0s", "weightUpdatePeriod": "0.1s"}}
    ]
}


class Proc:
    """A child process whose first stdout line is JSON; the rest is read by a thread."""

    def __init__(self, argv: list[str]) -> None:
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.popen.stdout is not None
        self.first: dict[str, Any] = json.loads(self.popen.stdout.readline())
        threading.Thread(target=self.drain, daemon=True).start()

    def drain(self) -> None:
        """Read (and drop) the rest of the child's output."""
        assert self.popen.stdout is not None
        self.popen.stdout.read()

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(30)


def start_go_binary(tmp: Path, module: Path, package: str) -> Path | None:
    """``go build`` one command into ``tmp``; its path, or None without Go."""
    out = tmp / Path(package).name
    built = subprocess.run(
        ["go", "build", "-o", str(out), package], cwd=module, capture_output=True, check=False
    )
    if built.returncode != 0:
        print(f"bench: no Go {package} (go build failed)", file=sys.stderr)
        return None
    return out


class Counted(Proc):
    """A Go inventory whose GetItem calls are counted from its stdout lines."""

    served = 0

    def drain(self) -> None:
        """Count the GetItem call lines instead of dropping them."""
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if "/GetItem" in line:
                self.served += 1


def share(calm: Counted, hot: Counted, channel: grpc.Channel, calls: int) -> str:
    before = calm.served, hot.served
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    for i in range(calls):
        stub.GetItem(inventory_pb2.GetItemRequest(sku=f"s{i}"), timeout=10)
    time.sleep(0.5)  # the last lines
    c, h = calm.served - before[0], hot.served - before[1]
    return f"calm {c:5d}  hot {h:5d}  calm share {c / max(1, c + h):6.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="routing-"))
    binary = start_go_binary(tmp, REPO / "examples" / "go", "./cmd/inventory")
    gateway = start_go_binary(tmp, REPO / "go", "./cmd/memcontract-gateway")
    if binary is None or gateway is None:
        sys.exit("bench: Go is needed (go build failed)")
    procs: list[Proc] = []
    try:
        calm = Counted(
            [str(binary), "-listen", "127.0.0.1:0", "-force-usage", "0.30", "-force-level", "0"]
        )
        hot = Counted(
            [str(binary), "-listen", "127.0.0.1:0", "-force-usage", "0.92", "-force-level", "2"]
        )
        procs += [calm, hot]
        a, b = (f"127.0.0.1:{p.first['port']}" for p in (calm, hot))
        options = [("grpc.service_config", json.dumps(WRR))]
        with grpc.insecure_channel(f"ipv4:{a},{b}", options=options) as channel:
            print(f"grpc weighted_round_robin: {share(calm, hot, channel, args.calls)}")
        gw = Proc(
            [
                str(gateway),
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                a,
                "--upstream",
                b,
            ]
        )
        procs.append(gw)
        with grpc.insecure_channel(f"127.0.0.1:{gw.first['port']}") as channel:
            print(f"memcontract-gateway:       {share(calm, hot, channel, args.calls)}")
    finally:
        for p in procs:
            p.close()


if __name__ == "__main__":
    main()
