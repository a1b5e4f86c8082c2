"""The load harness's closed-loop throughput against ghz's, on the same target, side by side.

    .venv/bin/python bench/harness.py [--rounds 5] [--seconds 8] [--concurrency 32]
                                      [--connections 2] [--workers default,1,2]

Target: the Go inventory service (examples/go, ``inventory.v1.InventoryService/Ping``), built
with ``make gobuild``; ghz is installed at a pinned version by ``make ghz`` (both run here if
missing). Each round runs ghz and ``memcontract loadtest`` for the same time at the same
concurrency and connections, alternating which goes first; the ratio is the harness's answered
calls per second over ghz's. ghz's calls cut off when its ``-z`` time is up (Unavailable /
Canceled) are not counted as answered; neither are the harness's (it lets calls finish).

``--workers`` lists the harness settings to run in each round (``default``: the harness's own
default, i.e. ``memcontract loadtest`` with no ``--workers`` flag), each against the same
round's ghz run; the order within a round rotates. ``uptime``'s load average is printed before
and after: on a shared machine both tools slow down, and the ratio is what counts.

Issue 25's Must: with default flags the median ratio >= 0.9 (target >= 1.0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOBIN = ROOT / "examples" / "go" / "bin"
PROTO = ROOT / "examples" / "go" / "proto" / "inventory" / "v1" / "inventory.proto"
CONTRACT = ROOT / "examples" / "go" / "contracts" / "memory_contract.yaml"
METHOD = "/inventory.v1.InventoryService/Ping"


def ensure_tools() -> None:
    """Build the Go service and install ghz (pinned in go.mk) unless they are there."""
    if not (GOBIN / "inventory").exists() or not (GOBIN / "ghz").exists():
        subprocess.run(["make", "-s", "ghz"], cwd=ROOT, check=True)


class Inventory:
    """The Go inventory service on a loopback port (its per-call log lines go to a file)."""

    def __init__(self) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="inventory-", suffix=".jsonl")  # noqa: SIM115 (lives as long as the service)
        self.proc = subprocess.Popen(
            [str(GOBIN / "inventory"), "-listen", "127.0.0.1:0", "-contract", str(CONTRACT)],
            stdout=self.log,
            stderr=subprocess.DEVNULL,
        )
        self.address = self._address()

    def _address(self) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            first = Path(self.log.name).read_text().partition("\n")[0]
            if first.endswith("}"):
                return str(json.loads(first)["address"])
            time.sleep(0.05)
        raise RuntimeError("the inventory service did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def ghz_rate(address: str, args: argparse.Namespace) -> float:
    """ghz's answered calls per second (OK and other non-cut-off statuses)."""
    out = subprocess.run(
        [
            str(GOBIN / "ghz"),
            "--insecure",
            "--proto",
            str(PROTO),
            "--call",
            METHOD[1:].replace("/", "."),
            "-d",
            "{}",
            "-c",
            str(args.concurrency),
            "--connections",
            str(args.connections),
            "-z",
            f"{args.seconds}s",
            "-O",
            "json",
            address,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    codes = report["statusCodeDistribution"]
    cut_off = codes.get("Unavailable", 0) + codes.get("Canceled", 0)
    return float(report["count"] - cut_off) / (report["total"] / 1e9)


def harness_rate(address: str, args: argparse.Namespace, workers: str) -> float:
    """``memcontract loadtest``'s answered calls per second (its own measured time)."""
    from memcontract.loadtest import LoadSpec, run

    chosen = {} if workers == "default" else {"workers": int(workers)}
    spec = LoadSpec(
        address,
        METHOD,
        concurrency=args.concurrency,
        connections=args.connections,
        duration=args.seconds,
        **chosen,  # type: ignore[arg-type]
    )
    report = run(spec)
    return report.count("OK") / report.duration_s


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as uptime prints them."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--workers", default="default", help="comma-separated settings")
    args = parser.parse_args()
    settings = args.workers.split(",")
    ensure_tools()
    inventory = Inventory()
    print(
        f"bench/harness.py: {METHOD} on {inventory.address} (Go), concurrency "
        f"{args.concurrency}, {args.connections} connections, harness --workers {args.workers}, "
        f"{args.rounds} rounds of {args.seconds:g} s each; load average {load_average()}"
    )
    ratios: dict[str, list[float]] = {w: [] for w in settings}
    try:
        for r in range(args.rounds):
            names = ["ghz", *settings]
            shift = r % len(names)
            rates = {}
            for name in names[shift:] + names[:shift]:
                if name == "ghz":
                    rates[name] = ghz_rate(inventory.address, args)
                else:
                    rates[name] = harness_rate(inventory.address, args, name)
            cells = "  ".join(
                f"workers {w}: {rates[w]:6.0f}/s ({rates[w] / rates['ghz']:.2f})" for w in settings
            )
            for w in settings:
                ratios[w].append(rates[w] / rates["ghz"])
            print(f"  round {r + 1}: ghz {rates['ghz']:6.0f}/s  {cells}", flush=True)
    finally:
        inventory.close()
    for w, values in ratios.items():
        quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        median = statistics.median(values)
        verdict = "PASS" if median >= 0.9 else "MISS"
        print(
            f"workers {w}: harness/ghz throughput ratio median {median:.2f} (quartiles "
            f"{quartiles[0]:.2f}..{quartiles[2]:.2f}): {verdict} (Must >= 0.9, target 1.0)"
        )
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
