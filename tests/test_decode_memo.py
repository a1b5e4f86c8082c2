"""The interceptors' memoized decoding (``memcontract.interceptors._memo``): the same answers
as the pure codec, whatever came before, and bounded in the bytes it keeps."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given
from memcontract.interceptors._memo import decode

from memcontract import wire
from memcontract.pressure import Pressure

from .test_wire import _metadata_lists


@given(_metadata_lists, _metadata_lists)
def test_what_was_decoded_before_never_changes_a_result(
    before: list[tuple[str, object]], md: list[tuple[str, object]]
) -> None:
    # decode() answers a repeat of the last tuple without decoding it again: the answer must
    # be what decoding gives, whatever came before.
    decode(tuple(before))
    assert decode(tuple(md)) == wire.decode(list(md))
    assert decode(tuple(md)) == wire.decode(list(md))


def test_a_repeated_caller_gets_the_current_values() -> None:
    first = tuple(wire.encode(Pressure(0.5, capacity_bytes=100 << 20)))
    again = tuple((str(k), bytes(v) if isinstance(v, bytes) else str(v)) for k, v in first)
    second = tuple(wire.encode(Pressure(0.9, capacity_bytes=100 << 20)))
    for md, usage in ((first, 0.5), (again, 0.5), (second, 0.9), (first, 0.5)):
        pressure = decode(md).pressure
        assert pressure is not None and pressure.usage_ratio == usage


def _held_after_decoding(key: str, size: int, count: int) -> int:
    """Bytes still held (traced by tracemalloc) after decoding ``count`` metadata, each with a
    new value of ``size`` bytes under ``key``, made and dropped one at a time."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            text = str(i).rjust(size, "0")
            decode(((key, text.encode() if key.endswith("-bin") else text),))
        del text
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("key", "size"),
    [("x-memory-usage", 7000), ("x-memory-pressure-bin", 70_000), ("x-memory-level", 200)],
)
def test_values_over_the_size_limit_are_never_kept(key: str, size: int) -> None:
    held = _held_after_decoding(key, size, 300)
    assert held < 64 * 1024, held  # 300 values of `size` bytes were decoded, none kept
    assert decode(((key, "9" * size),)).invalid == (key,)


@pytest.mark.parametrize(("key", "size"), [("x-memory-pressure-bin", 1000), ("x-memory-usage", 60)])
def test_the_decode_memos_are_bounded_in_bytes(key: str, size: int) -> None:
    # Values within the limits are memoized; 4,000 distinct ones must not all be kept.
    held = _held_after_decoding(key, size, 4000)
    assert held < 3 * 256 * 1024, held
