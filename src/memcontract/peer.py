"""The caller's pressure for the call being handled (SPEC §7), set by the server interceptors."""

from __future__ import annotations

from contextvars import ContextVar

from .pressure import Pressure

_peer: ContextVar[Pressure | None] = ContextVar("memcontract_peer_pressure", default=None)


def peer_pressure() -> Pressure | None:
    """The pressure the current call's (trusted) caller reported, or ``None``.

    Works in sync and aio handlers alike (a contextvar set for the call).
    """
    return _peer.get()
