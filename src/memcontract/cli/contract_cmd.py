"""``memcontract contract check FILE``."""

from __future__ import annotations

import argparse
from typing import Any

from ..contract import Contract, ModuleContract
from ..errors import format_number


def register(sub: Any) -> None:
    """Add the ``contract`` command group."""
    parser = sub.add_parser("contract", help="work with contract files")
    group = parser.add_subparsers(dest="contract_command", required=True)
    check = group.add_parser("check", help="validate a contract file")
    check.add_argument("file")
    check.add_argument("--module", default=None, help="module to select (default: the only one)")
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Validate the file; print a one-line summary (errors propagate as ContractError)."""
    contract = Contract.load(args.file, module=args.module)
    module = contract.module
    position = contract.modules.index(module) + 1
    of = f" ({position} of {len(contract.modules)})" if len(contract.modules) > 1 else ""
    print(
        f"OK {args.file}: version {contract.version}, module {module.name}{of} ({_summary(module)})"
    )
    return 0


def _summary(module: ModuleContract) -> str:
    globs = len(module.core_methods)
    return (
        f"budget {format_number(module.max_heap_mb)} MiB, "
        f"alloc {format_number(module.alloc_rate_mb_per_sec)} MiB/s, "
        f"interval {module.sample_interval_ms} ms, {globs} core glob{'' if globs == 1 else 's'}, "
        f"on_stuck={module.on_stuck}, dry_run={str(module.dry_run).lower()}"
    )
