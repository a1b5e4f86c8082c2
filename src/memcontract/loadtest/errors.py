"""Errors of the load harness.

::

    MemcontractError
     +-- LoadTestError        bad arguments or input (the CLI prints it and exits 2)
     +-- TargetUnreachable    the target did not answer in time (the CLI exits 1)
"""

from __future__ import annotations

from ..errors import MemcontractError


class LoadTestError(MemcontractError, ValueError):
    """A load-test argument or input is invalid; the message names the flag or file."""


class TargetUnreachable(MemcontractError, ConnectionError):
    """The target could not be reached (connection refused, no route, TLS failure, timeout)."""
