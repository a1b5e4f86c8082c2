"""Monitors: where memory readings come from.

A probe only reports; it never decides. ``Probe.read(budget_bytes)`` returns a :class:`Reading`
or raises (the guard counts the failure and holds its level: a failed read is never a zero).
Sources that fail inside a reading (PSI, cgroup files) are skipped and named in
``Reading.failed_sources`` instead.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import psutil

from . import _cgroup
from ._gcpause import GcPauseMonitor
from ._live import LiveMeter


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of a probe.

    Attributes:
        used_bytes: memory in use, bytes (RSS, or the cgroup working set when the cgroup binds).
        capacity_bytes: effective capacity, bytes: min(budget, cgroup limit, physical memory).
        psi_some_avg10: memory PSI ``some avg10`` (percent, 0-100) or ``None`` if unreadable.
        gc_pause_p99_ms: p99 GC pause over the window, milliseconds, or ``None`` if no pauses.
        alloc_rate_bytes_per_sec: a growth rate the probe measured itself; ``None`` lets the
            guard estimate it from successive ``used_bytes``.
        failed_sources: names of sources that failed during this reading (counted by the guard).
        live_bytes: memory the program holds, bytes, or ``None`` where unknown (design §3).
            The guard treats a value above ``used_bytes`` as unknown (and counts it).
        live_source: where ``live_bytes`` comes from, e.g. ``"pymalloc+mallinfo2"``.
        limit_bytes: the hard limit the kernel enforces (the cgroup memory limit), bytes, or
            ``None`` without one; the budget is not a hard limit.
    """

    used_bytes: int
    capacity_bytes: int
    psi_some_avg10: float | None = None
    gc_pause_p99_ms: float | None = None
    alloc_rate_bytes_per_sec: float | None = None
    failed_sources: tuple[str, ...] = ()
    live_bytes: int | None = None
    live_source: str = ""
    limit_bytes: int | None = None


@runtime_checkable
class Probe(Protocol):
    """A source of memory readings (a *monitor* in Envoy's terms)."""

    def read(self, budget_bytes: int) -> Reading:
        """Read memory now; ``budget_bytes`` is the contract's budget. May raise."""
        ...

    def close(self) -> None:
        """Release what the probe installed (e.g. ``gc.callbacks`` hooks)."""
        ...


@runtime_checkable
class LiveWatch(Protocol):
    """A probe whose live-memory reads follow the level (the guard tells it on each change)."""

    def watch_live(self, level: int) -> None:
        """The level in force is now ``level`` (0-3): read live memory more closely at >= 2."""
        ...


_log = logging.getLogger("memcontract.probe")


