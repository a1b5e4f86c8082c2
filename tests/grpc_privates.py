"""Run the sync interceptors as if grpcio had renamed its private fields (``pytest
--hide-grpc-privates``): the servicer context and the call objects memcontract sees expose
their public API only, so every read of a private field (``call._call._state`` and
``call._state``, for a channel's target) takes its fallback.

Each refused read is counted; the session prints ``grpc private reads refused: N``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import memcontract.interceptors._aio_server as aio_server_module
import memcontract.interceptors._server as server_module
from memcontract.interceptors._client import MemoryClientInterceptor

refused = 0
_lock = threading.Lock()


def _refuse(owner: object, name: str) -> AttributeError:
    global refused
    with _lock:
        refused += 1
    return AttributeError(f"{type(owner).__name__} shows no private field {name!r}")


class PublicContext:
    """A servicer context with its public methods only."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise _refuse(self._context, name)
        return getattr(self._context, name)


class PublicCall:
    """A client call (outcome, future or stream) with its public API only."""

    def __init__(self, call: Any) -> None:
        self._inner = call

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise _refuse(self._inner, name)
        return getattr(self._inner, name)

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self._inner.add_done_callback(lambda _: fn(self))

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._inner)


def _hiding_behaviors(make: Any) -> Any:
    def make_hiding(side: Any, method: str, **kw: Any) -> Any:
        wrap = make(side, method, **kw)

        def wrap_hiding(behavior: Any, response_streaming: bool) -> Any:
            wrapped = wrap(behavior, response_streaming)

            def with_public_context(request: Any, context: Any) -> Any:
                return wrapped(request, PublicContext(context))

            return with_public_context

        return wrap_hiding

    return make_hiding


def install() -> None:
    """Hide grpcio's private fields from memcontract's sync interceptors, for this process."""
    hiding = _hiding_behaviors(server_module.make_sync_behavior)
    server_module.make_sync_behavior = hiding
    aio_server_module.make_sync_behavior = hiding  # sync handlers on an aio server
    call = MemoryClientInterceptor._call

    def call_hiding(self: Any, continuation: Any, details: Any, request: Any) -> Any:
        return call(self, lambda d, r: PublicCall(continuation(d, r)), details, request)

    for name in (
        "intercept_unary_unary",
        "intercept_unary_stream",
        "intercept_stream_unary",
        "intercept_stream_stream",
    ):
        setattr(MemoryClientInterceptor, name, call_hiding)
