"""tests/go_support.py itself: a Go build that fails fails the tests, it never skips them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .go_support import build, unavailable

BROKEN_MAIN = "package main\n\nfunc main() { undefined() }\n"


def broken_module(root: Path) -> Path:
    """A Go module whose main package does not compile."""
    root.mkdir()
    (root / "go.mod").write_text("module example.com/broken\n\ngo 1.26.0\n")
    (root / "main.go").write_text(BROKEN_MAIN)
    return root


@pytest.mark.parametrize("required", ["", "1"])
def test_failed_build_fails_not_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, required: str
) -> None:
    if shutil.which("go") is None:
        unavailable("no 'go' on PATH")  # a skip, or a failure under MEMCONTRACT_REQUIRE_GO=1
    monkeypatch.setenv("MEMCONTRACT_REQUIRE_GO", required)
    module = broken_module(tmp_path / "broken")
    with pytest.raises(pytest.fail.Exception, match="undefined: undefined"):
        build(tmp_path / "out", [(module, ".", ("broken",))])


def test_missing_go_skips_unless_required(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no go on it
    monkeypatch.delenv("MEMCONTRACT_REQUIRE_GO", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no 'go' on PATH"):
        build(tmp_path / "out")
    monkeypatch.setenv("MEMCONTRACT_REQUIRE_GO", "1")
    with pytest.raises(pytest.fail.Exception, match="no 'go' on PATH"):
        build(tmp_path / "out")
