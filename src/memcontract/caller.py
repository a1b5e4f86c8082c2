"""The caller's pressure for the call being handled (docs/design.md §7), set by the server
interceptors: a context variable, set and reset per call."""

from __future__ import annotations

from contextvars import ContextVar, Token

from .pressure import Pressure

_caller: ContextVar[Pressure | None] = ContextVar("memcontract_caller_pressure", default=None)


def peer_pressure() -> Pressure | None:
    """The pressure the current call's (trusted) caller reported, or ``None`` (nothing
    reported: calm).

    Works in sync and aio handlers alike (a contextvar set for the call).
    """
    return _caller.get()


# The contextvar's own method, no Python frame of ours around it: adapters call it per call.
bind_caller_pressure = _caller.set
"""Set the caller's pressure for the current call (for adapters such as the interceptors);
returns the token :func:`unbind_caller_pressure` takes."""


def unbind_caller_pressure(token: Token[Pressure | None]) -> None:
    """Undo :func:`bind_caller_pressure`; tolerant of a generator finalized in another context."""
    try:
        _caller.reset(token)
    except ValueError:
        _caller.set(None)
