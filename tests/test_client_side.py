"""The client's reading of a callee's trailers (ClientSide.record), without a network: where
the -bin value sits, repeats inside the fresh window, and a change to level 3 seen at once."""

from __future__ import annotations

import pytest
from memcontract.interceptors.sides import ClientSide

from memcontract import Level, Pressure, wire
from memcontract.callees import CalleeTable
from memcontract.telemetry import INVALID_HEADERS
from memcontract.testing import FakeClock

from .support import Rig, make_contract

CALM = Pressure(usage_ratio=0.40, capacity_bytes=1 << 30, module="inventory")
CRITICAL = Pressure(usage_ratio=0.97, capacity_bytes=1 << 30, level=Level.CRITICAL)
PUSHBACK = (wire.RETRY_PUSHBACK, "500")  # what a shed call's answer carries with its keys


def side() -> tuple[ClientSide, CalleeTable, FakeClock]:
    clock = FakeClock()
    peers = CalleeTable(ttl=2.0, clock=clock.monotonic)
    rig = Rig(make_contract())
    return ClientSide(rig.guard, "inventory", peers), peers, clock


def test_the_last_of_two_pressure_bins_wins() -> None:
    calm_bin = dict(wire.encode(CALM))[wire.PRESSURE_BIN]
    critical_bin = dict(wire.encode(CRITICAL))[wire.PRESSURE_BIN]
    for first, last, expected in ((calm_bin, critical_bin, True), (critical_bin, calm_bin, False)):
        client, peers, _ = side()
        client.record(
            ((wire.PRESSURE_BIN, first), ("x-other", "v"), PUSHBACK, (wire.PRESSURE_BIN, last))
        )
        assert peers.blocked("inventory") is expected


@pytest.mark.parametrize("bin_last", [True, False], ids=["bin-last", "bin-first"])
def test_a_repeat_inside_the_fresh_window_is_not_recorded_again_but_a_change_is(
    bin_last: bool,
) -> None:
    def trailers(p: Pressure) -> wire.Metadata:
        ours = wire.encode(p)
        return ours if bin_last else (*reversed(ours), ("x-handler", "1"))

    client, peers, clock = side()
    client.record(trailers(CALM))
    clock.advance(0.1)
    client.record(trailers(CALM))  # same bytes: only checked, the entry keeps its expiry
    clock.advance(1.95)
    assert peers.get("inventory") is None  # 2.05 s after the first record: expired
    client.record(trailers(CALM))
    client.record((PUSHBACK, *trailers(CRITICAL)))  # new bytes, level 3, shed: fail fast at once
    assert peers.blocked("inventory")


def test_a_repeat_after_the_fresh_window_refreshes_the_entry() -> None:
    client, peers, clock = side()
    client.record(wire.encode(CALM))
    clock.advance(1.9)  # past ttl/4, before the ttl: the same bytes are recorded again
    client.record(wire.encode(CALM))
    clock.advance(1.9)  # 3.8 s after the first record, 1.9 s after the refresh
    assert peers.get("inventory") == CALM


def test_invalid_keys_in_trailers_are_counted() -> None:
    client, peers, _ = side()
    client.record((("x-memory-level", "9"), ("x-memory-usage", "50%")))
    assert client.telemetry.counts[INVALID_HEADERS] == 1
    reported = peers.get("inventory")
    assert reported is not None and reported.usage_ratio == 0.5
