"""What a hop through the Go gateway costs, against a plain Go proxy, on the same upstream.

    .venv/bin/python bench/gateway.py [--rounds 5] [--seconds 4] [--connections 2]

One Go inventory upstream (examples/go/cmd/inventory, ``GetItem``) and three ways to reach
it, measured in alternating rounds with ghz (closed loop; ``make ghz`` installs it):

* ``direct``: ghz -> upstream;
* ``anchor``: ghz -> a transparent Go proxy with no pressure logic (bench/goproxy: grpc-go's
  UnknownServiceHandler, a raw codec, two copy loops; what an SRE would otherwise deploy),
  built here;
* ``gateway``: ghz -> ``memcontract-gateway`` with its own contract (sampler, trailers, ORCA
  report, shedding) and the pressure logic on (every call's trailers read into the picker).

Per round and concurrency (10 and 100) each target's calls per second; at concurrency 1 its
p50. Ratios are taken per round, then the median: throughput gateway/anchor (and /direct),
and the added p50 (p50 via the proxy minus p50 direct, same round) gateway/anchor.

Issue 24's Must: throughput >= 0.9x the anchor at c=10 and c=100; added p50 at c=1 <= 1.2x
the anchor's (targets 1.0x and equal). PASS/MISS is printed; the exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "go"
LIBRARY = REPO / "go"
PROTO_ROOT = EXAMPLES / "proto"
PROTO = PROTO_ROOT / "inventory" / "v1" / "inventory.proto"
CALL = "inventory.v1.InventoryService.GetItem"
TARGETS = ("direct", "anchor", "gateway")
CONTRACT = """\
version: bench
modules:
  - name: gateway
    max_heap_mb: 1024
    sample_interval_ms: 100
"""


class Proc:
    """A child process whose first stdout line is JSON (its port); the rest is dropped."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log.open("w")
        self.popen = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.first = self._first_line(log)
        self.address = f"127.0.0.1:{self.first['port']}"

    def _first_line(self, log: Path) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            first = log.read_text().partition("\n")[0]
            if first.endswith("}"):
                return dict(json.loads(first))
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.popen.args[0]} did not start: {log.read_text()[:500]}")

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(30)
        self.log.close()


def go_build(module: Path, package: str, out: Path) -> Path:
    """``go build`` one command of a module into ``out``."""
    subprocess.run(["go", "build", "-o", str(out), package], cwd=module, check=True)
    return out


def ghz_binary() -> Path:
    """ghz as ``make ghz`` installs it (installed now if missing)."""
    candidates = [EXAMPLES / "bin" / "ghz", LIBRARY / "bin" / "ghz"]
    found = next((c for c in candidates if c.exists()), None) or shutil.which("ghz")
    if found is None:
        subprocess.run(["make", "-s", "ghz"], cwd=REPO, check=True)
        found = next((c for c in candidates if c.exists()), None)
    if found is None:
        sys.exit("bench: make ghz installed no ghz")
    return Path(found)


def ghz(
    binary: Path, address: str, concurrency: int, seconds: float, connections: int
) -> dict[str, Any]:
    """One closed-loop ghz run; its JSON report."""
    out = subprocess.run(
        [
            str(binary),
            "--insecure",
            "--proto",
            str(PROTO),
            "--import-paths",
            str(PROTO_ROOT),
            "--call",
            CALL,
            "-d",
            '{"sku":"bench"}',
            "-c",
            str(concurrency),
            "--connections",
            str(min(connections, concurrency)),
            "-z",
            f"{seconds}s",
            "-O",
            "json",
            address,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout))


def answered_rate(report: dict[str, Any]) -> float:
    """Calls answered per second (calls ghz cut off at the end of -z are not answered)."""
    codes = report["statusCodeDistribution"]
    cut_off = codes.get("Unavailable", 0) + codes.get("Canceled", 0)
    return float(report["count"] - cut_off) / (report["total"] / 1e9)


