"""Server reflection that also finds a method by its full name (``pkg.Service.Method``).

protobuf's upb descriptor pool (the default since protobuf 4) finds the file of a message,
enum or service by name, but not of a method, and grpcio-reflection asks the pool as it is.
Clients that resolve a method before calling it (ghz, ``grpcurl describe pkg.Svc.Method``)
then get NOT_FOUND from a Python server, where grpc-go and grpc-java servers answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import descriptor_pool


class MethodAwarePool:
    """A descriptor pool view whose ``FindFileContainingSymbol`` also resolves methods;
    everything else is the wrapped pool's."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def FindFileContainingSymbol(self, symbol: str) -> Any:
        """The file declaring ``symbol``; a method's is its service's file."""
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            service_name, _, method = symbol.rpartition(".")
            try:
                service = self._pool.FindServiceByName(service_name)
            except KeyError:
                service = None
            if service is None or method not in service.methods_by_name:
                raise
            return service.file


def add_reflection(
    server: Any,
    service_names: Iterable[str],
    *,
    pool: descriptor_pool.DescriptorPool | None = None,
) -> None:
    """Register ``grpc.reflection.v1alpha`` on a grpcio or grpc.aio server, listing
    ``service_names`` (include ``reflection.SERVICE_NAME`` to list reflection itself) and
    answering from ``pool`` (protobuf's default pool if None), methods included."""
    from grpc_reflection.v1alpha import reflection  # only servers that reflect pay its import

    view = MethodAwarePool(pool if pool is not None else descriptor_pool.Default())
    reflection.enable_server_reflection(tuple(service_names), server, pool=view)
