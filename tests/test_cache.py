"""PressureAwareCache (docs/design.md §7): admission by the caller's and the local pressure, the
threshold edge, shrinking in LRU order at level 3, counters and telemetry, and thread safety."""

from __future__ import annotations

import contextvars
import random
import threading
from typing import Any

import cachetools
import pytest

from memcontract import Level, Pressure
from memcontract.cache import LOCAL_PRESSURE, PEER_PRESSURE, PressureAwareCache
from memcontract.caller import bind_caller_pressure, unbind_caller_pressure
from memcontract.telemetry import CACHE_DENIED

from .support import Rig


class Caller:
    """A ``caller=`` function whose reported usage the test sets (None: no pressure sent)."""

    def __init__(self, usage: float | None = None) -> None:
        self.usage = usage
        self.calls = 0

    def __call__(self) -> Pressure | None:
        self.calls += 1
        return None if self.usage is None else Pressure(usage_ratio=self.usage)


def lru(maxsize: int = 100) -> cachetools.LRUCache[Any, Any]:
    return cachetools.LRUCache(maxsize=maxsize)


def denied_metric(rig: Rig, reason: str) -> int:
    return rig.guard.telemetry.by_attribute[(CACHE_DENIED, "reason", reason)]


def level(rig: Rig, target: Level) -> Rig:
    """Step ``rig`` up to ``target`` (confirm counts 1, 2, 3)."""
    usage = {Level.ALERT: 0.85, Level.DEGRADED: 0.91, Level.CRITICAL: 0.97}[target]
    for _ in range(int(target)):
        rig.step(usage)
    assert rig.guard.level == target
    return rig


# -- reads, writes and counters -----------------------------------------------------------------


def test_get_put_and_counters() -> None:
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), caller=Caller())
    assert cache.get("a") is None
    assert cache.get("a", -1) == -1
    assert cache.put("a", 1) is True
    assert cache.get("a") == 1
    assert "a" in cache and "b" not in cache and len(cache) == 1
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.admitted, sum(stats.denied.values())) == (1, 2, 1, 0)
    assert cache.pop("a") == 1 and cache.pop("a", "gone") == "gone"
    cache.put("b", 2)
    cache.clear()
    assert len(cache) == 0 and stats.shrinks == 0


def test_falsy_values_are_hits() -> None:
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), caller=Caller())
    cache.put("zero", 0)
    assert cache.get("zero", default=-1) == 0
    assert (cache.stats.hits, cache.stats.misses) == (1, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"peer_admission_threshold": 0}, "peer_admission_threshold"),
        ({"peer_admission_threshold": -0.5}, "peer_admission_threshold"),
        ({"shrink_to": -0.1}, "shrink_to"),
        ({"shrink_to": 1.5}, "shrink_to"),
    ],
)
def test_invalid_settings_raise(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PressureAwareCache(lru(), **kwargs)  # type: ignore[arg-type]


# -- admission: the caller's pressure -----------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "admitted"),
    [
        (None, True),  # the caller sent no pressure
        (0.0, True),
        (0.5, True),
        (0.80, True),  # exactly at the threshold: admitted (the rule is "above")
        (0.8000001, False),
        (0.81, False),
        (0.95, False),
        (1.7, False),  # over its budget
    ],
)
def test_caller_usage_above_threshold_denies(usage: float | None, admitted: bool) -> None:
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), caller=Caller(usage))
    assert cache.put("k", 1) is admitted
    assert ("k" in cache) is admitted
    assert cache.stats.admitted == int(admitted)
    assert cache.stats.denied[PEER_PRESSURE] == int(not admitted)
    assert cache.denial() == (None if admitted else PEER_PRESSURE)


def test_custom_threshold_edge() -> None:
    caller = Caller(0.5)
    cache: PressureAwareCache[str, int] = PressureAwareCache(
        lru(), caller=caller, peer_admission_threshold=0.5
    )
    assert cache.put("at", 1) is True
    caller.usage = 0.5001
    assert cache.put("above", 2) is False
    assert cache.denial() == PEER_PRESSURE


def test_the_caller_is_asked_at_each_write() -> None:
    caller = Caller(0.9)
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), caller=caller)
    assert cache.put("a", 1) is False
    caller.usage = 0.2
    assert cache.put("a", 1) is True
    caller.usage = None
    assert cache.put("b", 2) is True
    assert caller.calls == 3
    assert (cache.stats.admitted, cache.stats.denied[PEER_PRESSURE]) == (2, 1)


