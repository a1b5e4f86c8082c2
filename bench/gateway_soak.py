"""A soak of the Go gateway: mixed unary and streaming load for minutes, its memory and file
descriptors watched.

    .venv/bin/python bench/gateway_soak.py [--minutes 10] [--rate 200]

One Go inventory upstream, the gateway in front of it (its own contract on), and two ghz
processes at a fixed rate for the whole run: unary ``GetItem`` and server-streaming
``ListItems`` (3 items each) at half the rate. Every 5 s the gateway's resident set size
(/proc/PID/status VmRSS) and open file descriptors (/proc/PID/fd) are read.

Issue 24's Must: RSS growth < 5 % from minute 1 to the end, no file-descriptor growth, no
failed call. The verdict is printed and is the exit status (0: all held), so ``make drills``
fails when one does not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway import CONTRACT, EXAMPLES, LIBRARY, PROTO, PROTO_ROOT, Proc, ghz_binary, go_build

SAMPLE_S = 5.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def load(
    ghz: Path, address: str, call: str, data: str, rate: int, seconds: int, out: Path
) -> subprocess.Popen[str]:
    """ghz at a fixed rate for a fixed number of calls (no call cut off at the end), its JSON
    report to ``out`` (a file, not a pipe: the report lists every call and would fill a pipe,
    blocking ghz at its end)."""
    with out.open("w") as sink:
        return subprocess.Popen(
            [
                str(ghz),
                "--insecure",
                "--proto",
                str(PROTO),
                "--import-paths",
                str(PROTO_ROOT),
                "--call",
                call,
                "-d",
                data,
                "-c",
                "20",
                "--connections",
                "2",
                "-r",
                str(rate),
                "-n",
                str(rate * seconds),
                "-O",
                "json",
                address,
            ],
            stdout=sink,
            text=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--rate", type=int, default=200, help="unary calls per second (streams: half)"
    )
    args = parser.parse_args()
    seconds = int(args.minutes * 60)
    tmp = Path(tempfile.mkdtemp(prefix="gateway-soak-"))
    ghz = ghz_binary()
    inventory = go_build(EXAMPLES, "./cmd/inventory", tmp / "inventory")
    gateway = go_build(LIBRARY, "./cmd/memcontract-gateway", tmp / "memcontract-gateway")
    contract = tmp / "gateway.yaml"
    contract.write_text(CONTRACT)
    upstream = Proc([str(inventory), "-listen", "127.0.0.1:0"], tmp / "inventory.log")
    gw = Proc(
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
    pid = gw.popen.pid
    print(
        f"soak: {args.minutes:g} min at {args.rate}/s unary + {args.rate // 2}/s streams; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    start = time.monotonic()
    loads = [
        load(
            ghz,
            gw.address,
            "inventory.v1.InventoryService.GetItem",
            '{"sku":"soak"}',
            args.rate,
            seconds,
            tmp / "ghz-unary.json",
        ),
        load(
            ghz,
            gw.address,
            "inventory.v1.InventoryService.ListItems",
            '{"count":3}',
            args.rate // 2,
            seconds,
            tmp / "ghz-stream.json",
        ),
    ]
    samples: list[tuple[float, int, int]] = []
    try:
        while any(p.poll() is None for p in loads):
            samples.append((time.monotonic() - start, rss_kib(pid), fds(pid)))
            t, rss, fd = samples[-1]
            if len(samples) % 12 == 1:
                print(f"  {t:6.0f} s  rss {rss / 1024:6.1f} MiB  fds {fd}", flush=True)
            time.sleep(SAMPLE_S)  # a sampling period, not a synchronisation
        reports: list[dict[str, Any]] = [
            json.loads((tmp / name).read_text()) for name in ("ghz-unary.json", "ghz-stream.json")
        ]
    finally:
        for p in loads:
            if p.poll() is None:
                p.kill()
        gw.close()
        upstream.close()
    return verdict(samples, reports, args.minutes)


def verdict(
    samples: list[tuple[float, int, int]], reports: list[dict[str, Any]], minutes: float
) -> int:
    after_minute = [s for s in samples if s[0] >= min(60.0, minutes * 30)]
    first, last = after_minute[0], samples[-1]
    growth = last[1] / first[1] - 1
    failed = {
        code: n for r in reports for code, n in r["statusCodeDistribution"].items() if code != "OK"
    }
    calls = sum(r["count"] for r in reports)
    ok = growth < 0.05 and last[2] <= first[2] and not failed
    print(
        f"soak: {calls} calls, failed {failed or 0}; RSS {first[1] / 1024:.1f} MiB at "
        f"{first[0]:.0f} s -> {last[1] / 1024:.1f} MiB at the end ({growth:+.1%}); fds "
        f"{first[2]} -> {last[2]}; load average {os.getloadavg()[0]:.2f}: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
