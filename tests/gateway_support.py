"""The Go gateway for the black-box tests: built once per session from ``go/`` (the library
module), run as users run it. Without Go the tests skip; with ``MEMCONTRACT_REQUIRE_GO=1``
they fail (see :mod:`tests.go_support`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .go_support import BUILD_TIMEOUT, REPO, child_env, unavailable

LIBRARY = REPO / "go"
PACKAGE = "./cmd/memcontract-gateway"


def build_gateway(outdir: Path) -> Path:
    """``go build`` the gateway into ``outdir``; the binary's path."""
    go = shutil.which("go")
    if go is None:
        unavailable("no 'go' on PATH")
    try:
        proc = subprocess.run(
            [go, "build", "-o", str(outdir / "memcontract-gateway"), PACKAGE],
            cwd=LIBRARY,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"go build {PACKAGE} took over {BUILD_TIMEOUT:.0f} s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"go build {PACKAGE} failed:\n{proc.stderr.strip()}", pytrace=False)
    return outdir / "memcontract-gateway"
