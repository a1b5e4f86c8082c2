"""What the four interceptors share: method classification, reading a peer's metadata, the
shed decision, trailer merging and the fail-fast outcome. No grpc call happens here per RPC
beyond what the adapters pass in; everything read per call is a cached snapshot.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import grpc

from memcontract import wire
from memcontract.callees import CalleeTable
from memcontract.calm import REFRESH_S, WireVersion
from memcontract.guard import Guard, Snapshot
from memcontract.pressure import Level, Pressure
from memcontract.telemetry import (
    FAST_FAILS,
    HALF_OPEN_ADMITS,
    HOOK_ERRORS,
    INVALID_HEADERS,
    NONCORE,
    SHEDS,
    UNTRUSTED_PEERS,
    WOULD_SHED,
)
from memcontract.trust import TrustPolicy

from ._memo import decode

log = logging.getLogger("memcontract.interceptors")

Metadata = tuple[tuple[str, str | bytes], ...]
Wrapped = TypeVar("Wrapped")
_MAX_METHODS = 4096
_MAX_PEERS = 4096
MAX_CALLERS = 10_000
"""Connections a quiet server remembers having told its keys (the oldest told goes first)."""


class CoreMethods:
    """Whether a full method name is core (never shed), memoized per name."""

    def __init__(self, guard: Guard) -> None:
        self._match = guard.module.core_matcher().match
        self._known: dict[str | bytes, bool] = {}

    def __call__(self, method: str | bytes) -> bool:
        known = self._known.get(method)
        if known is None:
            name = method.decode("utf-8", "replace") if isinstance(method, bytes) else method
            known = self._match(name) is not None
            if len(self._known) >= _MAX_METHODS:
                self._known.clear()
            self._known[method] = known
        return known


def safe_metadata(metadata: Iterable[tuple[str, Any]] | None) -> Metadata:
    """Metadata as a tuple, with ``str`` values of ``-bin`` keys turned into bytes.

    grpcio hangs a call whose trailers carry a ``str`` under a ``-bin`` key; this makes sure
    nothing that passes through memcontract can do that.
    """
    if not metadata:
        return ()
    pairs = tuple(metadata)
    for key, value in pairs:
        if key.endswith("-bin") and isinstance(value, str):
            return tuple(
                (k, v.encode("utf-8") if k.endswith("-bin") and isinstance(v, str) else v)
                for k, v in pairs
            )
    return pairs


class ServerSide:
    """The server's per-call decisions, shared by the sync and aio adapters."""

    def __init__(self, guard: Guard, trust: TrustPolicy | None) -> None:
        self.guard = guard
        self.trust = trust or TrustPolicy()
        self.trust_all = self.trust.trust_all  # read per call; the policy is frozen
        self.telemetry = guard.telemetry
        self.is_core = CoreMethods(guard)
        # ORCA's rps/eps: one C-level next() per call, read by the sampler (memcontract.calls).
        self.count_call = guard.calls.count_call
        self.count_error = guard.calls.count_error
        self._credit = 0.0  # half-open admission at level 3 (see sheds)
        self._trusted_peers: dict[str, bool] = {}
        # Quiet: per connection (context.peer()), the version last told and until when it
        # holds; insertion order is the order told, so the first entry is the oldest.
        self._told: dict[str, tuple[WireVersion, float]] = {}

    def trailers(self, context: Any, snapshot: Snapshot) -> Metadata:
        """Our trailers for this unary-response call. Not quiet: the snapshot's, on every
        call. Quiet (calm is free, :mod:`memcontract.calm`): only on a connection's first such
        call, after a change, and every ``REFRESH_S`` per connection; otherwise none.
        (Streaming responses always carry them.)"""
        version = snapshot.wire
        if not version.quiet:
            return snapshot.trailing_metadata
        peer = context.peer()
        told = self._told.get(peer)
        if told is not None and told[0] is version and snapshot.published_at < told[1]:
            return ()
        self._told.pop(peer, None)
        self._told[peer] = (version, snapshot.published_at + REFRESH_S)
        if len(self._told) > MAX_CALLERS:
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del self._told[next(iter(self._told))]  # another thread may be at it too
        return snapshot.trailing_metadata

    def caller_pressure(self, metadata: Any, context: Any) -> Pressure | None:
        """The caller's reported pressure if it is trusted and valid; invalid keys counted.

        An untrusted caller's headers are not decoded at all (nothing of them is parsed or
        kept): a call carrying any of our keys is counted as untrusted.
        """
        if not self.trust_all and not self.trusts(context):
            if metadata and any(pair[0] in wire.KEYS for pair in metadata):
                self.telemetry.add(UNTRUSTED_PEERS, 1)
            return None
        decoded = decode(metadata)
        if decoded.invalid:
            count_invalid(self.telemetry, decoded.invalid)
        return decoded.pressure

    def trusts(self, context: Any) -> bool:
        """Whether the trust policy trusts this call's peer. A policy of networks only is
        memoized per peer address (a TLS identity is asked of every call: an address and
        port can come back on a new connection with another certificate)."""
        peer = context.peer()
        if self.trust.identities:
            return self.trust.trusts(peer, _identities(context))
        trusted = self._trusted_peers.get(peer)
        if trusted is None:
            trusted = self.trust.trusts(peer)
            if len(self._trusted_peers) >= _MAX_PEERS:
                self._trusted_peers.clear()
            self._trusted_peers[peer] = trusted
        return trusted

    def admit(self, method: str | bytes, context: Any) -> tuple[Pressure | None, Snapshot, bool]:
        """Start of a call: the caller's pressure, the snapshot in force, and whether to shed."""
        snapshot = self.guard.snapshot
        peer = self.caller_pressure(context.invocation_metadata(), context)
        return peer, snapshot, snapshot.critical and self.sheds(snapshot, method)

    def sheds(self, snapshot: Snapshot, method: str | bytes) -> bool:
        """Whether this call is shed now (level 3, not core, not dry run); counted.

        While level 3 sheds half-open (``snapshot.admit`` > 0) every call adds ``admit`` to a
        credit and a call that brings it to 1 is admitted: exactly that fraction, evenly
        spread, no random draw. Threads racing on the credit only blur the fraction.
        """
        if snapshot.pressure.level != Level.CRITICAL or self.is_core(method):
            return False
        if snapshot.shedding:
            if snapshot.admit > 0.0:
                credit = self._credit + snapshot.admit
                if credit >= 1.0:
                    self._credit = credit - 1.0
                    self.telemetry.add(HALF_OPEN_ADMITS, 1)
                    return False
                self._credit = credit
            self.telemetry.add(SHEDS, 1, NONCORE)
            self.count_error()
            return True
        self.telemetry.add(WOULD_SHED, 1, NONCORE)
        return False


