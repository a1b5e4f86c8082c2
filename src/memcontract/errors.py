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

import difflib
from collections.abc import Iterable


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


# --- message helpers: how every configuration error names what was meant --------------------


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``word``, or an empty string.

    >>> "unknown key 'max_heap'" + did_you_mean("max_heap", ["max_heap_mb", "dry_run"])
    "unknown key 'max_heap' (did you mean 'max_heap_mb'?)"
    """
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def format_number(value: float) -> str:
    """A number as a contract file would write it: ``1800`` rather than ``1800.0``.

    >>> format_number(1800.0), format_number(12.5)
    ('1800', '12.5')
    """
    return str(int(value)) if value.is_integer() else repr(value)
