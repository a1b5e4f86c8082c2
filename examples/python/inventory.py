"""The example's inventory: stock in SQLite, read through a ``PressureAwareCache``.

The cache is where the caller's memory state matters (docs/design.md §7): a read always tries
the cache, and a database read is cached only when neither the caller (usage above 0.80) nor
this process (level 2 or more) is under pressure. ``db_reads`` counts the database reads, so a
skipped cache write shows as one more read on the next call. At level 3 the guard shrinks the
cache.

>>> from memcontract import Contract, Guard
>>> guard = Guard(Contract.from_yaml("modules: [{name: inventory, max_heap_mb: 512}]"))
>>> inventory = Inventory(guard, skus=10)
>>> [inventory.get_stock("sku-0003").source for _ in range(2)], inventory.db_reads
(['database', 'cache'], 1)
>>> inventory.close()
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import cachetools
import grpc

from memcontract import Guard, Pressure, peer_pressure
from memcontract.cache import PressureAwareCache

from .inventory_demo.v1 import inventory_demo_pb2 as pb
from .inventory_demo.v1 import inventory_demo_pb2_grpc as pb_grpc

SERVICE = "inventory_demo.v1.InventoryDemo"
DEFAULT_REPORT_ROWS = 20_000  # about 4 MiB of row text, more as Python objects
MAX_REPORT_ROWS = 200_000
MAX_HOLD_MS = 10_000
DEFAULT_CHUNK_ROWS = 1_000
DETAIL_WIDTH = 200
CACHE = "cache"
DATABASE = "database"

Row = tuple[str, int, str]


def sku_name(i: int) -> str:
    """The SKU of seed item ``i`` (``sku-0001`` ...)."""
    return f"sku-{i:04d}"


class StockDB:
    """A SQLite stock table, seeded at start; thread-safe (one connection behind a lock).

    Args:
        path: a database file, or ``":memory:"`` (the default: one database per server).
        skus: items seeded, ``sku-0001`` to ``sku-{skus}``, quantity ``(i * 37) % 500``.
    """

    def __init__(self, path: str = ":memory:", *, skus: int = 1000) -> None:
        self.path = path
        self.reads = 0
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, quantity INTEGER NOT NULL)"
            )
            self._conn.execute("DELETE FROM stock")
            self._conn.executemany(
                "INSERT INTO stock (sku, quantity) VALUES (?, ?)",
                ((sku_name(i), (i * 37) % 500) for i in range(1, skus + 1)),
            )

    def quantity(self, sku: str) -> int | None:
        """One SKU's quantity, or ``None`` (counts one read)."""
        with self._lock:
            self.reads += 1
            row = self._conn.execute("SELECT quantity FROM stock WHERE sku = ?", (sku,)).fetchone()
        return None if row is None else int(row[0])

    def all_stock(self) -> list[tuple[str, int]]:
        """Every SKU and its quantity, in SKU order (counts one read)."""
        with self._lock:
            self.reads += 1
            return [
                (str(s), int(q))
                for s, q in self._conn.execute("SELECT sku, quantity FROM stock ORDER BY sku")
            ]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def caller_message(pressure: Pressure | None) -> pb.CallerPressure:
    """The caller's pressure (``peer_pressure()``) as the response field."""
    if pressure is None:
        return pb.CallerPressure(present=False)
    return pb.CallerPressure(
        present=True,
        usage_ratio=pressure.usage_ratio,
        level=int(pressure.level),
        module=pressure.module,
    )


