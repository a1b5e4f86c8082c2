"""The catch-all handler: every method the gateway does not serve itself is forwarded.

A ``grpc.GenericRpcHandler`` whose method handlers have no (de)serializers hands the
behaviors raw bytes: no generated code is needed. The arity decides the handler's shape (a
unary method gets grpcio's cheaper unary path); an unknown method is a raw bidi stream, which
carries any arity.
"""

from __future__ import annotations

from typing import Any

import grpc

from .arity import Arities, Arity
from .pump import Pump

_MAX_METHODS = 4096  # bounds the cache against clients inventing method names

_MAKERS = {
    Arity.UNARY_UNARY: grpc.unary_unary_rpc_method_handler,
    Arity.UNARY_STREAM: grpc.unary_stream_rpc_method_handler,
    Arity.STREAM_UNARY: grpc.stream_unary_rpc_method_handler,
    Arity.STREAM_STREAM: grpc.stream_stream_rpc_method_handler,
}


class ProxyHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Forwards every method through ``pump``, shaped by ``arities``; one method handler per
    method, built on its first call."""

    def __init__(self, pump: Pump, arities: Arities) -> None:
        self.pump = pump
        self.arities = arities
        self._handlers: dict[str | bytes, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler:
        """The handler of the call's method (grpc calls this once per call)."""
        method = handler_call_details.method
        found = self._handlers.get(method)
        if found is None:
            found = self._build(method)
        return found

    def forget(self) -> None:
        """Drop the built handlers (after new arities were learned)."""
        self._handlers.clear()

    def _build(self, method: str | bytes) -> grpc.RpcMethodHandler:
        name = method.decode("utf-8", "replace") if isinstance(method, bytes) else method
        arity = self.arities.get(name)
        handler = _MAKERS[arity](self.pump.behavior(name, arity))
        if len(self._handlers) >= _MAX_METHODS:
            self._handlers.clear()
        self._handlers[method] = handler
        return handler
