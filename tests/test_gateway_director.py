"""The gateway's director without a network: routing weights from reported pressure, and the
metadata it forwards (a fake servicer context; the pump is covered end to end elsewhere)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from memcontract import Contract, Guard, Level, Pressure
from memcontract.gateway.director import Director, Upstream, edge_shed_trailers, make_upstreams
from memcontract.telemetry import UNTRUSTED_PEERS
from memcontract.testing import FakeClock
from memcontract.trust import TrustPolicy

CONTRACT = "modules: [{name: gw, max_heap_mb: 512, retry_pushback_ms: 800}]"


def director(
    n: int, trust: TrustPolicy | None = None
) -> tuple[Director, list[Upstream], FakeClock]:
    clock = FakeClock()
    guard = Guard(Contract.from_yaml(CONTRACT), clock=clock)
    upstreams = make_upstreams([f"10.0.0.{i}:1" for i in range(n)], guard, lambda t: None)
    routed = Director(upstreams, trust or TrustPolicy(), guard.telemetry, clock.monotonic)
    return routed, upstreams, clock


def report(u: Upstream, usage: float, level: Level, pushback_ms: int | None = None) -> None:
    u.side.peers.record(u.target, Pressure(usage, level=level), pushback_ms)


def spread(d: Director, calls: int, clock: FakeClock) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(calls):
        seen[d.pick().target] += 1
        clock.advance(0.001)
    return seen


def test_unknown_upstreams_share_evenly() -> None:
    d, ups, clock = director(3)
    assert spread(d, 300, clock) == {u.target: 100 for u in ups}


def test_level_2_upstream_gets_a_trickle() -> None:
    d, (calm, hot), clock = director(2)
    report(calm, 0.30, Level.NORMAL)
    report(hot, 0.92, Level.DEGRADED)
    seen = spread(d, 1000, clock)
    assert seen[calm.target] >= 950 and seen[hot.target] >= 1, seen


def test_level_3_upstream_gets_nothing_until_its_pushback_ends() -> None:
    d, (calm, hot), clock = director(2)
    report(hot, 0.97, Level.CRITICAL, pushback_ms=500)
    assert spread(d, 400, clock) == {calm.target: 400}  # 0.4 s: inside the window
    clock.advance(0.2)
    assert spread(d, 1000, clock)[hot.target] > 0  # window over: probed again


def test_all_blocked_spreads_evenly_and_sheds_with_the_pushback_left() -> None:
    d, ups, clock = director(2)
    for u in ups:
        report(u, 0.99, Level.CRITICAL, pushback_ms=800)
    assert sorted(spread(d, 10, clock).values()) == [5, 5]
    trailers = dict(edge_shed_trailers(ups[0]))
    assert trailers["x-memory-level"] == "3"
    assert 0 < int(trailers["grpc-retry-pushback-ms"]) <= 800


class Context:
    """What the director reads of a grpc.aio servicer context."""

    def __init__(self, metadata: list[tuple[str, Any]], peer: str = "ipv4:127.0.0.1:5000") -> None:
        self.metadata, self._peer = metadata, peer

    def invocation_metadata(self) -> list[tuple[str, Any]]:
        return self.metadata

    def peer(self) -> str:
        return self._peer

    def peer_identities(self) -> None:
        return None


SENT = [
    ("user-agent", "grpc-go/1.7"),
    ("x-memory-level", "3"),
    ("authorization", "Bearer t"),
    ("te", "trailers"),
    ("trace-bin", b"\x00\x01"),
]


@pytest.mark.parametrize(
    ("trust", "peer", "memory_kept"),
    [
        (TrustPolicy(), "ipv4:192.0.2.1:5", True),
        (TrustPolicy.only(networks=["127.0.0.0/8"]), "ipv4:127.0.0.1:5", True),
        (TrustPolicy.only(networks=["127.0.0.0/8"]), "ipv4:192.0.2.1:5", False),
    ],
)
def test_outgoing_drops_hop_by_hop_and_untrusted_memory_keys(
    trust: TrustPolicy, peer: str, memory_kept: bool
) -> None:
    d, _, _ = director(1, trust)
    out = d.outgoing(Context(SENT, peer))
    expected = [("authorization", "Bearer t"), ("trace-bin", b"\x00\x01")]
    if memory_kept:
        expected.insert(0, ("x-memory-level", "3"))
    assert out == expected
    assert d.telemetry.counts[UNTRUSTED_PEERS] == (0 if memory_kept else 1)
