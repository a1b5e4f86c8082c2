"""Cgroup resolution: which memory limit applies to this process (cgroup v1, v2 or hybrid).

Everything here is a function of a filesystem ``root`` ("/" in production, a fixture tree in
tests). :func:`resolve` runs once, when a probe is built: it parses ``/proc/self/cgroup`` and
``/proc/self/mountinfo`` and fixes the list of directories to read. :func:`read_limit`,
:func:`read_working_set` and :func:`read_psi_some_avg10` run on every sample and only read the
few small files named there (no directory walks).

Errors: the ``read_*`` and ``resolve`` functions raise :class:`OSError` or :class:`ValueError`
(garbage in a file); the probe turns those into skipped sources.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PAGE_COUNTER_MAX",
    "CgroupLimit",
    "CgroupPaths",
    "Mount",
    "host_directory",
    "parse_limit",
    "parse_mountinfo",
    "parse_proc_cgroup",
    "parse_psi_some_avg10",
    "parse_stat",
    "psi_candidates",
    "read_limit",
    "read_psi_some_avg10",
    "read_working_set",
    "resolve",
]

# v1 reports "no limit" as the page counter's maximum rounded down to a page: 0x7FFFFFFFFFFFF000
# with 4 KiB pages, a little less with bigger pages. Anything this large is no limit.
PAGE_COUNTER_MAX = 0x7FFFFFFFFFFFF000

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One cgroup mount from ``/proc/self/mountinfo``.

    Attributes:
        root: the directory of the hierarchy that is mounted (mountinfo field 4), e.g. "/" or,
            in a container without a cgroup namespace, "/kubepods/pod1/ctr".
        point: where it is mounted, e.g. "/sys/fs/cgroup" (field 5).
        fstype: "cgroup" (v1) or "cgroup2".
        super_options: the super-block options; for v1 they name the controllers ("memory").
    """

    root: str
    point: str
    fstype: str
    super_options: frozenset[str]


@dataclass(frozen=True, slots=True)
class CgroupPaths:
    """Where this process's memory cgroup lives, resolved once.

    Attributes:
        version: 1 (the v1 memory controller) or 2 (the unified hierarchy).
        cgroup_path: the path as ``/proc/self/cgroup`` names it, e.g. "/kubepods/pod1/ctr".
        directory: the own cgroup's directory, already joined with the filesystem root.
        limit_directories: where to read limits: v2, the own directory and its parents up to the
            mount point that have a ``memory.max`` (own first); v1, the own directory only.
        unified_directory: the own cgroup's directory in the v2 hierarchy (also on hybrid hosts,
            where PSI is still tracked there), or ``None`` without a cgroup2 mount.
    """

    version: Literal[1, 2]
    cgroup_path: str
    directory: str
    limit_directories: tuple[str, ...]
    unified_directory: str | None


@dataclass(frozen=True, slots=True)
class CgroupLimit:
    """A cgroup limit read now.

    Attributes:
        limit_bytes: the smallest limit found, bytes (> 0), or ``None`` for no limit.
        directory: the cgroup directory whose limit that is (its usage is what the limit
            constrains), or ``None`` for no limit.
        errors: one message per file that could not be read or parsed (those were skipped).
    """

    limit_bytes: int | None
    directory: str | None
    errors: tuple[str, ...] = ()


# --- parsing (pure) -----------------------------------------------------------------------


def parse_proc_cgroup(text: str) -> tuple[str | None, str | None]:
    """Parse ``/proc/self/cgroup``; return (v1 memory cgroup path, v2 cgroup path).

    Either is ``None`` when absent. Lines look like ``4:memory:/x``, ``5:cpu,memory:/x``
    (v1) and ``0::/x`` (v2). Raises :class:`ValueError` on a line of another shape.
    """
    v1_memory: str | None = None
    unified: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split(":", 2)  # the path itself may contain ':'
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].startswith("/"):
            raise ValueError(f"unexpected /proc/self/cgroup line: {line!r}")
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            unified = path
        elif "memory" in controllers.split(","):
            v1_memory = path
    return v1_memory, unified


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \040, \011, \012, \134.
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse ``/proc/self/mountinfo`` and return its cgroup and cgroup2 mounts, in order.

    Other mounts are ignored; a malformed cgroup line raises :class:`ValueError`.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "cgroup" not in line or "-" not in fields:
            continue
        sep = fields.index("-")  # optional fields (shared:N ...) come before the separator
        if sep < 6 or len(fields) < sep + 4:
            raise ValueError(f"unexpected mountinfo line: {line!r}")
        fstype = fields[sep + 1]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(fields[sep + 3].split(","))
        mounts.append(Mount(_unescape(fields[3]), _unescape(fields[4]), fstype, options))
    return mounts


