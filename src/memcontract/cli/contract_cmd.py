"""``memcontract contract check FILE``."""

from __future__ import annotations

import argparse
from typing import Any


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
    raise NotImplementedError
