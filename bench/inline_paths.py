"""The sync interceptors' former inline fast paths, for ``bench/overhead.py``'s A/B (issue 23
item 3): run with ``MEMCONTRACT_BENCH_AB=inline`` it adds a variant ``inline`` beside
``memcontract`` (the shared path the library runs).

Server: a unary call's start inlined (the caller's keys decoded in place, the snapshot's
checks without :meth:`ServerSide.admit`), grpcio's private ``context._rpc_event`` and
``context._state`` read instead of ``invocation_metadata()`` and ``trailing_metadata()``.
Client: a blocking unary call's trailers read from ``call._call._state`` instead of through a
done-callback and grpcio's locked accessor. Copied from the library as it was before the fold
(commit 34fbdbc); not used by the library.
"""

from __future__ import annotations

from typing import Any

import grpc
from memcontract.interceptors._client import FastFailure, MemoryClientInterceptor, _CallDetails
from memcontract.interceptors._memo import decode
from memcontract.interceptors._server import MemoryServerInterceptor, _shed, make_sync_behavior
from memcontract.interceptors._shared import (
    ServerSide,
    count_invalid,
    fast_fail_details,
    merged,
    new_tuple,
    replace_behavior,
)

from memcontract.caller import bind_caller_pressure, unbind_caller_pressure


def inline_sync_behavior(side: ServerSide, method: str) -> Any:
    """``make_sync_behavior(side, method, merge_at_end=True)`` with the unary path inlined."""
    shared = make_sync_behavior(side, method, merge_at_end=True)
    guard, trust_all, telemetry = side.guard, side.trust_all, side.telemetry
    count_call, count_error = side.count_call, side.count_error

    def wrap(behavior: Any, response_streaming: bool) -> Any:
        if response_streaming:
            return shared(behavior, True)

        def unary(request: Any, context: Any) -> Any:
            count_call()
            try:
                metadata = context._rpc_event.invocation_metadata
            except AttributeError:
                metadata = context.invocation_metadata()
            if trust_all:
                decoded = decode(metadata)
                peer = decoded.pressure
                if decoded.invalid:
                    count_invalid(telemetry, decoded.invalid)
            else:
                peer = side.caller_pressure(metadata, context)
            snapshot = guard.snapshot
            if snapshot.critical and side.sheds(snapshot, method):
                _shed(context, snapshot)
            ours = snapshot.trailing_metadata
            if snapshot.wire.quiet:
                ours = side.trailers(context, snapshot)
            if ours:
                context.set_trailing_metadata(ours)
            token = None if peer is None else bind_caller_pressure(peer)
            try:
                return behavior(request, context)
            except BaseException:
                count_error()
                raise
            finally:
                if token is not None:
                    unbind_caller_pressure(token)
                if ours:
                    try:
                        theirs = context._state.trailing_metadata
                    except AttributeError:
                        theirs = context.trailing_metadata()
                    if theirs is not ours:
                        context.set_trailing_metadata(merged(theirs, ours))

        return unary

    return wrap


class InlineServer(MemoryServerInterceptor):
    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        return replace_behavior(handler, inline_sync_behavior(self.side, method))


class InlineClient(MemoryClientInterceptor):
    def _call(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        side = self.side
        details = client_call_details
        if side.blocked_until and side.fails_fast(details.method):
            return FastFailure(fast_fail_details(side.target), side.pushback_ms())
        metadata = details.metadata
        try:
            wait_for_ready, compression = details.wait_for_ready, details.compression
        except AttributeError:
            wait_for_ready = getattr(details, "wait_for_ready", None)
            compression = getattr(details, "compression", None)
        call = continuation(
            new_tuple(
                _CallDetails,
                (
                    details.method,
                    details.timeout,
                    side.outgoing(metadata) if metadata else side.ours(),
                    details.credentials,
                    wait_for_ready,
                    compression,
                ),
            ),
            request,
        )
        try:
            state = call._call._state
        except AttributeError:
            call.add_done_callback(self._record)
            return call
        if side.learns_target:
            side.learn_target(getattr(state, "target", None))
        side.record(state.trailing_metadata)
        return call

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call
