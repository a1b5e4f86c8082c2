"""The callee table's fail-fast rule (docs/design.md §7), answer by answer on a fake clock."""

from __future__ import annotations

import pytest

from memcontract import Level, Pressure
from memcontract.callees import CalleeTable
from memcontract.testing import FakeClock

HOT = Pressure(usage_ratio=0.97, level=Level.CRITICAL)
WARM = Pressure(usage_ratio=0.85, level=Level.ALERT)
A, B, C = 11, 22, 33
T = "svc"


def table(**kw: int) -> tuple[CalleeTable, FakeClock]:
    clock = FakeClock()
    return CalleeTable(ttl=2.0, clock=clock.monotonic, **kw), clock


def test_the_only_instance_at_level_3_blocks_at_once_and_is_probed_once_per_window() -> None:
    peers, clock = table()
    peers.record(T, WARM, None, A)
    peers.record(T, HOT, 500, A)  # the calm answer before was A's own: superseded
    assert peers.blocked(T) and peers.fails_fast(T)
    clock.advance(0.5)
    assert not peers.fails_fast(T)  # the probe
    assert peers.fails_fast(T)  # and only one
    peers.record(T, HOT, 500, A)
    assert peers.fails_fast(T)
    clock.advance(0.5)
    assert not peers.fails_fast(T)
    peers.record(T, WARM, None, A)  # the probe's answer: not level 3
    assert not peers.blocked(T) and not peers.fails_fast(T)


def test_one_hot_instance_among_calm_ones_never_blocks() -> None:
    peers, clock = table()
    peers.record(T, WARM, None, B)
    peers.record(T, WARM, None, C)
    for _ in range(10):
        for instance, pressure in ((A, HOT), (B, WARM), (C, WARM)):
            peers.record(T, pressure, 500, instance)
            clock.advance(0.01)
            assert not peers.fails_fast(T)


def test_two_instances_at_level_3_and_no_calm_answer_in_the_window_block() -> None:
    peers, clock = table()
    peers.record(T, WARM, None, C)
    clock.advance(0.6)  # C's calm answer is older than the window
    peers.record(T, HOT, 500, A)
    assert not peers.blocked(T)  # one instance of three: maybe only that backend
    peers.record(T, HOT, 500, B)
    assert peers.blocked(T)


def test_an_answer_without_keys_counts_as_calm() -> None:
    peers, clock = table()
    peers.record(T, HOT, 500, A)
    peers.record(T, HOT, 500, B)
    assert peers.blocked(T)
    peers.record_calm(T)  # a backend that sent nothing: calm (absent means calm)
    assert not peers.blocked(T)
    clock.advance(0.1)
    peers.record(T, HOT, 500, A)
    peers.record(T, HOT, 500, B)
    assert not peers.blocked(T)  # the keyless answer is inside the window
    clock.advance(0.5)
    peers.record(T, HOT, 500, A)
    assert peers.blocked(T)


def test_a_calm_answer_is_superseded_by_the_same_instances_level_3() -> None:
    peers, _ = table()
    peers.record(T, WARM, None, A)
    peers.record(T, HOT, 500, A)
    peers.record(T, HOT, 500, B)
    assert peers.blocked(T)


def test_unnamed_backends_are_one_instance() -> None:
    peers, _ = table()
    peers.record(T, HOT, 500)  # text keys only, or an older peer: instance 0
    assert peers.blocked(T) and peers.instances(T) == 1


def test_the_window_is_the_pushback_cut_to_max_fail_fast_ms_and_0_turns_it_off() -> None:
    peers, _ = table(max_fail_fast_ms=200)
    peers.record(T, HOT, 5000, A)
    assert peers.blocked_for(T) == pytest.approx(0.2)
    off, _ = table(max_fail_fast_ms=0)
    off.record(T, HOT, 5000, A)
    assert not off.blocked(T) and not off.fails_fast(T)


def test_targets_are_apart_and_bounded() -> None:
    peers, _ = table(max_targets=2)
    peers.record("a", HOT, 500, A)
    peers.record("b", WARM, None, B)
    assert peers.blocked("a") and not peers.blocked("b")
    peers.record("c", WARM, None, C)  # "a" is the least recently updated: dropped
    assert not peers.blocked("a") and peers.get("a") is None and len(peers) == 2


def test_a_non_core_call_admitted_at_level_3_ends_the_window() -> None:
    # Half-open (or dry run): the backend is at level 3 and serves non-core calls again.
    peers, clock = table()
    peers.record(T, HOT, 500, A)  # a shed call's answer
    assert peers.blocked(T)
    clock.advance(0.5)
    assert not peers.fails_fast(T)  # the probe goes, and is served
    peers.record(T, HOT, None, A, admitted=True)
    assert not peers.blocked(T) and not peers.fails_fast(T)
    assert peers.get(T) == HOT  # what it reports is unchanged
    peers.record(T, HOT, None, A, core=True)  # a core answer cannot say it sheds again
    assert not peers.blocked(T)
    peers.record(T, HOT, 500, A)  # a shed answer can
    assert peers.blocked(T)


def test_a_core_answer_at_level_3_stands_for_a_backend_not_heard_before() -> None:
    peers, _ = table()
    peers.record(T, HOT, None, A, core=True)
    assert peers.blocked(T)  # level 3, and nothing else known of A