def count_invalid(telemetry: Any, keys: tuple[str, ...]) -> None:
    """Count a peer's invalid ``x-memory-*`` values, by key."""
    for key in keys:
        telemetry.add(INVALID_HEADERS, 1, {"key": key})


def _identities(context: Any) -> list[str]:
    try:
        found = context.peer_identities() or ()
    except Exception:  # not every context has TLS identities
        return []
    return [i.decode("utf-8", "replace") if isinstance(i, bytes) else str(i) for i in found]


def merged(theirs: Iterable[tuple[str, Any]] | None, ours: Metadata) -> Metadata:
    """The handler's trailers followed by ours (ours win on our own keys)."""
    kept = tuple((k, v) for k, v in safe_metadata(theirs) if k not in _OUR_TRAILER_KEYS)
    return kept + ours


_OUR_TRAILER_KEYS = frozenset({*wire.KEYS, wire.ORCA_BIN, wire.RETRY_PUSHBACK})


class ClientSide:
    """The client's per-call work, shared by the sync and aio adapters.

    Without a ``target`` the channel's own target (as grpcio reports it on a finished call) is
    the key in the peer table: a channel can only be blocked by what its own calls reported,
    so until a call has finished there is nothing to key. Where grpcio does not say, the key is
    a name of this interceptor's own (``channel-N``), so channels are never confused.
    """

    def __init__(
        self,
        guard: Guard,
        target: str | None,
        peers: CalleeTable | None,
        trust: TrustPolicy | None = None,
    ) -> None:
        self.guard = guard
        self.trust = trust or TrustPolicy()
        self.target = target or f"channel-{next(_CHANNEL_NUMBERS)}"
        self.learns_target = not target
        self._trusted = self.trust.trusts_target(target) if target else self.trust.trust_all
        self.peers = peers if peers is not None else guard.peers
        self.telemetry = guard.telemetry
        self.is_core = CoreMethods(guard)
        # The table's own dict: empty unless some target is at level 3, so the adapters test it
        # before calling fails_fast() (a call costs one truth test while nobody is).
        self.blocked_until = self.peers.blocked_until
        self.clock = self.peers.clock
        # A callee at level 1 or 2 resends the same -bin bytes until its sampler runs again:
        # while they are unchanged a call only checks them, and the table entry is refreshed a
        # few times per ttl instead of on every call.
        self.last_bin: object = None
        self.last_instance = 0
        self.fresh_until = 0.0
        self._told: WireVersion | None = None  # what this channel's calls last carried

    def ours(self) -> Metadata:
        """This process's keys for the next call: every call's unless quiet; quiet, once per
        change on this channel (calm is free, :mod:`memcontract.calm`)."""
        snapshot = self.guard.snapshot
        version = snapshot.wire
        if version.quiet and version is self._told:
            return ()
        self._told = version
        return snapshot.request_metadata

    def learn_target(self, target: str | bytes | None) -> None:
        """Key this channel by ``target``, its own target as grpcio reports it (once)."""
        if not target:
            return
        if isinstance(target, bytes):
            target = target.decode("utf-8", "replace")
        self._trusted = self.trust.trusts_target(target)
        self.target = target
        self.learns_target = False
        self.last_bin = None

    def outgoing(self, metadata: Iterable[tuple[str, Any]] | None) -> Metadata:
        """The call's metadata plus this process's keys (any stale copies of ours dropped)."""
        ours = self.ours()
        if not metadata:
            return ours
        return tuple((k, v) for k, v in safe_metadata(metadata) if k not in wire.KEYS) + ours

    def fails_fast(self, method: str | bytes) -> bool:
        """Whether a call fails locally: the method is not core and the target's backends all
        report level 3 (:meth:`CalleeTable.fails_fast`; its probe goes out)."""
        if self.is_core(method) or not self.peers.fails_fast(self.target):
            return False
        self.telemetry.add(FAST_FAILS, 1, NONCORE)
        return True

    def pushback_ms(self) -> int:
        """Milliseconds left in the target's fail-fast window (at least 1)."""
        entry = self.peers.blocked_for(self.target)
        return max(1, round(entry * 1000))

    def record(self, trailers: Sequence[tuple[str, Any]] | None, core: bool = False) -> None:
        """Read the callee's keys (and any pushback) from trailers into the peer table: every
        finished call is an answer, one without keys (or none valid) a calm one. A non-core
        call answered at level 3 without a pushback was admitted (:class:`CalleeTable`);
        ``core``: the call was core, whose answer cannot say that.

        A callee the trust policy does not trust is not read at all (counted as untrusted when
        its trailers carry our keys): it can neither block this channel nor steer routing.
        """
        try:
            if not self._trusted:
                if trailers and any(pair[0] in wire.KEYS for pair in trailers):
                    self.telemetry.add(UNTRUSTED_PEERS, 1)
                return
            raw = None
            if trailers:
                # Ours come last (the ORCA report after them is hidden from Python): look there
                # first. Otherwise the last occurrence, as decode() reads it.
                key, value = trailers[-1]
                if key == _PRESSURE_BIN:
                    raw = value
                else:
                    for key, value in trailers:
                        if key == _PRESSURE_BIN:
                            raw = value
            if raw is not None and raw == self.last_bin and self.clock() < self.fresh_until:
                self.peers.record_calm(self.target, self.last_instance)
                return
            self.last_bin = None
            decoded = decode(trailers)
            if decoded.invalid:
                count_invalid(self.telemetry, decoded.invalid)
            pressure = decoded.pressure
            if pressure is None:
                self.peers.record_calm(self.target)
                return
            instance = decoded.instance_id
            shed, pushback = _pushback(trailers)
            admitted = not core and not shed
            self.peers.record(
                self.target, pressure, pushback, instance, admitted=admitted, core=core
            )
            if raw is not None and not decoded.invalid and pressure.level != Level.CRITICAL:
                self.last_bin, self.last_instance = raw, instance
                self.fresh_until = self.clock() + self.peers.ttl / 4
        except Exception:  # a hook never breaks an RPC
            self.telemetry.add(HOOK_ERRORS, 1, {"hook": "client.record"})
            log.exception("memcontract: reading the callee's trailers failed")


