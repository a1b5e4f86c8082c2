"""gRPC bindings of memcontract (grpcio sync and grpc.aio, client and server).

Importable as ``memcontract.interceptors``; the core (``memcontract``) never imports grpc.
"""

__all__: list[str] = []
