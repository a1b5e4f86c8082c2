"""``memcontract top``: watch the memory state of any number of services (docs/design.md §10).

Each target is read through its ``MemoryPressureService`` (``WatchPressure``), or, for a service
without it, through the ``x-memory-*`` trailers of a health check every second. An application
package: it imports the core and grpc; the core never imports it.
"""

from __future__ import annotations

from .collect import TargetState, Watcher, parse_target, read_once
from .view import render_table, state_json

__all__ = ["TargetState", "Watcher", "parse_target", "read_once", "render_table", "state_json"]
