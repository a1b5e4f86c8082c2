"""Errors of ``memcontract lint`` itself (not findings)."""

from __future__ import annotations

from ..errors import MemcontractError


class LintUsageError(MemcontractError):
    """The command was used wrongly (a path that does not exist); the CLI exits 2."""