class Inventory:
    """The service's state and logic, shared by the sync and the aio servicers.

    Args:
        guard: the process's guard (the cache denies writes at level >= 2, shrinks at 3).
        db_path: the SQLite database (default: in memory).
        skus: items seeded at start.
        cache_size: entries the LRU cache holds.
        shrink_to: fraction of the cache kept at level 3.
        peer_admission_threshold: caller usage above which reads are not cached.
    """

    def __init__(
        self,
        guard: Guard | None,
        *,
        db_path: str = ":memory:",
        skus: int = 1000,
        cache_size: int = 256,
        shrink_to: float = 0.25,
        peer_admission_threshold: float = 0.80,
    ) -> None:
        self.db = StockDB(db_path, skus=skus)
        self.cache: PressureAwareCache[str, int] = PressureAwareCache(
            cachetools.LRUCache(maxsize=cache_size),
            guard,
            shrink_to=shrink_to,
            peer_admission_threshold=peer_admission_threshold,
        )
        self.reports = 0
        self._lock = threading.Lock()

    @property
    def db_reads(self) -> int:
        """Database reads so far (a cache miss, or a report)."""
        return self.db.reads

    # -- GetStock: the cache-aside read, in steps so the aio servicer can await the database --

    def cached(self, sku: str) -> int | None:
        """The cached quantity of ``sku`` (counts a hit or a miss)."""
        value: int | None = self.cache.get(sku)
        return value

    def store(self, sku: str, quantity: int) -> str:
        """Offer a database read to the cache; return why it was refused ("" when cached).

        Call it where the handler runs: the caller's pressure is bound there.
        """
        if self.cache.put(sku, quantity):
            return ""
        return self.cache.denial() or "denied"

    def get_stock(self, sku: str) -> pb.GetStockResponse | None:
        """The stock of ``sku`` through the cache, or ``None`` for an unknown SKU."""
        quantity = self.cached(sku)
        if quantity is not None:
            return self.response(sku, quantity, CACHE, "")
        quantity = self.db.quantity(sku)
        if quantity is None:
            return None
        return self.response(sku, quantity, DATABASE, self.store(sku, quantity))

    @staticmethod
    def response(sku: str, quantity: int, source: str, denied: str) -> pb.GetStockResponse:
        """The GetStock reply, with the caller's pressure as the handler saw it."""
        return pb.GetStockResponse(
            sku=sku,
            quantity=quantity,
            source=source,
            cache_denied=denied,
            caller=caller_message(peer_pressure()),
        )

    # -- Report: the memory-hungry method ------------------------------------------------------

    def build_report(self, rows: int) -> list[Row]:
        """The whole report in memory: ``rows`` lines over the stock, each with a long detail."""
        stock = self.db.all_stock()
        with self._lock:
            self.reports += 1
        if not stock:
            return []
        report: list[Row] = []
        for i in range(rows):
            sku, quantity = stock[i % len(stock)]
            line = f"{i:07d} {sku} qty={quantity:5d} "
            report.append((sku, quantity, line + "." * (DETAIL_WIDTH - len(line))))
        return report

    @staticmethod
    def chunks(report: Sequence[Row], chunk_rows: int) -> Iterator[pb.ReportChunk]:
        """The report as stream messages of ``chunk_rows`` rows each."""
        for index, start in enumerate(range(0, len(report), chunk_rows)):
            yield pb.ReportChunk(
                index=index,
                rows=[
                    pb.ReportRow(sku=s, quantity=q, detail=d)
                    for s, q, d in report[start : start + chunk_rows]
                ],
            )

    def close(self) -> None:
        """Close the database."""
        self.db.close()


def report_size(request: pb.ReportRequest) -> tuple[int, int, float] | str:
    """(rows, chunk_rows, hold seconds) of a Report request, or what is wrong with it."""
    rows = request.rows or DEFAULT_REPORT_ROWS
    chunk_rows = request.chunk_rows or DEFAULT_CHUNK_ROWS
    if not 0 < rows <= MAX_REPORT_ROWS:
        return f"rows must be between 1 and {MAX_REPORT_ROWS}"
    if chunk_rows <= 0:
        return "chunk_rows must be positive"
    if not 0 <= request.hold_ms <= MAX_HOLD_MS:
        return f"hold_ms must be between 0 and {MAX_HOLD_MS}"
    return rows, chunk_rows, request.hold_ms / 1000


class InventoryServicer(pb_grpc.InventoryDemoServicer):
    """The grpcio (sync) servicer."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def GetStock(self, request: pb.GetStockRequest, context: grpc.ServicerContext) -> Any:
        if not request.sku:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sku is required")
        reply = self.inventory.get_stock(request.sku)
        if reply is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown sku {request.sku!r}")
        return reply

    def Ping(self, request: pb.PingRequest, context: grpc.ServicerContext) -> Any:
        return pb.PingResponse(caller=caller_message(peer_pressure()))

    def Report(self, request: pb.ReportRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        size = report_size(request)
        if isinstance(size, str):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, size)
            return
        rows, chunk_rows, hold_s = size
        report = self.inventory.build_report(rows)
        time.sleep(hold_s)  # the report stays in memory while a slow consumer is waited for
        yield from self.inventory.chunks(report, chunk_rows)


class AioInventoryServicer(pb_grpc.InventoryDemoServicer):
    """The grpc.aio servicer: the database and the report building run off the event loop."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    async def GetStock(self, request: pb.GetStockRequest, context: grpc.aio.ServicerContext) -> Any:
        if not request.sku:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sku is required")
        inventory = self.inventory
        quantity = inventory.cached(request.sku)
        if quantity is not None:
            return inventory.response(request.sku, quantity, CACHE, "")
        quantity = await asyncio.to_thread(inventory.db.quantity, request.sku)
        if quantity is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown sku {request.sku!r}")
            return None
        # back in the handler's context, where peer_pressure() is the caller's
        denied = inventory.store(request.sku, quantity)
        return inventory.response(request.sku, quantity, DATABASE, denied)

    async def Ping(self, request: pb.PingRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.PingResponse(caller=caller_message(peer_pressure()))

    async def Report(
        self, request: pb.ReportRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        size = report_size(request)
        if isinstance(size, str):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, size)
            return
        rows, chunk_rows, hold_s = size
        report = await asyncio.to_thread(self.inventory.build_report, rows)
        await asyncio.sleep(
            hold_s
        )  # the report stays in memory while a slow consumer is waited for
        for chunk in self.inventory.chunks(report, chunk_rows):
            yield chunk