_CHANNEL_NUMBERS = itertools.count(1)
_PRESSURE_BIN = wire.PRESSURE_BIN  # a local name: looked up on every call


def _pushback(trailers: Sequence[tuple[str, Any]] | None) -> tuple[bool, int | None]:
    """Whether the trailers carry a pushback (the call was shed, whatever its value says), and
    its milliseconds where the value is one (nine digits at most, as the Go client reads it)."""
    for key, value in trailers or ():
        if key == wire.RETRY_PUSHBACK:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            return True, int(text) if text.isdigit() and len(text) <= 9 else None
    return False, None


def fast_fail_details(target: str) -> str:
    """Status details of a call failed locally."""
    return f"memcontract: {target} reports memory level 3; call not sent (fail fast)"


SHED_CODE = grpc.StatusCode.RESOURCE_EXHAUSTED

# Builds a namedtuple (call details) from a tuple without its Python-level __new__: a third of
# a client interceptor's own per-call time.
new_tuple = tuple.__new__


class HandlerCache(Generic[Wrapped]):
    """What a handler is wrapped into, memoized per method (and checked to be for the same
    handler object): the server's dispatch thread then pays one dict lookup per call instead of
    building a wrapper."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, Wrapped]] = {}

    def get(
        self,
        handler: grpc.RpcMethodHandler,
        method: str,
        wrap: Callable[[grpc.RpcMethodHandler, str], Wrapped],
    ) -> Wrapped:
        """``wrap(handler, method)``, built once per method and handler."""
        hit = self._wrapped.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = wrap(handler, method)
        if len(self._wrapped) >= _MAX_METHODS:
            self._wrapped.clear()
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def replace_behavior(handler: Any, wrap: Any) -> Any:
    """``handler`` with its one behavior replaced by ``wrap(behavior, response_streaming)``;
    (de)serializers and streaming flags are kept as they are."""
    if handler.request_streaming and handler.response_streaming:
        return handler._replace(stream_stream=wrap(handler.stream_stream, True))
    if handler.request_streaming:
        return handler._replace(stream_unary=wrap(handler.stream_unary, False))
    if handler.response_streaming:
        return handler._replace(unary_stream=wrap(handler.unary_stream, True))
    return handler._replace(unary_unary=wrap(handler.unary_unary, False))


class MergedStatus(grpc.Status):
    """A ``grpc.Status`` whose trailers are the handler's plus ours."""

    def __init__(self, status: Any, ours: Metadata) -> None:
        self.code = status.code
        self.details = status.details
        self.trailing_metadata = merged(getattr(status, "trailing_metadata", None), ours)
