"""``memcontract probe``: this machine's live reading against a contract."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..contract import Contract
from ..guard import Guard
from ..pressure import MIB, Pressure
from ..probe import SystemProbe


def register(sub: Any) -> None:
    """Add the ``probe`` command."""
    parser = sub.add_parser("probe", help="print live memory readings and the breach level")
    parser.add_argument("--contract", default="memory_contract.yaml", help="contract file")
    parser.add_argument("--module", default=None, help="module in force (default: the only one)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to run (0: forever)")
    parser.set_defaults(run=run_probe)


def format_line(p: Pressure) -> str:
    """One live line: used/capacity, usage, growth, level, PSI and GC pause p99."""
    psi = "-" if p.psi_some_avg10 is None else f"{p.psi_some_avg10:.2f}"
    pause = "-" if p.gc_pause_p99_ms is None else f"{p.gc_pause_p99_ms:.2f}ms"
    clock = time.strftime("%H:%M:%S", time.localtime(p.sampled_at))
    return (
        f"{clock}  used {p.used_bytes / MIB:8.1f} MiB of {p.capacity_bytes / MIB:8.1f} MiB  "
        f"usage {p.usage_ratio * 100:5.1f}%  growth {p.alloc_rate_bytes_per_sec / MIB:7.2f} MiB/s "
        f"({p.alloc_rate_ratio:4.2f}x)  level {int(p.level)} {p.level.name:<8}  "
        f"psi {psi}  gc p99 {pause}"
    )


def _describe(probe: SystemProbe) -> str:
    limit = probe.cgroup_limit_bytes
    if probe.cgroup_version is None:
        cgroup = "no cgroup"
    else:
        bound = "no limit" if limit is None else f"limit {limit / MIB:.0f} MiB"
        cgroup = f"cgroup v{probe.cgroup_version} {probe.cgroup_path} ({bound})"
    psi = probe.describe().get("psi_source") or "unavailable"
    return f"{cgroup}; physical {probe.physical_bytes / MIB:.0f} MiB; PSI {psi}"


def run_probe(args: argparse.Namespace) -> int:
    """Sample at the contract's interval and print one line per sample."""
    contract = Contract.load(args.contract, module=args.module)
    probe = SystemProbe()
    module = contract.module
    print(
        f"memcontract probe: {args.contract} module {module.name} (contract {contract.version}): "
        f"budget {module.max_heap_mb:g} MiB, every {module.sample_interval_ms} ms\n"
        f"  {_describe(probe)}",
        flush=True,
    )
    guard = Guard(contract, probe=probe)
    deadline = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    try:
        while time.monotonic() < deadline:
            print(format_line(guard.sample_once()), flush=True)
            time.sleep(min(module.sample_interval, max(0.0, deadline - time.monotonic())))
    finally:
        guard.stop()
        probe.close()
    sys.stdout.flush()
    return 0
