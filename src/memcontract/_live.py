"""Live memory of this Python process: what its objects hold, not what the allocators retain.

``live = sys.getallocatedblocks() x bytes per block`` (pymalloc's small objects, read every
sample: one counter) ``+ mallinfo2().uordblks + mallinfo2().hblkhd`` (glibc: bytes in use in
its arenas plus mmapped big blocks: objects over 512 bytes, buffers, C extensions).

*Bytes per block* is calibrated from pymalloc's own statistics ("bytes in allocated blocks" over
the blocks in use of every size class, as ``sys._debugmallocstats()`` prints them), which
CPython's ``_PyObject_DebugMallocStats`` writes to a ``FILE`` of ours (glibc's
``open_memstream``: a buffer in memory; descriptor 2 is never touched, so lines other threads
write to stderr meanwhile neither mix in nor move its offset): when the meter is built, then at
most every :data:`CALIBRATE_EVERY` seconds (every :data:`DOUBT_EVERY` while reads come out above
used memory), on the walking thread below, before its next walk.
While an allocation hook stands in front of pymalloc (``tracemalloc``, which the guard starts
to sample allocations at level 2), CPython prints nothing: the previous calibration stays.

``mallinfo2`` walks glibc's free lists under each arena's lock: microseconds on a compact heap,
~20 ms with 100,000 free chunks (bench/live_read.py). A walk whose last run took less than
:data:`INLINE_WALK` runs on the sampler's thread (a compact heap: the sample reads it fresh); a
slower one runs on a long-lived thread of its own (started on first use and again after a fork),
which the sampler wakes and does not wait for: it reads the last finished walk's bytes, so
glibc's part is then one walk old (one sample at level 2 and above) while pymalloc's is read
now. Walks start every sample only at level 2 and above, otherwise at most every
:data:`GLIBC_EVERY` seconds; and never more often than :data:`COST_FACTOR` times the last walk's
cost (an arena locked 0.2 % of the time at most), at any level.

Live memory is unknown (``None``, never used to leave level 3) where the numbers would lie:
no glibc ``mallinfo2`` (musl, macOS, Windows, glibc < 2.33), pymalloc off
(``PYTHONMALLOC=malloc``: ``getallocatedblocks()`` is 0), another allocator preloaded
(jemalloc, tcmalloc, mimalloc in ``LD_PRELOAD`` or mapped in ``/proc/self/maps``), or a
free-threaded build (its mimalloc heaps are neither).
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from typing import Any, cast

SOURCE = "pymalloc+mallinfo2"
#: Seconds between two glibc reads below level 2 (the last value is reused in between).
GLIBC_EVERY = 5.0
#: A glibc read waits at least this many times its last cost (0.2 % of the time at most).
COST_FACTOR = 500.0
#: A walk whose last run took less than this (seconds: a compact heap) runs on the sampler's
#: thread, so the sample reads a fresh value (a stale one, up to GLIBC_EVERY old, would skew the
#: calm gap taken from it); a slower one runs on the walking thread.
INLINE_WALK = 0.0002
#: Seconds between two calibrations of the bytes per pymalloc block: the mix of object sizes
#: drifts (a calibration walks pymalloc's pools with the GIL held: 1.3 ms with 500 MiB of
#: small objects).
CALIBRATE_EVERY = 30.0
#: Seconds between two calibrations asked for by a read above used memory.
DOUBT_EVERY = 5.0

_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")
_BYTES_IN_BLOCKS = re.compile(r"^# bytes in allocated blocks\s*=\s*([0-9,]+)\s*$")
_CLASS_ROW = re.compile(r"^\s*\d+\s+\d+\s+\d+\s+(\d+)\s+\d+\s*$")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@functools.cache
def _mallinfo2() -> Callable[[], _Mallinfo2] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):  # musl, glibc < 2.33
        return None
    function.argtypes = []
    function.restype = _Mallinfo2
    return cast(Callable[[], _Mallinfo2], function)


def unknown_reason(root: str = "/") -> str | None:
    """Why live memory cannot be read in this process, or ``None`` where it can."""
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "free-threaded build"
    if sys.getallocatedblocks() == 0 or os.environ.get("PYTHONMALLOC", "").startswith("malloc"):
        return "pymalloc is off (PYTHONMALLOC=malloc)"
    preloaded = os.environ.get("LD_PRELOAD", "")
    for name in _OTHER_ALLOCATORS:
        if name in preloaded:
            return f"{name} is preloaded"
    mapped = _mapped_allocator(root)
    if mapped is not None:
        return f"{mapped} is mapped"
    if _mallinfo2() is None:
        return "no glibc mallinfo2"
    return None


def _mapped_allocator(root: str) -> str | None:
    try:
        with open(os.path.join(root, "proc/self/maps")) as maps:
            text = maps.read()
    except OSError:
        return None
    return next((f"lib{n}" for n in _OTHER_ALLOCATORS if f"lib{n}" in text), None)


def bytes_per_block() -> float | None:
    """pymalloc's mean block size now; None where its statistics cannot be read or parsed."""
    text = _malloc_stats()
    if text is None:
        return None
    in_blocks = None
    blocks = 0
    for line in text.splitlines():
        row = _CLASS_ROW.match(line)
        if row:
            blocks += int(row.group(1))
            continue
        total = _BYTES_IN_BLOCKS.match(line)
        if total:
            in_blocks = int(total.group(1).replace(",", ""))
    if in_blocks is None or blocks == 0:
        return None
    return in_blocks / blocks


