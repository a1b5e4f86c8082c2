"""Allocation reports (docs/design.md §4, level 2): the top allocation sites by growth since tracing
started, from a ``tracemalloc`` snapshot diff, without tracemalloc's, importlib's or
memcontract's own frames.

A report is built off the sampler (:class:`memcontract.actions.SampleAllocations` runs it on a
worker thread) and its cost is bounded: ``Snapshot.statistics`` groups every trace in Python
(45 s for 2.2 M traces on a loaded 2-core machine), so :func:`take_report` groups at most
``max_traces`` traces, an evenly spaced sample of them, and scales the sums up (an estimate,
marked as such).

>>> report = AllocationReport(level=2, sites=(AllocationSite("app/cache.py:41", 3 << 20, 9),),
...                           traced=9, examined=9)
>>> report.format().split(": ", 1)[1]
'app/cache.py:41 +3.0 MiB (9 blocks)'
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import math
import os
import sys
import time
import tracemalloc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@functools.cache
def own_files() -> tuple[str, ...]:
    """Path prefixes of frames that say nothing about the application: the tracer's, the
    import system's, ours (the core and the interceptors, wherever they are installed)."""
    ours = [os.path.dirname(os.path.abspath(__file__))]
    spec = importlib.util.find_spec("memcontract.interceptors")  # located, not imported
    if spec is not None and spec.submodule_search_locations:
        ours.extend(os.path.abspath(p) for p in spec.submodule_search_locations)
    return (
        *(p + os.sep for p in ours),
        os.path.abspath(tracemalloc.__file__),
        "<frozen importlib",
        os.path.join(os.path.dirname(os.path.abspath(os.__file__)), "importlib") + os.sep,
    )


Sites = dict[str, list[int]]  # location -> [bytes, blocks]

#: Seconds tracing started by :func:`start_tracing` lasts at least (four of CPython's GIL
#: switch intervals; a window normally lasts a sample interval).
MIN_WINDOW = 0.02
_PYMEM_DOMAIN_RAW = 0


class _Allocator(ctypes.Structure):  # PyMemAllocatorEx
    _fields_ = [(name, ctypes.c_void_p) for name in ("ctx", "malloc", "calloc", "realloc", "free")]


@functools.cache
def _allocator_functions() -> tuple[Any, Any] | None:
    """CPython's ``PyMem_GetAllocator`` and ``PyMem_SetAllocator``, as prototypes of our own
    (``ctypes.pythonapi``'s shared function objects may carry another library's argtypes);
    PYFUNCTYPE: called with the GIL held."""
    prototype = ctypes.PYFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(_Allocator))
    try:
        get = prototype(("PyMem_GetAllocator", ctypes.pythonapi))
        put = prototype(("PyMem_SetAllocator", ctypes.pythonapi))
    except AttributeError:  # not CPython
        return None
    return get, put


def start_tracing(frames: int) -> None:
    """``tracemalloc.start(frames)`` without its hook on the raw domain.

    That hook takes the GIL from threads that do not hold it (``os.getcwd()``, a C thread
    calling into Python), and a thread waiting there while another stops tracemalloc
    dereferences a freed traceback: a segfault on CPython before 3.12.9 and 3.13.2
    (python/cpython#128679; tests/test_guard.py reproduces it). The domains the reports read,
    objects and ``PyMem_Malloc``, are only called with the GIL held, as ``stop()`` is.

    What is left: a thread can still enter the raw hook between ``start()`` and the hook's
    removal (a few bytecodes, with the switch interval raised so the GIL is not handed over
    there), and would crash only if it still waited for the GIL when tracing stops, a sample
    interval later and at least :data:`MIN_WINDOW`. Unlikely, not impossible.
    """
    functions = _allocator_functions()
    if functions is None:
        tracemalloc.start(frames)
        return
    get, put = functions
    raw = _Allocator()
    get(_PYMEM_DOMAIN_RAW, ctypes.byref(raw))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)  # no GIL hand-over between start() and the hook's removal
    try:
        tracemalloc.start(frames)
        try:
            put(_PYMEM_DOMAIN_RAW, ctypes.byref(raw))  # stop() puts back this same allocator
        except BaseException:
            tracemalloc.stop()
            raise
    finally:
        sys.setswitchinterval(interval)


