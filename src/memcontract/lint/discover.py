"""Which files ``memcontract lint PATH ...`` checks."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LintUsageError
from .rules import is_contract_file

#: Directories never entered (besides hidden ones, whose name starts with a dot).
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "venv", "build", "dist", "site-packages"})
PYTHON_SUFFIXES = frozenset({".py", ".pyi"})


@dataclass
class Files:
    """The files to check, each once, in a stable order."""

    python: list[Path] = field(default_factory=list)
    contracts: list[Path] = field(default_factory=list)


def discover(paths: Sequence[str], exclude: Sequence[str] = ()) -> Files:
    """Python files and contract files under ``paths`` (files or directories).

    In a directory, contract files are told by their name (``is_contract_file``); a file
    named explicitly is checked whatever its name: Python by its suffix, anything else as a
    contract file (``memcontract lint service.yaml`` validates it, never "0 files checked").

    Raises:
        LintUsageError: a path does not exist.
    """
    files = Files()
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise LintUsageError(f"{given}: no such file or directory")
        explicit = path.is_file()
        candidates = [path] if explicit else _walk(path, exclude)
        for candidate in candidates:
            key = candidate.resolve()
            if key in seen or (not explicit and _excluded(candidate, exclude)):
                continue
            seen.add(key)
            if candidate.suffix in PYTHON_SUFFIXES:
                files.python.append(candidate)
            elif explicit or is_contract_file(candidate):
                files.contracts.append(candidate)
    return files


def _walk(root: Path, exclude: Sequence[str]) -> Iterable[Path]:
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and d not in SKIPPED_DIRS
            and not d.endswith(".egg-info")
            and not _excluded(Path(directory, d), exclude)
        )
        for name in sorted(names):
            yield Path(directory, name)


def _excluded(path: Path, patterns: Sequence[str]) -> bool:
    """Whether a pattern matches the path (as given, POSIX) or its last component."""
    text = path.as_posix()
    text = text.removeprefix("./")
    return any(fnmatch.fnmatch(text, p) or fnmatch.fnmatch(path.name, p) for p in patterns)
