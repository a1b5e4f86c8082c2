"""``memcontract contract check FILE``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..contract import MODULE_ENV, Contract, ModuleContract
from ..errors import format_number


def register(sub: Any) -> None:
    """Add the ``contract`` command group."""
    parser = sub.add_parser("contract", help="work with contract files")
    group = parser.add_subparsers(dest="contract_command", required=True)
    check = group.add_parser("check", help="validate a contract file")
    check.add_argument("file")
    check.add_argument(
        "--module",
        default=None,
        help="module to check (default: $MEMCONTRACT_MODULE, else every module in the file)",
    )
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Validate the file; print a one-line summary of the module selected (``--module``, else
    ``$MEMCONTRACT_MODULE``), or of every module when none is (errors propagate as
    ContractError)."""
    module = args.module or os.environ.get(MODULE_ENV) or None
    if module is None:
        # No selection: the whole file is checked, as `memcontract lint` checks it.
        module = Contract.check_file(args.file)[0].name
        contract = Contract.load(args.file, module=module)
        shown = contract.modules
    else:
        contract = Contract.load(args.file, module=module)
        shown = (contract.module,)
    count = len(contract.modules)
    for m in shown:
        of = f" ({contract.modules.index(m) + 1} of {count})" if count > 1 else ""
        print(f"OK {args.file}: version {contract.version}, module {m.name}{of} ({_summary(m)})")
    return 0


def _summary(module: ModuleContract) -> str:
    globs = len(module.core_methods)
    return (
        f"budget {format_number(module.max_heap_mb)} MiB, "
        f"alloc {format_number(module.alloc_rate_mb_per_sec)} MiB/s, "
        f"interval {module.sample_interval_ms} ms, {globs} core glob{'' if globs == 1 else 's'}, "
        f"on_stuck={module.on_stuck}, dry_run={str(module.dry_run).lower()}"
    )