def host_directory(mount: Mount, cgroup_path: str) -> str:
    """Map a path from ``/proc/self/cgroup`` to a directory under ``mount.point``.

    The path is relative to the hierarchy's root, the mount shows ``mount.root`` of it: strip
    that prefix. When the path is not under the mount's root (a cgroup namespace, or a process
    moved out of view), the mount point is the closest cgroup we can see.
    """
    root = mount.root.rstrip("/")
    path = cgroup_path.rstrip("/")
    if path == root:
        relative = ""
    elif path.startswith(root + "/"):
        relative = path[len(root) :]
    else:
        return mount.point
    return mount.point.rstrip("/") + relative if relative else mount.point


def parse_limit(text: str) -> int | None:
    """Parse a limit file (``memory.max``, ``memory.limit_in_bytes``); bytes or ``None``.

    "max", -1 and values >= :data:`PAGE_COUNTER_MAX` mean no limit. Raises
    :class:`ValueError` on anything else that is not a non-negative integer.
    """
    value = text.strip()
    if value == "max":
        return None
    number = int(value)
    if number == -1 or number >= PAGE_COUNTER_MAX:
        return None
    if number < 0:
        raise ValueError(f"negative memory limit: {number}")
    return number


def parse_stat(text: str) -> dict[str, int]:
    """Parse a ``memory.stat`` file (``key value`` lines) into a dict of integers."""
    stat = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key:
            stat[key] = int(value)
    return stat


def parse_psi_some_avg10(text: str) -> float:
    """Parse a PSI file (``some avg10=1.50 avg60=...``); the ``some avg10`` percent, 0-100."""
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind != "some":
            continue
        for item in rest.split():
            key, _, value = item.partition("=")
            if key == "avg10":
                return float(value)
    raise ValueError("no 'some avg10' in PSI file")


# --- resolution (once) --------------------------------------------------------------------


