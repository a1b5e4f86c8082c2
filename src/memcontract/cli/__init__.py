"""The ``memcontract`` command line.

Every command prints errors as one line on stderr and exits 2 on bad input; no tracebacks,
not even when the reader of its output goes away (``memcontract lint | head``).
"""

from __future__ import annotations

import argparse
import os
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
    try:
        parser = _parser()
        args, unknown = parser.parse_known_args(argv)  # --help to a closed pipe fails here
        # `memcontract gateway` takes any flags: it only says where the Go gateway is.
        if unknown and args.command != "gateway":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        status: int = args.run(args)
    except MemcontractError as err:
        print(f"memcontract: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()
    try:
        sys.stdout.flush()  # here, not at exit, where a closed pipe is a traceback
    except BrokenPipeError:
        return _reader_gone()
    return status


#: The exit status of a command whose output pipe was closed (128 + SIGPIPE, as a shell says).
BROKEN_PIPE_STATUS = 141


def _reader_gone() -> int:
    """stdout's reader went away (``| head``): stop quietly. Python would flush stdout again at
    exit and print a traceback; point it at /dev/null first (the Python docs' recipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return BROKEN_PIPE_STATUS


if __name__ == "__main__":
    sys.exit(main())