class SystemProbe:
    """The real probe: this process's memory against the contract, the cgroup and the host.

    ``read(budget_bytes)`` reports ``capacity_bytes = min(budget, cgroup limit, physical
    memory)``; ``used_bytes`` is the process RSS, or the cgroup's working set (usage minus
    inactive file cache, as kubelet and the OOM killer count it) when the cgroup limit is the
    smallest of the three. It also reports memory PSI ``some avg10`` (the own v2 cgroup's, else
    the host's) and the p99 GC pause, from a ``gc.callbacks`` hook installed here, and live
    memory where it can be read (:mod:`memcontract._live`: pymalloc blocks + glibc in use;
    ``describe()["live_unknown"]`` says why not elsewhere).

    Cgroup paths are resolved once, when built (and again every ``refresh_every`` seconds if
    set); a read only opens the few small files they name. Only the RSS read may raise; a
    failing cgroup or PSI file is skipped, named in ``Reading.failed_sources`` ("cgroup",
    "psi") and logged once per source on the ``memcontract.probe`` logger.

    ``root`` is the filesystem root the ``/proc`` and ``/sys`` files are read under: "/" in
    production, a fixture tree in tests.

    >>> with SystemProbe() as probe:
    ...     reading = probe.read(512 * 1024 * 1024)
    >>> 0 < reading.used_bytes and reading.capacity_bytes <= 512 * 1024 * 1024
    True
    """

    def __init__(
        self, *, root: str = "/", refresh_every: float | None = None, slow_every: float = 2.0
    ) -> None:
        if refresh_every is not None and refresh_every <= 0:
            raise ValueError(f"refresh_every must be positive seconds, got {refresh_every}")
        self._root = root
        self._refresh_every = refresh_every
        # The cgroup limit rarely changes and PSI avg10 is a 10 s average: re-reading them every
        # sample would be most of the sampler's CPU, so they are cached for `slow_every` seconds.
        self._slow_every = slow_every
        self._slow: tuple[float, _cgroup.CgroupLimit, float | None, tuple[str, ...]] | None = None
        self._process = psutil.Process()
        self._statm_fd = _open_statm(root)
        self._physical_bytes = psutil.virtual_memory().total
        self._logged: set[str] = set()
        self._resolve()
        self._gc = GcPauseMonitor()
        self._live = LiveMeter(root=root)
        _LIVE_PROBES.add(self)

    def watch_live(self, level: int) -> None:
        """Read glibc's part of live memory every sample at level 2 and above (see
        :mod:`memcontract._live` for its cost), at most every few seconds below."""
        self._live.watch(level >= 2)

    def _after_fork_in_child(self) -> None:
        # The descriptor names the parent's /proc/<pid>/statm (it was resolved when opened),
        # and psutil's Process the parent's pid: a child would read its parent's memory.
        fd, self._statm_fd = self._statm_fd, None
        if fd is not None:
            os.close(fd)
            self._statm_fd = _open_statm(self._root)
        self._process = psutil.Process()
        self._slow = None

    def _resolve(self) -> None:
        self._cgroup: _cgroup.CgroupPaths | None = None
        self._cgroup_error: str | None = None
        try:
            self._cgroup = _cgroup.resolve(self._root)
        except (OSError, ValueError) as e:
            # Keep going without a cgroup limit; every read names "cgroup" as failed.
            self._cgroup_error = f"cannot resolve the cgroup: {e}"
        # The first candidate that parses now; if none does, the first that exists, so its
        # failures are reported. No candidate at all (no PSI in this kernel): not a source.
        candidates = _cgroup.psi_candidates(self._root, self._cgroup)
        self._psi_file = next((c for c in candidates if _psi_ok(c)), None)
        if self._psi_file is None and candidates:
            self._psi_file = candidates[0]
        self._resolved_at = time.monotonic()

    @property
    def cgroup_version(self) -> int | None:
        """1 or 2, the cgroup hierarchy the limit is read from; ``None`` without one."""
        return None if self._cgroup is None else self._cgroup.version

    @property
    def cgroup_path(self) -> str | None:
        """The own cgroup as ``/proc/self/cgroup`` names it, or ``None``."""
        return None if self._cgroup is None else self._cgroup.cgroup_path

    @property
    def cgroup_limit_bytes(self) -> int | None:
        """The cgroup memory limit read now, bytes, or ``None`` (no limit, or none readable)."""
        return None if self._cgroup is None else _cgroup.read_limit(self._cgroup).limit_bytes

    @property
    def physical_bytes(self) -> int:
        """Physical memory of the host, bytes (read once, when built)."""
        return self._physical_bytes

    def describe(self) -> dict[str, object]:
        """A short summary for ``memcontract probe``: cgroup version, path, limit, physical."""
        return {
            "cgroup_version": self.cgroup_version,
            "cgroup_path": self.cgroup_path,
            "cgroup_directory": None if self._cgroup is None else self._cgroup.directory,
            "cgroup_limit_bytes": self.cgroup_limit_bytes,
            "cgroup_error": self._cgroup_error,
            "physical_bytes": self._physical_bytes,
            "psi_source": self._psi_file,
            "live_source": self._live.source,
            "live_unknown": self._live.reason,
        }

    def read(self, budget_bytes: int) -> Reading:
        """Read memory now against ``budget_bytes``; raises only if the RSS cannot be read."""
        rss = self._read_rss()  # may raise: the guard counts it, holds its level
        if self._refresh_every is not None:
            self._maybe_refresh(self._refresh_every)
        limit, psi, slow_failed = self._read_slow_sources()
        failed = list(slow_failed)
        capacity = min(budget_bytes, self._physical_bytes)
        used = rss
        # The cgroup binds only when strictly smaller: on a tie the budget (or the host) is the
        # tighter constraint on this process alone, so RSS is the measure.
        if limit.limit_bytes is not None and limit.limit_bytes < capacity:
            capacity = limit.limit_bytes
            used = self._read_working_set(limit, rss, failed)
        live = self._live.read()
        if live is not None and live > used:
            self._live.doubt()  # the guard drops this reading; the next calibration mends it
        return Reading(
            used_bytes=used,
            capacity_bytes=capacity,
            psi_some_avg10=psi,
            gc_pause_p99_ms=self._gc.p99_ms(),
            failed_sources=tuple(failed),
            live_bytes=live,
            live_source=self._live.source,
            limit_bytes=limit.limit_bytes,
        )

    def _read_rss(self) -> int:
        """Resident bytes as psutil counts them on Linux (statm resident pages x page size).

        The statm file stays open and is re-read with one ``pread``: psutil opens and closes
        it on every call, which was most of a cold sample's cost. Elsewhere, psutil itself.
        """
        if self._statm_fd is None:
            rss: int = self._process.memory_info().rss
            return rss
        return int(os.pread(self._statm_fd, 256, 0).split()[1]) * _PAGE_SIZE

    def _read_slow_sources(self) -> tuple[_cgroup.CgroupLimit, float | None, tuple[str, ...]]:
        """The cgroup limit and PSI, re-read at most every ``slow_every`` seconds."""
        now = time.monotonic()
        if self._slow is None or now - self._slow[0] >= self._slow_every:
            failed: list[str] = []
            limit = self._read_cgroup_limit(failed)
            psi = self._read_psi(failed)
            self._slow = (now, limit, psi, tuple(failed))
        return self._slow[1], self._slow[2], self._slow[3]

    def _maybe_refresh(self, every: float) -> None:
        # Re-resolving picks up a process moved to another cgroup, or a cgroup that failed.
        if time.monotonic() - self._resolved_at >= every:
            self._resolve()
            self._slow = None

    def _read_cgroup_limit(self, failed: list[str]) -> _cgroup.CgroupLimit:
        if self._cgroup_error is not None:
            self._fail("cgroup", self._cgroup_error, failed)
        if self._cgroup is None:
            return _cgroup.CgroupLimit(None, None)
        limit = _cgroup.read_limit(self._cgroup)
        if limit.errors:
            self._fail("cgroup", "; ".join(limit.errors), failed)
        return limit

    def _read_working_set(self, limit: _cgroup.CgroupLimit, rss: int, failed: list[str]) -> int:
        # The usage that counts is that of the cgroup whose limit binds (maybe a parent).
        if self._cgroup is None or limit.directory is None:
            return rss
        try:
            return _cgroup.read_working_set(self._cgroup.version, limit.directory)
        except (OSError, ValueError) as e:
            # The limit still binds; RSS is the best lower bound of what the cgroup holds.
            self._fail("cgroup", f"cannot read the working set: {e}", failed)
            return rss

    def _read_psi(self, failed: list[str]) -> float | None:
        if self._psi_file is None:
            return None
        try:
            return _cgroup.read_psi_some_avg10(self._psi_file)
        except (OSError, ValueError) as e:
            self._fail("psi", f"{self._psi_file}: {e}", failed)
            return None

    def _fail(self, source: str, detail: str, failed: list[str]) -> None:
        if source not in failed:
            failed.append(source)
        if source not in self._logged:
            self._logged.add(source)
            _log.warning(
                "memory probe source %r skipped (%s); further failures of it are not logged",
                source,
                detail,
            )

    def close(self) -> None:
        """Remove the ``gc.callbacks`` hook and close the statm file; idempotent. Reads still
        work afterwards (through psutil)."""
        self._gc.close()
        fd, self._statm_fd = self._statm_fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> SystemProbe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_LIVE_PROBES: weakref.WeakSet[SystemProbe] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for probe in list(_LIVE_PROBES):
        probe._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _psi_ok(path: str) -> bool:
    try:
        _cgroup.read_psi_some_avg10(path)
    except (OSError, ValueError):
        return False
    return True


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _open_statm(root: str) -> int | None:
    """A descriptor on ``<root>/proc/self/statm``, or ``None`` where there is none."""
    try:
        return os.open(os.path.join(root, "proc/self/statm"), os.O_RDONLY)
    except OSError:
        return None
