"""gRPC bindings of memcontract (grpcio sync and grpc.aio, client and server).

Importable as ``memcontract.interceptors``; the core (``memcontract``) never imports grpc.

>>> import grpc, concurrent.futures
>>> from memcontract import Contract, Guard
>>> from memcontract.interceptors import server_interceptor
>>> guard = Guard(Contract.from_yaml("modules: [{name: api, max_heap_mb: 512}]"))
>>> server = grpc.server(concurrent.futures.ThreadPoolExecutor(4),
...                      interceptors=[server_interceptor(guard)])
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from memcontract.callees import CalleeTable
from memcontract.guard import Guard
from memcontract.trust import TrustPolicy

from ._aio_client import AioFastFailure, make_aio_client_interceptors
from ._aio_server import AioMemoryServerInterceptor
from ._client import FastFailure, MemoryClientInterceptor
from ._reflection import add_reflection
from ._server import MemoryServerInterceptor
from ._services import add_pressure_services
from ._wrap import wrap_channel, wrap_server

PeerTable = CalleeTable
"""The former name of :class:`memcontract.callees.CalleeTable`, kept for existing callers."""

__all__ = [
    "AioFastFailure",
    "CalleeTable",
    "FastFailure",
    "PeerTable",
    "TrustPolicy",
    "add_pressure_services",
    "add_reflection",
    "aio_client_interceptors",
    "aio_server_interceptor",
    "client_interceptor",
    "server_interceptor",
    "wrap_channel",
    "wrap_server",
]


def server_interceptor(guard: Guard, *, trust: TrustPolicy | None = None) -> grpc.ServerInterceptor:
    """A grpcio server interceptor: sheds non-core calls at level 3 with ``RESOURCE_EXHAUSTED``,
    exposes the caller's pressure through ``memcontract.peer_pressure()``, and adds this
    process's ``x-memory-*`` keys and ORCA report to call trailers: every call at level 1 and
    up; while calm, a connection's first call, after a change, and every 30 s
    (:mod:`memcontract.calm`).

    Args:
        guard: the process's guard (its cached snapshot is read per call; no I/O).
        trust: whose reported pressure counts (default: every caller).
    """
    return MemoryServerInterceptor(guard, trust)


def aio_server_interceptor(
    guard: Guard, *, trust: TrustPolicy | None = None
) -> grpc.aio.ServerInterceptor:
    """The grpc.aio twin of :func:`server_interceptor`, for coroutine, async-generator and
    sync handlers alike."""
    return AioMemoryServerInterceptor(guard, trust)


def client_interceptor(
    guard: Guard,
    target: str | None = None,
    *,
    peers: CalleeTable | None = None,
    trust: TrustPolicy | None = None,
) -> Any:
    """A grpcio client interceptor for one channel (all four arities).

    Adds this process's keys to calls (every call at level 1 and up; while calm, once per
    change), reads the callee's from trailers into ``peers`` (default ``guard.peers``) under
    ``target``, and while every backend behind the channel that answered in the last window
    reported level 3 fails non-core calls locally with ``RESOURCE_EXHAUSTED`` (one probe per
    window still goes out; the window is the callee's pushback, at most the contract's
    ``max_fail_fast_ms``).

    Args:
        guard: the process's guard.
        target: the callee's name in ``peers`` (what ``peers.get(target)`` sees). By
            default the channel's own target as grpcio
            reports it (``"127.0.0.1:50051"``, ``"dns:///inventory:50051"``), learned from the
            first call that finishes; give one interceptor per channel. Name it yourself to
            share a callee's state across channels, or to key it by a logical name.
        trust: which callees are believed (default: all). The target is judged: an address by
            ``networks``, a host name (or a ``target`` you named) by ``identities``. An
            untrusted callee's trailers are not read (counted as untrusted), so it cannot
            make this process fail fast.

    Example::

        channel = grpc.intercept_channel(grpc.insecure_channel("127.0.0.1:50051"),
                                         client_interceptor(guard))
    """
    return MemoryClientInterceptor(guard, target, peers, trust)


def aio_client_interceptors(
    guard: Guard,
    target: str | None = None,
    *,
    peers: CalleeTable | None = None,
    trust: TrustPolicy | None = None,
) -> list[grpc.aio.ClientInterceptor]:
    """The grpc.aio twin of :func:`client_interceptor`: a list of four, one per arity
    (pass it as ``grpc.aio.insecure_channel(target, interceptors=...)``; one list per
    channel)."""
    return make_aio_client_interceptors(guard, target, peers, trust)
