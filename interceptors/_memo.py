"""Memoized decoding for the interceptors: the same peer resends the same values until its
sampler runs again, so a repeat costs a lookup, not a parse (:func:`memcontract.wire.decode`
stays a pure codec; the memos, their locks and their fork hooks live here, with the adapters
that call per RPC).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from memcontract import wire
from memcontract.wire import KEYS, NOTHING, Decoded

MEMO_MAX_BYTES = 256 * 1024
"""Bytes (estimated) each of the two decode memos may keep before it is dropped."""


class Memo:
    """A dict of parse results bounded by an estimate of the bytes it keeps (not by entries).

    Only values within the size limits are ever kept (callers check before :meth:`put`), and
    the whole memo is dropped when the next entry would take it past ``max_bytes``: a caller
    sending a new value on every call costs a parse per call, never memory.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: dict[Any, Any] = {}
        self.get = self.entries.get  # cleared, never replaced: the bound method stays valid
        self.bytes = 0
        self._lock = threading.Lock()

    def put(self, key: Any, value: Any, cost: int) -> None:
        """Keep ``value`` under ``key``; ``cost`` estimates the bytes the entry holds."""
        with self._lock:
            if self.bytes + cost > self.max_bytes:
                self.entries.clear()
                self.bytes = 0
            self.entries[key] = value
            self.bytes += cost

    def reset(self) -> None:
        """Drop every entry and make a new lock (a forked child: the lock may be held)."""
        self.entries.clear()
        self.bytes = 0
        self._lock = threading.Lock()


# What one memoized pair costs besides its key and value bytes: the pair tuple, the two
# objects' headers and the dict slot (measured on CPython 3.11: about 160 bytes).
_PAIR_COST = 160
_ENTRY_COST = 256

_PARSED = Memo(MEMO_MAX_BYTES)  # (key, value) -> parsed value or _INVALID
_DECODED = Memo(MEMO_MAX_BYTES)  # our pairs of one metadata, as sent -> Decoded
_INVALID = object()
# The last (metadata, result): the same caller's same metadata again is one tuple comparison.
_last: tuple[object, Decoded] = ((), NOTHING)


def _after_fork_in_child() -> None:
    global _last
    _PARSED.reset()
    _DECODED.reset()
    _last = ((), NOTHING)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _cost(pairs: tuple[tuple[str, Any], ...]) -> int:
    """Bytes an entry for ``pairs`` keeps, or 0 if a value is over its key's size limit
    (or not text or bytes): such values are never kept."""
    cost = _ENTRY_COST
    for key, value in pairs:
        if type(value) not in (str, bytes) or len(value) > wire.value_limit(key):
            return 0
        cost += _PAIR_COST + len(key) + len(value)
    return cost


def _parse(key: str, value: Any) -> Any:
    if type(value) not in (str, bytes) or len(value) > wire.value_limit(key):
        return None  # over the limit (or not ours): invalid, and nothing is kept
    pair = (key, value)
    hit = _PARSED.get(pair)
    if hit is not None:
        return None if hit is _INVALID else hit
    parsed = wire.parse_value(key, value)
    _PARSED.put(pair, _INVALID if parsed is None else parsed, _PAIR_COST + len(key) + len(value))
    return parsed


def decode(metadata: Iterable[tuple[str, Any]] | None) -> Decoded:
    """:func:`memcontract.wire.decode`, memoized: whole results by our pairs as sent, parses by
    value (values over the size limits never kept; the memos are bounded in bytes)."""
    global _last
    if not metadata:
        return NOTHING
    # The same caller sends the same metadata call after call: one tuple comparison (no
    # hashing, no filtering) answers it. Per-call headers (trace ids) only make it miss.
    last_metadata, last = _last
    if metadata == last_metadata:
        return last
    ours = tuple([pair for pair in metadata if pair[0] in KEYS])
    if not ours:
        return NOTHING
    try:
        hit = _DECODED.get(ours)
    except TypeError:  # an unhashable value: decode without the memo
        return _decode_pairs(ours)
    if hit is None:
        hit = _decode_pairs(ours)
        cost = _cost(ours)
        if not cost:
            return hit  # a value over the size limits: nothing of this metadata is kept
        _DECODED.put(ours, hit, cost)
    if type(metadata) is tuple:  # immutable, so safe to keep (one) and compare against
        _last = (metadata, hit)
    return hit


def _decode_pairs(pairs: tuple[tuple[str, Any], ...]) -> Decoded:
    found: dict[str, Any] = {}
    invalid: list[str] = []
    for key, value in pairs:
        parsed = _parse(key, value)
        if parsed is None:
            invalid.append(key)
        else:
            found[key] = parsed
    return wire.assemble(found, tuple(invalid))
