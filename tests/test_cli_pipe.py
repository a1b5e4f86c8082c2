"""Every ``memcontract`` subcommand writing to a pipe whose reader went away (``| head``)
stops quietly: no traceback, exit status 141 (128 + SIGPIPE), as a shell would say.

Each command runs with its stdout a pipe closed before it writes a byte, so every write fails;
without the CLI's handling, lint, contract and probe end in a BrokenPipeError traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples/contracts/demo.yaml"


def _closed_reader(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``memcontract ARGS`` with its stdout a pipe closed before it writes a byte."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "memcontract.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone: any write is EPIPE
    stderr = proc.stderr.read()
    proc.stderr.close()
    return subprocess.CompletedProcess(args, proc.wait(60), b"", stderr)


@pytest.mark.parametrize(
    "args",
    [
        ("lint", "tests/lint_fixtures"),
        ("lint", "--format", "sarif", "tests/lint_fixtures"),
        ("contract", "check", str(DEMO)),
        ("probe", "--contract", str(DEMO)),
        ("top", "--once", "127.0.0.1:1"),
        ("loadtest", "--help"),
        ("--help",),
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_closed_pipe_is_no_traceback(args: tuple[str, ...]) -> None:
    done = _closed_reader(*args)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    assert b"BrokenPipeError" not in done.stderr
    # 141 where memcontract saw the closed pipe; argparse's --help and rich (top) stop
    # quietly on their own (0 and 1).
    assert done.returncode == (0 if "--help" in args else 1 if "top" in args else 141)
