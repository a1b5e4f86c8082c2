"""Live memory of this Python process: what its objects hold, not what the allocators retain.

``live = sys.getallocatedblocks() x bytes per block`` (pymalloc's small objects, read every
sample: one counter) ``+ mallinfo2().uordblks + mallinfo2().hblkhd`` (glibc: bytes in use in
its arenas plus mmapped big blocks: objects over 512 bytes, buffers, C extensions).

*Bytes per block* is calibrated from ``sys._debugmallocstats()`` ("bytes in allocated blocks"
over the blocks in use of every size class): when the meter is built, and again at most every
:data:`CALIBRATE_EVERY` seconds while the ladder is at level 2 or above (where the exit from
level 3 is decided). The call prints to file descriptor 2, which is pointed at a temporary
file for the ~0.3 ms it takes; anything else written there meanwhile is written back.

``mallinfo2`` walks glibc's free lists under each arena's lock: microseconds on a compact heap,
~20 ms with 100,000 free chunks (bench/live_read.py). So the walk runs on a thread of its own:
the sampler starts it and waits at most :data:`WALK_WAIT` seconds for it; a walk that takes longer
finishes on its own and the sampler uses it at its next read (until then, the previous walk's
value). Walks start every sample only at level 2 and above, otherwise at most every
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
import os
import re
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from typing import cast

SOURCE = "pymalloc+mallinfo2"
#: Seconds between two glibc reads below level 2 (the last value is reused in between).
GLIBC_EVERY = 5.0
#: A glibc read waits at least this many times its last cost (0.2 % of the time at most).
COST_FACTOR = 500.0
#: Seconds the sampler waits for a glibc walk it started (a slower one is used next sample).
WALK_WAIT = 0.0005
#: Seconds between two calibrations of the bytes per pymalloc block (level 2 and above).
CALIBRATE_EVERY = 60.0

_OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")
_BYTES_IN_BLOCKS = re.compile(r"^# bytes in allocated blocks\s*=\s*([0-9,]+)\s*$")
_CLASS_ROW = re.compile(r"^\s*\d+\s+\d+\s+\d+\s+(\d+)\s+\d+\s*$")
_STATS_LINE = re.compile(
    r"^(\s*$|\s*\d+(\s+\d+){4}\s*$|#|Total\s|-----|class\s|Small block|arena map|"
    r"\d+ free |.*=\s*[0-9,]+\s*$)"
)


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
    """pymalloc's mean block size now, from ``sys._debugmallocstats()``; None if unparsable."""
    text = _debugmallocstats()
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


def _debugmallocstats() -> str:
    """What ``sys._debugmallocstats()`` prints to descriptor 2; foreign lines written back."""
    sys.stderr.flush()
    capture = _scratch_fd()
    try:
        saved = os.dup(2)
        try:
            os.dup2(capture, 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        size = os.lseek(capture, 0, os.SEEK_CUR)
        text = os.pread(capture, size, 0).decode("utf-8", "replace")
    finally:
        os.close(capture)
    foreign = [line for line in text.splitlines(True) if not _STATS_LINE.match(line)]
    if foreign:  # another thread wrote to stderr meanwhile: give it back
        os.write(2, "".join(foreign).encode())
    return text


def _scratch_fd() -> int:
    """A file descriptor on an anonymous file (in memory where the kernel can)."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("memcontract-mallocstats")
    with tempfile.TemporaryFile() as file:
        return os.dup(file.fileno())


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
        self.watching = False
        self._glibc = 0  # bytes in use at the last finished walk
        self._walk_started = 0.0  # clock time
        self._walk: threading.Thread | None = None
        if self.reason is None:
            self.calibrate()
            self._glibc_walk()
            self._walk_started = self._clock()

    @property
    def source(self) -> str:
        """The source name, or empty where live memory is unknown."""
        return "" if self.reason is not None else SOURCE

    def calibrate(self) -> None:
        """Measure the bytes per pymalloc block now; unparsable stats make live unknown."""
        measured = bytes_per_block()
        self._calibrated_at = self._clock()
        if measured is None:
            self.reason = "sys._debugmallocstats() did not parse"
            return
        self.bytes_per_block = measured

    def watch(self, closely: bool) -> None:
        """``closely`` (level 2 and above): glibc every sample and calibrations kept fresh."""
        self.watching = closely
        self.glibc_every = 0.0 if closely else GLIBC_EVERY

    def read(self) -> int | None:
        """Live bytes now, or ``None`` where unknown."""
        if self.reason is not None or self._mallinfo2 is None:
            return None
        now = self._clock()
        if self.watching and now - self._calibrated_at >= CALIBRATE_EVERY:
            self.calibrate()
        glibc = self._glibc_bytes(now)
        return round(sys.getallocatedblocks() * self.bytes_per_block) + glibc

    def _glibc_bytes(self, now: float) -> int:
        """glibc's bytes in use: a walk started now if one is due (waited for WALK_WAIT at
        most), else the last finished walk's."""
        wait = max(self.glibc_every, COST_FACTOR * self.last_cost)
        walking = self._walk is not None and self._walk.is_alive()
        if not walking and now - self._walk_started >= wait:
            self._walk_started = now
            self._walk = threading.Thread(
                target=self._glibc_walk, name="memcontract-mallinfo2", daemon=True
            )
            self._walk.start()
            self._walk.join(WALK_WAIT)
        return self._glibc

    def _glibc_walk(self) -> None:
        assert self._mallinfo2 is not None
        start = time.perf_counter()
        info = self._mallinfo2()
        self.last_cost = time.perf_counter() - start
        self._glibc = int(info.uordblks) + int(info.hblkhd)