@functools.cache
def _stats_functions() -> tuple[Any, Any, Any, Any] | None:
    """CPython's ``_PyObject_DebugMallocStats`` and glibc's ``open_memstream``, ``fclose`` and
    ``free``, typed once; ``None`` where one is missing (not CPython, or not glibc)."""
    try:
        stats = ctypes.pythonapi._PyObject_DebugMallocStats  # a PyDLL call: the GIL is held
        libc = ctypes.CDLL(None)
        open_memstream, fclose, free = libc.open_memstream, libc.fclose, libc.free
    except AttributeError:
        return None
    open_memstream.restype = ctypes.c_void_p
    open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
    stats.argtypes = fclose.argtypes = free.argtypes = [ctypes.c_void_p]
    stats.restype = fclose.restype = ctypes.c_int
    free.restype = None
    return stats, open_memstream, fclose, free


def _malloc_stats() -> str | None:
    """What ``_PyObject_DebugMallocStats`` writes, through a memory stream of glibc's."""
    functions = _stats_functions()
    if functions is None:
        return None
    stats, open_memstream, fclose, free = functions
    buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = open_memstream(ctypes.byref(buffer), ctypes.byref(size))
    if not stream:
        return None
    try:
        stats(stream)
    finally:
        fclose(stream)  # sets buffer and size
    try:
        return ctypes.string_at(buffer, size.value).decode("utf-8", "replace")
    finally:
        free(buffer)


class _GlibcWalker:
    """The thread that walks glibc's arenas when woken; ``done`` is set while it is idle."""

    def __init__(self, walk: Callable[[], None]) -> None:
        self._walk = walk
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self.done = threading.Event()
        self.done.set()

    def walking(self) -> bool:
        return not self.done.is_set() and self._alive()

    def start(self) -> None:
        """Wake the thread for one walk (it is started first where it does not run)."""
        if not self._alive():  # first use, or this is a forked child: the thread is gone
            self._wake, self.done = threading.Event(), threading.Event()
            self._thread = threading.Thread(
                target=self._run, name="memcontract-mallinfo2", daemon=True
            )
            self._thread.start()
        else:
            self.done.clear()
        self._wake.set()

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        wake, done = self._wake, self.done
        while True:
            wake.wait()
            wake.clear()
            try:
                self._walk()
            finally:
                done.set()


class LiveMeter:
    """Reads this process's live bytes (see the module docstring); ``read()`` never raises."""

    def __init__(self, *, root: str = "/", clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.reason = unknown_reason(root)
        self._mallinfo2 = None if self.reason is not None else _mallinfo2()
        self.bytes_per_block = 0.0
        self._calibrated_at = -CALIBRATE_EVERY
        self.glibc_every = GLIBC_EVERY
        self.last_cost = 0.0
        self._glibc = 0  # bytes in use at the last finished walk
        self._walk_started = 0.0  # clock time
        self.walker = _GlibcWalker(self._walker_job)
        self._calibrate_next = False  # on the walking thread, before its next walk
        if self.reason is None:
            self.calibrate()
            self._glibc_walk()
            self._walk_started = self._clock()

    @property
    def source(self) -> str:
        """The source name, or empty where live memory is unknown."""
        return "" if self.reason is not None else SOURCE

    def calibrate(self) -> None:
        """Measure the bytes per pymalloc block now. No statistics keep the previous value (an
        allocation hook hides pymalloc's); none at the first calibration make live unknown."""
        measured = bytes_per_block()
        self._calibrated_at = self._clock()
        if measured is not None:
            self.bytes_per_block = measured
        elif not self.bytes_per_block:
            self.reason = "pymalloc's statistics did not parse"

    def doubt(self) -> None:
        """The last read was more than used memory (the block size is stale: a spike's objects
        are seldom the size of those at the last calibration): calibrate again before the
        next walk, at most every :data:`DOUBT_EVERY` seconds."""
        if self._clock() - self._calibrated_at >= DOUBT_EVERY:
            self._calibrate_next = True

    def watch(self, closely: bool) -> None:
        """``closely`` (level 2 and above): glibc every sample."""
        self.glibc_every = 0.0 if closely else GLIBC_EVERY

    def read(self) -> int | None:
        """Live bytes now, or ``None`` where unknown."""
        if self.reason is not None or self._mallinfo2 is None:
            return None
        now = self._clock()
        if now - self._calibrated_at >= CALIBRATE_EVERY:
            self._calibrate_next = True
        glibc = self._glibc_bytes(now)
        return round(sys.getallocatedblocks() * self.bytes_per_block) + glibc

    def _glibc_bytes(self, now: float) -> int:
        """glibc's bytes in use at the last finished walk; a walk is started if one is due."""
        due = max(self.glibc_every, COST_FACTOR * self.last_cost)
        if not self.walker.walking() and now - self._walk_started >= due:
            self._walk_started = now
            if self.last_cost < INLINE_WALK and not self._calibrate_next:
                self._glibc_walk()  # a compact heap: here, and this sample reads it fresh
            else:
                self.walker.start()
        return self._glibc

    def _walker_job(self) -> None:
        if self._calibrate_next:
            self._calibrate_next = False
            self.calibrate()
        self._glibc_walk()

    def _glibc_walk(self) -> None:
        assert self._mallinfo2 is not None
        start = time.perf_counter()
        info = self._mallinfo2()
        self.last_cost = time.perf_counter() - start
        self._glibc = int(info.uordblks) + int(info.hblkhd)
