"""This process's instance id: how a server names itself in its trailers (docs/design.md §5).

A client cannot see which backend behind a channel answered a call (grpcio exposes no peer on
a call object), so each process draws a random 64-bit id and sends it in its
``x-memory-pressure-bin``. A forked child is another backend: it draws its own.

>>> instance_id() != 0
True
"""

from __future__ import annotations

import os

_id = 0


def _draw() -> None:
    global _id
    _id = int.from_bytes(os.urandom(8), "big") or 1  # 0 means "not named" on the wire


def instance_id() -> int:
    """This process's instance id (nonzero; new in each forked child)."""
    return _id


_draw()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_draw)
