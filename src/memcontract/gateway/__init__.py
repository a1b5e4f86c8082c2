"""``memcontract gateway``: a transparent, pressure-aware gRPC proxy (docs/design.md §8).

It forwards every method as raw bytes (no generated code), reads each upstream's memory state
from its trailers, sheds non-core calls at the edge while an upstream reports level 3, routes
to the less pressured upstream, and can run its own memory contract.

Parts: :mod:`.options` (what it is told), :mod:`.arity` (which methods stream),
:mod:`.director` (where a call goes), :mod:`.handler` (the catch-all),
:mod:`.pump` (copying a call both ways), :mod:`.server` (running it).
"""

from .options import GatewayConfigError, GatewayOptions, load_config
from .server import run, serve

__all__ = ["GatewayConfigError", "GatewayOptions", "load_config", "run", "serve"]