def test_reads_still_work_under_pressure() -> None:
    caller = Caller(0.1)
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), caller=caller)
    cache.put("warm", 7)
    caller.usage = 0.99
    assert cache.get("warm") == 7
    assert cache.put("cold", 8) is False
    assert cache.get("cold") is None
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)


def test_denial_does_not_count() -> None:
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), caller=Caller(0.9))
    assert cache.denial() == PEER_PRESSURE
    assert sum(cache.stats.denied.values()) == 0


def test_default_caller_is_peer_pressure_of_the_current_call() -> None:
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru())
    assert cache.put("none", 0) is True  # no call bound: no caller pressure
    token = bind_caller_pressure(Pressure(usage_ratio=0.9))
    try:
        assert cache.put("hot", 1) is False
        # another thread does not see this call's caller
        other: list[bool] = []
        thread = threading.Thread(target=lambda: other.append(cache.put("other", 2)))
        thread.start()
        thread.join(5)
        assert other == [True]
    finally:
        unbind_caller_pressure(token)
    assert cache.put("after", 3) is True
    assert cache.stats.denied[PEER_PRESSURE] == 1


# -- admission: the local level -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "admitted"),
    [(Level.NORMAL, True), (Level.ALERT, True), (Level.DEGRADED, False), (Level.CRITICAL, False)],
)
def test_local_level_two_or_more_denies(rig: Rig, target: Level, admitted: bool) -> None:
    if target:
        level(rig, target)
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), rig.guard, caller=Caller())
    assert cache.put("k", 1) is admitted
    assert cache.stats.denied[LOCAL_PRESSURE] == int(not admitted)
    assert denied_metric(rig, LOCAL_PRESSURE) == int(not admitted)


def test_local_pressure_is_the_reason_when_both_apply(rig: Rig) -> None:
    level(rig, Level.DEGRADED)
    caller = Caller(0.95)
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), rig.guard, caller=caller)
    assert cache.denial() == LOCAL_PRESSURE
    assert cache.put("k", 1) is False
    assert dict(cache.stats.denied) == {LOCAL_PRESSURE: 1}


def test_telemetry_counts_denials_by_reason(rig: Rig) -> None:
    caller = Caller(0.9)
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), rig.guard, caller=caller)
    for i in range(3):
        cache.put(f"p{i}", i)
    caller.usage = 0.1
    assert cache.put("ok", 1) is True
    level(rig, Level.DEGRADED)
    for i in range(2):
        cache.put(f"l{i}", i)
    telemetry = rig.guard.telemetry
    assert denied_metric(rig, PEER_PRESSURE) == 3
    assert denied_metric(rig, LOCAL_PRESSURE) == 2
    assert telemetry.counts[CACHE_DENIED] == 5
    assert dict(cache.stats.denied) == {PEER_PRESSURE: 3, LOCAL_PRESSURE: 2}
    assert cache.stats.admitted == 1


def test_no_guard_no_telemetry_but_stats() -> None:
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), caller=Caller(0.9))
    assert cache.put("k", 1) is False
    assert cache.stats.denied[PEER_PRESSURE] == 1


# -- shrinking ----------------------------------------------------------------------------------


def filled(size: int, maxsize: int = 100, **kw: float) -> PressureAwareCache[str, int]:
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(maxsize), caller=Caller(), **kw)
    for i in range(size):
        assert cache.put(f"k{i:03d}", i)
    return cache


def test_shrink_keeps_the_most_recently_used() -> None:
    cache = filled(100)
    # touch the ten oldest: they become the most recently used
    for i in range(10):
        assert cache.get(f"k{i:03d}") == i
    cache.shrink()
    assert len(cache) == 25 and cache.stats.shrinks == 1
    kept = set(cache.cache.keys())
    expected = {f"k{i:03d}" for i in range(10)} | {f"k{i:03d}" for i in range(85, 100)}
    assert kept == expected


@pytest.mark.parametrize(("shrink_to", "left"), [(0.0, 0), (0.1, 10), (0.5, 50), (1.0, 100)])
def test_shrink_fraction(shrink_to: float, left: int) -> None:
    cache = filled(100, shrink_to=shrink_to)
    cache.shrink()
    assert len(cache) == left


def test_shrink_is_relative_to_maxsize_not_to_the_current_size() -> None:
    cache = filled(20)  # maxsize 100, a quarter is 25: nothing to evict
    cache.shrink()
    assert len(cache) == 20 and cache.stats.shrinks == 1


def test_shrink_respects_sized_caches() -> None:
    inner: cachetools.LRUCache[str, str] = cachetools.LRUCache(maxsize=100, getsizeof=len)
    cache: PressureAwareCache[str, str] = PressureAwareCache(inner, caller=Caller())
    for i in range(10):
        cache.put(f"k{i}", "x" * 10)  # currsize 100
    cache.shrink()  # down to 25 units: two 10-unit values
    assert inner.currsize <= 25 and len(cache) == 2
    assert set(inner.keys()) == {"k8", "k9"}


