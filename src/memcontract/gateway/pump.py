"""Copying one call, event for event: client -> upstream and upstream -> client.

Each behavior here serves one client call on the gateway's grpc.aio server and makes one call
on the upstream's channel, both with no serializers, so messages stay bytes. What is copied:
the request metadata (as :meth:`Director.outgoing` filters it), the deadline (what is left of
it), the upstream's initial metadata (sent to the client as soon as the upstream sends it, not
with the first message), messages in order with flow control (a message is read from one side
only after the other took the last one), the trailers, and the status exactly as the upstream
sent it: CANCELLED and DEADLINE_EXCEEDED stay what they are. A client's cancellation cancels
the upstream call (the handler's task is cancelled, and the upstream call with it); an upstream
that fails or goes away ends the client's call with its status (UNAVAILABLE when it vanished).

The two directions of a streaming request: grpc.aio's client call consumes the request
iterator (the server's own reader of the client's messages) in a task of its own, half-closing
upstream when the client does, while the handler's task copies responses the other way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple, NoReturn

import grpc
import grpc.aio

from memcontract.interceptors.sides import SHED_CODE, ServerSide, merged

from .arity import Arity
from .director import Director, Upstream, edge_shed_trailers

Behavior = Callable[[Any, Any], Awaitable[Any]]
_EOF = grpc.aio.EOF


class _Shed(NamedTuple):
    """A call answered at the gateway: its trailers and status details."""

    trailers: Any
    details: str

    async def abort(self, context: Any) -> NoReturn:
        # aio's abort sends at once: the trailers go first
        context.set_trailing_metadata(self.trailers)
        await context.abort(SHED_CODE, self.details)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover


class Pump:
    """Builds the behavior that forwards one method, for each arity.

    Args:
        director: picks upstreams and filters metadata.
        own: the gateway's own server-side decisions (its contract): its level-3 sheds and its
            keys in every call's trailers. ``None``: the gateway reports nothing of its own.
    """

    def __init__(self, director: Director, own: ServerSide | None) -> None:
        self.director = director
        self.own = own
        self.edge_sheds = 0
        """Calls shed at the gateway because their upstream reports level 3."""
        # Upstreams resend the same trailers until their sampler runs again: the last merge
        # (their trailers, our keys, the result) is reused while both are unchanged.
        self._last_merge: tuple[Any, Any, Any] = ((), (), ())

    def behavior(self, method: str, arity: Arity) -> Behavior:
        """The coroutine forwarding calls of ``method`` (request first, then the context)."""
        make = {
            Arity.UNARY_UNARY: self._unary_unary,
            Arity.UNARY_STREAM: self._to_stream,
            Arity.STREAM_UNARY: self._to_stream,
            Arity.STREAM_STREAM: self._to_stream,
        }[arity]
        return make(method, arity)

    # -- per call ----------------------------------------------------------------------------

    def _route(self, method: str) -> Upstream | _Shed:
        # The gateway's own level 3 first, then its upstream's: neither shed call goes anywhere.
        # (Plain function: the common path costs no coroutine.)
        own = self.own
        if own is not None:
            snapshot = own.guard.snapshot
            if snapshot.critical and own.sheds(snapshot, method):
                details = f"memcontract gateway: {snapshot.shed_details}"
                return _Shed(snapshot.shed_trailers, details)
        upstream = self.director.pick()
        side = upstream.side
        if side.blocked_until and side.fails_fast(method):
            self.edge_sheds += 1
            details = (
                f"memcontract gateway: upstream {upstream.target} reports memory level 3; "
                "call not forwarded"
            )
            return _Shed(edge_shed_trailers(upstream), details)
        upstream.calls += 1
        return upstream

    def _trailers(self, context: Any, upstream: Upstream, trailers: Any) -> None:
        pairs = tuple(trailers or ())
        upstream.side.record(pairs)
        if self.own is not None:
            ours = self.own.guard.snapshot.trailing_metadata
            theirs, last_ours, result = self._last_merge
            if ours is not last_ours or pairs != theirs:
                result = merged(pairs, ours)
                self._last_merge = (pairs, ours, result)
            pairs = result
        if pairs:
            context.set_trailing_metadata(pairs)

    async def _fail(
        self, context: Any, upstream: Upstream, err: grpc.aio.AioRpcError, headers_sent: bool
    ) -> NoReturn:
        # The upstream's status as it sent it (trailers first: aio's abort sends at once).
        if not headers_sent:
            header = err.initial_metadata()
            if header:
                await context.send_initial_metadata(tuple(header))
        self._trailers(context, upstream, err.trailing_metadata())
        await context.abort(err.code(), err.details() or "")
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    # -- the arities -------------------------------------------------------------------------

    def _unary_unary(self, method: str, arity: Arity) -> Behavior:
        director = self.director

        async def unary_unary(request: bytes, context: Any) -> bytes:
            upstream = self._route(method)
            if isinstance(upstream, _Shed):
                await upstream.abort(context)
            call = upstream.callable(method, 0)(
                request, metadata=director.outgoing(context), timeout=context.time_remaining()
            )
            try:
                response: bytes = await call
            except grpc.aio.AioRpcError as err:
                await self._fail(context, upstream, err, headers_sent=False)
            except asyncio.CancelledError:
                call.cancel()
                raise
            header = await call.initial_metadata()
            if header:
                await context.send_initial_metadata(tuple(header))
            self._trailers(context, upstream, await call.trailing_metadata())
            return response

        return unary_unary

    def _to_stream(self, method: str, arity: Arity) -> Behavior:
        # Any streaming arity: the upstream call is made with the client's request (or the
        # client's request iterator), and responses are written as they come.
        director = self.director
        kind = {Arity.UNARY_STREAM: 1, Arity.STREAM_UNARY: 2, Arity.STREAM_STREAM: 3}[arity]
        response_streaming = arity.value[1]

        async def stream(request: bytes | AsyncIterator[bytes], context: Any) -> Any:
            upstream = self._route(method)
            if isinstance(upstream, _Shed):
                await upstream.abort(context)
            call = upstream.callable(method, kind)(
                request, metadata=director.outgoing(context), timeout=context.time_remaining()
            )
            headers_sent = False
            try:
                header = await call.initial_metadata()
                if header:
                    await context.send_initial_metadata(tuple(header))
                headers_sent = True
                if not response_streaming:
                    response = await call
                    self._trailers(context, upstream, await call.trailing_metadata())
                    return response
                while (message := await call.read()) is not _EOF:
                    await context.write(message)
            except grpc.aio.AioRpcError as err:
                await self._fail(context, upstream, err, headers_sent)
            except asyncio.CancelledError:
                call.cancel()
                raise
            self._trailers(context, upstream, await call.trailing_metadata())
            return None

        return stream
