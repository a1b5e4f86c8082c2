"""``memcontract gateway``: the gateway is a Go program now; this says where to get it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

#: The one line printed (exit status 2).
MOVED = (
    "memcontract gateway: the gateway is the Go program memcontract-gateway now (same flags "
    "and config file): go install "
    "github.com/memcontract/memcontract/go/cmd/memcontract-gateway@latest, or make gateway "
    "in a checkout"
)


def register(sub: Any) -> None:
    """Add the ``gateway`` command, which only points to the Go gateway."""
    p = sub.add_parser(
        "gateway",
        help="moved: the gateway is the Go program memcontract-gateway",
        description=MOVED,
        add_help=False,
    )
    p.set_defaults(run=run_gateway)


def run_gateway(args: argparse.Namespace) -> int:
    """Print where the gateway went; exit 2."""
    print(MOVED, file=sys.stderr)
    return 2