def test_level3_shrinks_registered_caches_and_writes_resume_after_recovery(rig: Rig) -> None:
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(100), rig.guard, caller=Caller())
    for i in range(80):
        cache.put(f"k{i}", i)
    level(rig, Level.CRITICAL)
    assert cache.stats.shrinks == 1 and len(cache) == 25
    rig.step(0.97)  # staying at level 3 does not shrink again
    assert cache.stats.shrinks == 1
    assert cache.get("k79") == 79  # reads work at level 3
    assert cache.put("new", 1) is False
    while rig.guard.level != Level.NORMAL:
        rig.step(0.2)
    assert cache.put("new", 1) is True
    assert cache.stats.denied[LOCAL_PRESSURE] == 1


def test_a_value_too_large_for_a_sized_cache_is_not_stored_and_does_not_raise() -> None:
    inner: cachetools.LRUCache[str, str] = cachetools.LRUCache(maxsize=10, getsizeof=len)
    cache: PressureAwareCache[str, str] = PressureAwareCache(inner, caller=Caller())
    assert cache.put("big", "x" * 20) is False
    assert "big" not in cache and cache.stats.admitted == 0
    assert cache.stats.denied["too_large"] == 1


def test_cache_is_held_weakly_by_the_guard(rig: Rig) -> None:
    cache: PressureAwareCache[str, int] = PressureAwareCache(lru(), rig.guard, caller=Caller())
    cache.put("k", 1)
    del cache
    level(rig, Level.CRITICAL)  # no error from a collected cache
    assert rig.guard.level == Level.CRITICAL


# -- thread safety ------------------------------------------------------------------------------


def test_concurrent_gets_puts_and_shrinks_keep_counts_consistent() -> None:
    """8 threads hammer a small LRU (which is not thread-safe by itself) while another thread
    shrinks it; callers alternate between calm and pressured, per thread (contextvars)."""
    usage: contextvars.ContextVar[float | None] = contextvars.ContextVar("usage", default=None)

    def caller() -> Pressure | None:
        value = usage.get()
        return None if value is None else Pressure(usage_ratio=value)

    cache: PressureAwareCache[int, int] = PressureAwareCache(
        cachetools.LRUCache(maxsize=64), caller=caller
    )
    threads, ops = 8, 3000
    gets = [0] * threads
    puts = [0] * threads
    admitted = [0] * threads
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)
    done = threading.Event()

    def work(n: int) -> None:
        rnd = random.Random(n)
        usage.set(0.95 if n % 2 else 0.1)
        try:
            start.wait(10)
            for _ in range(ops):
                key = rnd.randrange(200)
                if rnd.random() < 0.5:
                    value = cache.get(key)
                    assert value is None or value == key * 2
                    gets[n] += 1
                else:
                    puts[n] += 1
                    admitted[n] += cache.put(key, key * 2)
        except BaseException as err:
            errors.append(err)

    def shrinker() -> None:
        start.wait(10)
        while not done.is_set():
            cache.shrink()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    side = threading.Thread(target=shrinker)
    for t in [*workers, side]:
        t.start()
    for t in workers:
        t.join(60)
    done.set()
    side.join(10)
    assert not errors
    stats = cache.stats
    assert stats.hits + stats.misses == sum(gets)
    assert stats.admitted + stats.denied[PEER_PRESSURE] == sum(puts)
    assert stats.admitted == sum(admitted)
    # the pressured threads never wrote
    assert all(admitted[n] == 0 for n in range(1, threads, 2))
    assert stats.denied[PEER_PRESSURE] == sum(puts[n] for n in range(1, threads, 2))
    assert len(cache) <= 64 and stats.shrinks > 0


def test_concurrent_writes_from_one_shared_caller_function() -> None:
    lock = threading.Lock()
    state = {"n": 0}

    def flips() -> Pressure | None:
        with lock:
            state["n"] += 1
            return Pressure(usage_ratio=0.9) if state["n"] % 2 else None

    cache: PressureAwareCache[int, int] = PressureAwareCache(lru(1000), caller=flips)
    barrier = threading.Barrier(4)

    def work(base: int) -> None:
        barrier.wait(10)
        for i in range(500):
            cache.put(base + i, i)

    workers = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(30)
    assert cache.stats.admitted + cache.stats.denied[PEER_PRESSURE] == 2000
    assert cache.stats.admitted == 1000 == len(cache)