def _join(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def _pick_mount(mounts: list[Mount], cgroup_path: str) -> Mount | None:
    # Prefer the mount whose root holds the path (the longest such root); bind mounts of
    # sub-hierarchies appear beside the main one.
    def covers(m: Mount) -> bool:
        root = m.root.rstrip("/")
        return cgroup_path == root or cgroup_path.startswith(root + "/")

    covering = [m for m in mounts if covers(m)]
    if covering:
        return max(covering, key=lambda m: len(m.root))
    return mounts[0] if mounts else None


def _own_directory(root: str, mount: Mount, cgroup_path: str) -> str:
    directory = _join(root, host_directory(mount, cgroup_path))
    # A path that maps outside what is visible: the mount point is the nearest cgroup we see.
    return directory if os.path.isdir(directory) else _join(root, mount.point)


def _v2_limit_directories(root: str, mount: Mount, directory: str) -> tuple[str, ...]:
    # Walk up to the mount point; the root cgroup (and a cgroup without the memory controller)
    # has no memory.max, so only keep directories that have one.
    top = os.path.normpath(_join(root, mount.point))
    found = []
    current = os.path.normpath(directory)
    while True:
        if os.path.isfile(os.path.join(current, "memory.max")):
            found.append(current)
        if current == top or len(current) <= len(top):
            break
        current = os.path.dirname(current)
    return tuple(found)


def resolve(root: str = "/") -> CgroupPaths | None:
    """Find this process's memory cgroup under ``root``; ``None`` when there is none to see.

    ``None`` means no ``/proc/self/cgroup`` (not Linux, or no cgroups), or no memory cgroup
    mounted where we can see it. The v1 memory controller wins when it is mounted (hybrid
    hosts account memory there); otherwise the unified (v2) hierarchy. Raises
    :class:`OSError` / :class:`ValueError` when the files exist but cannot be read or parsed.
    """
    try:
        proc_cgroup = _read(_join(root, "proc/self/cgroup"))
    except FileNotFoundError:
        return None
    v1_path, v2_path = parse_proc_cgroup(proc_cgroup)
    mounts = parse_mountinfo(_read(_join(root, "proc/self/mountinfo")))
    v1_mounts = [m for m in mounts if m.fstype == "cgroup" and "memory" in m.super_options]
    v2_mounts = [m for m in mounts if m.fstype == "cgroup2"]

    unified_directory = None
    v2_mount = _pick_mount(v2_mounts, v2_path) if v2_path is not None else None
    if v2_mount is not None and v2_path is not None:
        unified_directory = _own_directory(root, v2_mount, v2_path)

    v1_mount = _pick_mount(v1_mounts, v1_path) if v1_path is not None else None
    if v1_mount is not None and v1_path is not None:
        directory = _own_directory(root, v1_mount, v1_path)
        return CgroupPaths(1, v1_path, directory, (directory,), unified_directory)
    if v2_mount is not None and v2_path is not None and unified_directory is not None:
        limits = _v2_limit_directories(root, v2_mount, unified_directory)
        return CgroupPaths(2, v2_path, unified_directory, limits, unified_directory)
    return None


def psi_candidates(root: str, paths: CgroupPaths | None) -> list[str]:
    """PSI files in order of preference: the own v2 cgroup's, then the host's; existing only."""
    candidates = []
    if paths is not None and paths.unified_directory is not None:
        candidates.append(os.path.join(paths.unified_directory, "memory.pressure"))
    candidates.append(_join(root, "proc/pressure/memory"))
    return [c for c in candidates if os.path.isfile(c)]


# --- reading (every sample) ---------------------------------------------------------------


def _read_v1_limit(directory: str) -> CgroupLimit:
    errors = []
    limits = []
    try:
        limits.append(parse_limit(_read(os.path.join(directory, "memory.limit_in_bytes"))))
    except (OSError, ValueError) as e:
        errors.append(f"{directory}/memory.limit_in_bytes: {e}")
    try:
        stat = parse_stat(_read(os.path.join(directory, "memory.stat")))
        # Absent when the kernel does not account hierarchically: not an error.
        if "hierarchical_memory_limit" in stat:
            limits.append(parse_limit(str(stat["hierarchical_memory_limit"])))
    except (OSError, ValueError) as e:
        errors.append(f"{directory}/memory.stat: {e}")
    found = [limit for limit in limits if limit is not None]
    if not found:
        return CgroupLimit(None, None, tuple(errors))
    return CgroupLimit(min(found), directory, tuple(errors))


def _read_v2_limit(directories: tuple[str, ...]) -> CgroupLimit:
    errors = []
    best: tuple[int, str] | None = None
    for directory in directories:
        try:
            limit = parse_limit(_read(os.path.join(directory, "memory.max")))
        except (OSError, ValueError) as e:
            errors.append(f"{directory}/memory.max: {e}")
            continue
        if limit is not None and (best is None or limit < best[0]):
            best = (limit, directory)
    if best is None:
        return CgroupLimit(None, None, tuple(errors))
    return CgroupLimit(best[0], best[1], tuple(errors))


def read_limit(paths: CgroupPaths) -> CgroupLimit:
    """Read the cgroup memory limit now; never raises (failed files go in ``errors``).

    v2: the smallest ``memory.max`` from the own cgroup up to the mount point. v1: the smaller
    of ``memory.limit_in_bytes`` and ``hierarchical_memory_limit`` (``memory.stat``). A file
    that fails is skipped, so the limit is the smallest of those that could be read.
    """
    if paths.version == 1:
        return _read_v1_limit(paths.directory)
    return _read_v2_limit(paths.limit_directories)


def read_working_set(version: Literal[1, 2], directory: str) -> int:
    """The cgroup's working set now, bytes (>= 0): usage minus inactive file cache.

    As kubelet counts it (what the OOM killer weighs): v2 ``memory.current`` minus
    ``inactive_file``; v1 ``memory.usage_in_bytes`` minus ``total_inactive_file``. Raises
    :class:`OSError` / :class:`ValueError` on unreadable or incomplete files.
    """
    usage_file, inactive_key = (
        ("memory.current", "inactive_file")
        if version == 2
        else ("memory.usage_in_bytes", "total_inactive_file")
    )
    usage = int(_read(os.path.join(directory, usage_file)).strip())
    stat = parse_stat(_read(os.path.join(directory, "memory.stat")))
    if inactive_key not in stat:
        raise ValueError(f"{directory}/memory.stat has no {inactive_key}")
    return max(0, usage - stat[inactive_key])


def read_psi_some_avg10(path: str) -> float:
    """Read memory PSI ``some avg10`` from ``path``: percent of time stalled, 0-100."""
    return parse_psi_some_avg10(_read(path))
