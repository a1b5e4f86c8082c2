"""Where a call goes, and with which metadata: the routing half of the gateway.

As in mwitkow/grpc-proxy, routing is kept apart from the code that copies bytes: the pump asks
:meth:`Director.pick` for an :class:`Upstream` and :meth:`Director.outgoing` for the request
metadata, and knows nothing else about upstreams.

Routing reads each upstream's pressure from the peer table its trailers feed (the interceptors'
:class:`~memcontract.interceptors.sides.ClientSide`, one per upstream): calls are spread by
smooth weighted round robin, a calm upstream weighing far more than one at level 1 or 2; one at
level 3 gets no non-core call while its pushback lasts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.aio

from memcontract import wire
from memcontract.callees import CalleeTable
from memcontract.guard import Guard
from memcontract.interceptors.sides import ClientSide
from memcontract.pressure import Pressure
from memcontract.telemetry import UNTRUSTED_PEERS
from memcontract.trust import TrustPolicy

# Connection-specific headers (RFC 9113 §8.2.2) and what grpc sets itself per hop: never copied
# from the client's call to the upstream's. grpcio shows no pseudo-headers to handlers.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "host",
        "user-agent",
        "content-type",
        "grpc-timeout",
        "grpc-encoding",
        "grpc-accept-encoding",
    }
)
_MEMORY_PREFIX = "x-memory-"
# A routing weight per reported level (scaled by 1.05 - usage): level 2 gets about 1 call in 40
# next to a calm upstream, enough to notice its recovery. Level 3 gets none while its pushback
# lasts (weight 0: blocked), then a trickle of probes until it reports again.
_LEVEL_WEIGHT = (1.0, 0.6, 0.15, 0.05)
_REWEIGH_S = 0.1
_MAX_METHODS = 4096  # bounds the callables cache against clients inventing method names


class Upstream:
    """One upstream server: its channel, a per-method cache of raw-bytes callables, and the
    :class:`ClientSide` that reads its trailers into the peer table and decides edge sheds."""

    def __init__(self, target: str, channel: grpc.aio.Channel, side: ClientSide) -> None:
        self.target = target
        self.channel = channel
        self.side = side
        self.calls = 0
        """Calls sent to this upstream (for tests and the exit line)."""
        self._callables: tuple[dict[str, Any], ...] = ({}, {}, {}, {})

    def callable(self, method: str, kind: int) -> Any:
        """The channel's raw (no serializer) multicallable for ``method``: ``kind`` 0 unary-unary,
        1 unary-stream, 2 stream-unary, 3 stream-stream."""
        known = self._callables[kind]
        found = known.get(method)
        if found is None:
            make = (
                self.channel.unary_unary,
                self.channel.unary_stream,
                self.channel.stream_unary,
                self.channel.stream_stream,
            )[kind]
            if len(known) >= _MAX_METHODS:
                known.clear()
            found = known[method] = make(method)
        return found

    def pressure(self) -> Pressure | None:
        """The last unexpired pressure this upstream reported."""
        found: Pressure | None = self.side.peers.get(self.target)
        return found


class Director:
    """Picks the upstream of each call and filters the metadata sent to it.

    Args:
        upstreams: the upstream servers, in configured order.
        trust: clients whose ``x-memory-*`` keys are forwarded (others' are stripped).
        telemetry: where stripped untrusted headers are counted.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        upstreams: Sequence[Upstream],
        trust: TrustPolicy,
        telemetry: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not upstreams:
            raise ValueError("a director needs at least one upstream")
        self.upstreams = tuple(upstreams)
        self.trust = trust
        self.telemetry = telemetry
        self._clock = clock
        self._single = self.upstreams[0] if len(self.upstreams) == 1 else None
        self._weights = [1.0] * len(self.upstreams)
        self._current = [0.0] * len(self.upstreams)
        self._reweigh_at = 0.0

    def pick(self) -> Upstream:
        """The upstream of the next call (smooth weighted round robin over the weights)."""
        if self._single is not None:
            return self._single
        now = self._clock()
        if now >= self._reweigh_at:
            self._weights = self._reweigh()
            self._reweigh_at = now + _REWEIGH_S
        weights, current = self._weights, self._current
        total = 0.0
        best = 0
        for i, w in enumerate(weights):
            current[i] += w
            total += w
            if current[i] > current[best]:
                best = i
        current[best] -= total
        return self.upstreams[best]

    def _reweigh(self) -> list[float]:
        weights = [self.weight(u) for u in self.upstreams]
        if not any(weights):  # all blocked: spread evenly; non-core calls are shed anyway
            return [1.0] * len(weights)
        return weights

    @staticmethod
    def weight(upstream: Upstream) -> float:
        """An upstream's routing weight from its last report (none: as a calm one)."""
        if upstream.side.peers.blocked_for(upstream.target) > 0:  # until its probe is due
            return 0.0
        p = upstream.pressure()
        if p is None:
            return 1.0
        return _LEVEL_WEIGHT[int(p.level)] * max(0.05, 1.05 - p.usage_ratio)

    def outgoing(self, context: Any) -> list[tuple[str, str | bytes]]:
        """The client's request metadata as sent upstream: hop-by-hop keys dropped, and
        ``x-memory-*`` keys dropped too unless the client is trusted (docs/design.md §7)."""
        pairs = context.invocation_metadata()
        forwarded = [(k, v) for k, v in pairs if k not in HOP_BY_HOP]
        if self.trust.trust_all or not any(k.startswith(_MEMORY_PREFIX) for k, _ in forwarded):
            return forwarded
        if self.trust.trusts(context.peer(), _identities(context)):
            return forwarded
        self.telemetry.add(UNTRUSTED_PEERS, 1)
        return [(k, v) for k, v in forwarded if not k.startswith(_MEMORY_PREFIX)]


def _identities(context: Any) -> list[str]:
    found = context.peer_identities() or ()
    return [i.decode("utf-8", "replace") if isinstance(i, bytes) else str(i) for i in found]


def edge_shed_trailers(upstream: Upstream) -> tuple[tuple[str, str | bytes], ...]:
    """Trailers of a call shed at the gateway for ``upstream``: the upstream's own pressure keys
    (so a memcontract client backs off too) and the pushback left in its window."""
    pushback = (wire.RETRY_PUSHBACK, str(upstream.side.pushback_ms()))
    p = upstream.pressure()
    return (*wire.encode(p), pushback) if p is not None else (pushback,)


def make_upstreams(
    targets: Sequence[str],
    guard: Guard,
    channel_for: Callable[[str], grpc.aio.Channel],
) -> list[Upstream]:
    """One :class:`Upstream` per target, sharing a peer table with the guard's settings."""
    peers = CalleeTable(
        ttl=guard.peers.ttl,
        default_pushback_ms=guard.peers.default_pushback_ms,
        clock=guard.peers.clock,
    )
    return [Upstream(t, channel_for(t), ClientSide(guard, t, peers)) for t in targets]
