"""A real memory cgroup for a test's child process: v2 where the unified hierarchy has the
memory controller and a writable parent, else v1; swap off inside it; removed afterwards.

>>> # with MemoryCgroup.create(160 * MIB) as cgroup:
>>> #     process = cgroup.popen([...])          # the child runs inside the cgroup
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_names = itertools.count()


class NoCgroup(Exception):
    """Neither a v2 nor a v1 memory hierarchy is writable here (the reason is the message)."""


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, type, options) of the cgroup mounts."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
            found.append((fields[1], fields[2], fields[3]))
    return found


def _v2_parent() -> Path | None:
    for mount, kind, _ in _mounts():
        controllers = Path(mount) / "cgroup.controllers"
        if kind != "cgroup2" or not controllers.exists():
            continue
        if "memory" in controllers.read_text().split() and os.access(mount, os.W_OK):
            return Path(mount)
    return None


def _v1_parent() -> Path | None:
    for mount, kind, options in _mounts():
        if kind == "cgroup" and "memory" in options.split(",") and os.access(mount, os.W_OK):
            return Path(mount)
    return None


@dataclass
class MemoryCgroup:
    """One child memory cgroup with a hard limit and no swap."""

    path: Path
    version: int
    limit_bytes: int

    @classmethod
    @contextlib.contextmanager
    def create(cls, limit_bytes: int) -> Iterator[MemoryCgroup]:
        """Create it (raises :class:`NoCgroup` with the reason), yield it, remove it."""
        name = f"memcontract-test-{os.getpid()}-{next(_names)}"
        errors = []
        for version, parent in ((2, _v2_parent()), (1, _v1_parent())):
            if parent is None:
                errors.append(f"no writable cgroup v{version} memory hierarchy")
                continue
            try:
                cgroup = cls._make(parent / name, version, limit_bytes)
            except OSError as e:
                errors.append(f"cgroup v{version} at {parent}: {e}")
                continue
            try:
                yield cgroup
            finally:
                cgroup._remove()
            return
        raise NoCgroup("; ".join(errors))

    @classmethod
    def _make(cls, path: Path, version: int, limit_bytes: int) -> MemoryCgroup:
        if version == 2:
            subtree = path.parent / "cgroup.subtree_control"
            if "memory" not in subtree.read_text().split():
                subtree.write_text("+memory")
        path.mkdir()
        cgroup = cls(path, version, limit_bytes)
        try:
            if version == 2:
                (path / "memory.max").write_text(str(limit_bytes))
                (path / "memory.swap.max").write_text("0")
            else:
                (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
                memsw = path / "memory.memsw.limit_in_bytes"
                if memsw.exists():  # swap accounting on: memory + swap = memory, no swap
                    memsw.write_text(str(limit_bytes))
                (path / "memory.swappiness").write_text("0")
        except OSError:
            cgroup._remove()
            raise
        return cgroup

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` inside the cgroup (it joins before it execs)."""
        procs = self.path / "cgroup.procs"
        join = f'echo $$ > "{procs}" && exec "$@"'
        return subprocess.Popen(["/bin/sh", "-c", join, "sh", *argv], text=True, **kwargs)

    def oom_kills(self) -> int:
        """OOM kills inside the cgroup so far (where the kernel counts them, else -1)."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        with contextlib.suppress(OSError):
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return -1

    def _remove(self) -> None:
        # A killed process leaves the cgroup a moment after it is reaped: retry briefly.
        deadline = time.monotonic() + 10
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
