"""The ``memcontract`` command line.

Every command prints errors as one line on stderr and exits 2 on bad input; no tracebacks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..errors import MemcontractError


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line on stderr (exit 2), for every subcommand."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    from .contract_cmd import register as register_contract
    from .gateway_cmd import register as register_gateway
    from .lint_cmd import register as register_lint
    from .loadtest_cmd import register as register_loadtest
    from .probe_cmd import register as register_probe
    from .top_cmd import register as register_top

    parser = _Parser(prog="memcontract", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    register_contract(sub)
    register_probe(sub)
    register_top(sub)
    register_lint(sub)
    register_gateway(sub)
    register_loadtest(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 failure, 2 bad input)."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    # `memcontract gateway` takes any flags: it only says where the Go gateway is.
    if unknown and args.command != "gateway":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        status: int = args.run(args)
    except MemcontractError as err:
        print(f"memcontract: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
