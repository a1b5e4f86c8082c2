"""Exceptions raised by memcontract.

The hierarchy::

    MemcontractError            base of everything memcontract raises on purpose
     +-- ContractError          a contract file or value is invalid (names file, line, field)
     +-- GuardStateError        a Guard was used the wrong way (started twice, ...)
     +-- MetricsError           the Prometheus endpoint cannot be set up as asked

Runtime failures of memory sources, user callbacks and actions are never raised: they are
logged once and counted (``memcontract.probe.failures``, ``memcontract.hook.errors``).
"""

from __future__ import annotations


class MemcontractError(Exception):
    """Base class of the exceptions memcontract raises."""


class ContractError(MemcontractError, ValueError):
    """A contract file or value is invalid.

    ``str(err)`` reads ``FILE:LINE: FIELD: message``; the parts are also attributes
    (``path``, ``line`` 1-based or ``None``, ``field`` dotted like ``modules[0].ladder.heap``).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.path or "<contract>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class GuardStateError(MemcontractError, RuntimeError):
    """A Guard was used the wrong way, e.g. started while already running."""


class MetricsError(MemcontractError):
    """:func:`memcontract.metrics.serve_prometheus` cannot be set up as asked (a port out of
    range, another SDK MeterProvider already global): misuse, not a runtime failure."""
