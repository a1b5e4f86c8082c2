"""``memcontract lint [PATH ...]``."""

from __future__ import annotations

import argparse
from typing import Any

from ..lint import FORMATS, run


def register(sub: Any) -> None:
    """Add the ``lint`` command."""
    parser = sub.add_parser(
        "lint",
        help="check Python services and contract files (exit 0 clean, 1 findings, 2 usage)",
        description="Check that gRPC servers are wired with memcontract, that literal contract "
        "references resolve, that servicer methods do not allocate by request size, and that "
        "contract files validate. Suppress one finding with '# memcontract: ignore[MC003] why'.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        default=["."],
        metavar="PATH",
        help="files or directories (default: the current directory)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        dest="output_format",
        help="report format (default: text); sarif is SARIF 2.1.0",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip paths matching GLOB (repeatable)",
    )
    parser.set_defaults(run=run_lint)


def run_lint(args: argparse.Namespace) -> int:
    """Dispatch to :func:`memcontract.lint.run`."""
    return run(args.paths, output_format=args.output_format, exclude=args.exclude)