def p50_us(report: dict[str, Any]) -> float:
    (p50,) = [d for d in report["latencyDistribution"] if d["percentage"] == 50]
    return float(p50["latency"]) / 1e3


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    ghz_bin = ghz_binary()
    inventory = go_build(EXAMPLES, "./cmd/inventory", tmp / "inventory")
    gateway = go_build(LIBRARY, "./cmd/memcontract-gateway", tmp / "memcontract-gateway")
    anchor = go_build(REPO / "bench" / "goproxy", ".", tmp / "goproxy")
    contract = tmp / "gateway.yaml"
    contract.write_text(CONTRACT)
    procs: list[Proc] = []
    try:
        upstream = Proc([str(inventory), "-listen", "127.0.0.1:0"], tmp / "inventory.log")
        procs.append(upstream)
        via_anchor = Proc(
            [str(anchor), "-listen", "127.0.0.1:0", "-upstream", upstream.address],
            tmp / "anchor.log",
        )
        procs.append(via_anchor)
        via_gateway = Proc(
            [
                str(gateway),
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                upstream.address,
                "--contract",
                str(contract),
            ],
            tmp / "gateway.log",
        )
        procs.append(via_gateway)
        address = {
            "direct": upstream.address,
            "anchor": via_anchor.address,
            "gateway": via_gateway.address,
        }
        measure(args, ghz_bin, address)
    finally:
        for proc in reversed(procs):
            proc.close()
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args: argparse.Namespace, ghz_bin: Path, address: dict[str, str]) -> None:
    print(f"bench/gateway.py: {args.rounds} rounds, {args.seconds:g} s a run; {load_average()}")
    for target in TARGETS:  # warm-up: connections, caches, the gateway's first reports
        ghz(ghz_bin, address[target], 10, 1, args.connections)
    ratios: dict[str, list[float]] = {
        "c10": [],
        "c100": [],
        "c10/direct": [],
        "c100/direct": [],
        "p50": [],
    }
    for r in range(args.rounds):
        order = TARGETS[r % 3 :] + TARGETS[: r % 3]  # each target goes first in turn
        rate: dict[tuple[str, int], float] = {}
        p50: dict[str, float] = {}
        for target in order:
            for c in (10, 100):
                rate[target, c] = answered_rate(
                    ghz(ghz_bin, address[target], c, args.seconds, args.connections)
                )
            p50[target] = p50_us(ghz(ghz_bin, address[target], 1, args.seconds, 1))
        for c in (10, 100):
            ratios[f"c{c}"].append(rate["gateway", c] / rate["anchor", c])
            ratios[f"c{c}/direct"].append(rate["gateway", c] / rate["direct", c])
        added_gateway = p50["gateway"] - p50["direct"]
        added_anchor = p50["anchor"] - p50["direct"]
        ratios["p50"].append(added_gateway / max(added_anchor, 1.0))
        print(
            f"  round {r + 1}: c=10 direct {rate['direct', 10]:7.0f}/s "
            f"anchor {rate['anchor', 10]:7.0f}/s "
            f"gateway {rate['gateway', 10]:7.0f}/s | c=100 direct {rate['direct', 100]:7.0f}/s "
            f"anchor {rate['anchor', 100]:7.0f}/s gateway {rate['gateway', 100]:7.0f}/s | "
            f"c=1 p50 direct {p50['direct']:.0f} us, added: anchor {added_anchor:.0f} us, "
            f"gateway {added_gateway:.0f} us"
        )
    print(f"end: {load_average()}")
    report(ratios)


def report(ratios: dict[str, list[float]]) -> None:
    def median(name: str) -> float:
        return statistics.median(ratios[name])

    def spread(name: str) -> str:
        return f"{min(ratios[name]):.2f}..{max(ratios[name]):.2f}"

    checks = [
        ("throughput gateway/anchor at c=10", "c10", median("c10") >= 0.9, ">= 0.9"),
        ("throughput gateway/anchor at c=100", "c100", median("c100") >= 0.9, ">= 0.9"),
        ("added p50 at c=1 gateway/anchor", "p50", median("p50") <= 1.2, "<= 1.2"),
    ]
    for label, name, ok, must in checks:
        verdict = "PASS" if ok else "MISS"
        print(f"{label}: median {median(name):.2f} (rounds {spread(name)}); Must {must}: {verdict}")
    for c in (10, 100):
        name = f"c{c}/direct"
        print(
            f"throughput gateway/direct at c={c}: median {median(name):.2f} (rounds {spread(name)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each ghz run")
    parser.add_argument(
        "--connections", type=int, default=2, help="ghz connections at c=10 and c=100"
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
