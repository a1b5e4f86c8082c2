"""The caller's pressure for the call being handled (docs/design.md §7), set by the server
interceptors."""

from __future__ import annotations

from contextvars import ContextVar, Token

from .pressure import Pressure

_peer: ContextVar[Pressure | None] = ContextVar("memcontract_peer_pressure", default=None)


def peer_pressure() -> Pressure | None:
    """The pressure the current call's (trusted) caller reported, or ``None``.

    Works in sync and aio handlers alike (a contextvar set for the call).
    """
    return _peer.get()


def bind_peer_pressure(pressure: Pressure | None) -> Token[Pressure | None]:
    """Set the caller's pressure for the current call (for adapters such as the interceptors)."""
    return _peer.set(pressure)


def unbind_peer_pressure(token: Token[Pressure | None]) -> None:
    """Undo :func:`bind_peer_pressure`; tolerant of a generator finalized in another context."""
    try:
        _peer.reset(token)
    except ValueError:
        _peer.set(None)


# The interceptors' per-call pair: the contextvar's own methods, no Python frame of ours around
# them. ``unbind`` raises ValueError for a token of another context; the sync unary path binds
# and unbinds in one frame, where that cannot happen.
bind = _peer.set
unbind = _peer.reset
