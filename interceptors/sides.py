"""The per-call halves of the interceptors, for applications built on them.

:class:`ServerSide` decides what a server does with one call (classify the method, read the
caller's pressure, shed at level 3); :class:`ClientSide` what a client does (add this process's
keys, fail fast while the callee sheds, record the callee's trailers). The four interceptors are
thin adapters over them, and so is the gateway (``memcontract.gateway``), which forwards bytes
with no interceptor on its calls. ``merged`` combines a handler's trailers with ours;
``SHED_CODE`` is the status of a shed or failed-fast call.
"""

from __future__ import annotations

from ._shared import SHED_CODE, ClientSide, ServerSide, merged

__all__ = ["SHED_CODE", "ClientSide", "ServerSide", "merged"]