@dataclass(frozen=True, slots=True)
class AllocationSite:
    """One source line and what it allocated since tracing started.

    Attributes:
        location: ``path:line``, the path relative to the project (the working directory),
            site-packages or the standard library.
        size_bytes: growth in bytes (> 0; an estimate when the report was sampled).
        blocks: growth in allocated blocks.
    """

    location: str
    size_bytes: int
    blocks: int


@dataclass(frozen=True, slots=True)
class AllocationReport:
    """The top allocation sites when a level was entered.

    Attributes:
        level: the level entered (2 or 3).
        sites: the top sites, largest growth first.
        traced: traces in the snapshot.
        examined: traces grouped (fewer than ``traced``: the sizes are scaled estimates).
        taken_at: Unix seconds.
        seconds: wall time the report took (snapshot and grouping).
    """

    level: int
    sites: tuple[AllocationSite, ...]
    traced: int
    examined: int
    taken_at: float = 0.0
    seconds: float = 0.0

    def format(self) -> str:
        """The report as one log line."""
        sites = "; ".join(
            f"{s.location} +{format_bytes(s.size_bytes)} ({s.blocks} blocks)" for s in self.sites
        )
        traces = (
            f"estimated from {self.examined} of {self.traced} traces"
            if self.examined < self.traced
            else f"{self.traced} traces"
        )
        return (
            f"top allocation sites at level {self.level} (growth since sampling started; "
            f"{traces}, {self.seconds * 1000:.0f} ms): {sites or 'none'}"
        )


def format_bytes(size: int) -> str:
    """``512 B``, ``12.3 KiB``, ``4.5 MiB``: never rounds a non-zero size to 0.0."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1048576:.1f} MiB"


def relative(path: str, roots: Sequence[str]) -> str:
    """``path`` relative to the longest of ``roots`` that holds it, else unchanged."""
    for root in roots:
        if path.startswith(root):
            return path[len(root) :]
    return path


def search_roots() -> tuple[str, ...]:
    """The working directory and ``sys.path`` directories, longest first, each ending in /."""
    dirs = {os.getcwd(), *(p for p in sys.path if p and os.path.isdir(p))}
    return tuple(sorted((os.path.abspath(d) + os.sep for d in dirs), key=len, reverse=True))


def group_sites(snapshot: tracemalloc.Snapshot, max_traces: int) -> tuple[Sites, int, int]:
    """Sum the snapshot's traces by their innermost non-own frame; (sites, traced, examined).

    At most ``max_traces`` evenly spaced traces are read; their sums are scaled to the whole.
    """
    traces = snapshot.traces
    traced = len(traces)
    stride = max(1, math.ceil(traced / max(1, max_traces)))
    sites: Sites = {}
    examined = 0
    for i in range(0, traced, stride):
        trace = traces[i]
        examined += 1
        location = _site(trace.traceback)
        if location is None:
            continue
        entry = sites.setdefault(location, [0, 0])
        entry[0] += trace.size * stride
        entry[1] += stride
    return sites, traced, examined


def _site(traceback: Iterable[tracemalloc.Frame]) -> str | None:
    own = own_files()
    for frame in reversed(list(traceback)):  # the most recent frame is last
        if not frame.filename.startswith(own):
            return f"{frame.filename}:{frame.lineno}"
    return None


def take_report(
    level: int,
    snapshot: tracemalloc.Snapshot,
    baseline: Sites,
    *,
    top: int = 5,
    max_traces: int = 50_000,
) -> AllocationReport:
    """The ``top`` sites of ``snapshot`` by growth over ``baseline`` (sites of an earlier one)."""
    start = time.perf_counter()
    sites, traced, examined = group_sites(snapshot, max_traces)
    growth = []
    for location, (size, blocks) in sites.items():
        before = baseline.get(location, (0, 0))
        if size > before[0]:
            growth.append((size - before[0], max(0, blocks - before[1]), location))
    roots = search_roots()
    best = sorted(growth, reverse=True)[:top]
    return AllocationReport(
        level=level,
        sites=tuple(AllocationSite(relative(loc, roots), size, n) for size, n, loc in best),
        traced=traced,
        examined=examined,
        taken_at=time.time(),
        seconds=time.perf_counter() - start,
    )
