"""Live progress on a terminal (rich): one table row per second as it closes.

Quiet when stdout is not a terminal (scripts and CI read only the final summary).
"""

from __future__ import annotations

import sys
from collections import deque
from types import TracebackType
from typing import Any

from .result import Second

ROWS = 12  # seconds shown at once


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class LiveProgress:
    """A progress callback (``progress(second)``) that redraws a small table; a context manager.

    ``enabled`` None means: only when stdout is a terminal. ``console``: a ``rich`` Console
    to draw on (default: stdout's).
    """

    def __init__(self, title: str, *, enabled: bool | None = None, console: Any = None) -> None:
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.title = title
        self.console = console
        self.rows: deque[Second] = deque(maxlen=ROWS)
        self.live: Any = None

    def __enter__(self) -> LiveProgress:
        if self.enabled:
            from rich.live import Live

            self.live = Live(
                self._table(), console=self.console, refresh_per_second=4, transient=False
            )
            self.live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live is not None:
            self.live.__exit__(kind, err, tb)

    def __call__(self, second: Second) -> None:
        self.rows.append(second)
        if self.live is not None:
            self.live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=self.title, title_justify="left")
        for column in ("s", "sent/s", "answered/s", "p99 ms", "usage %", "level", "statuses"):
            table.add_column(column, justify="left" if column == "statuses" else "right")
        for s in self.rows:
            codes = " ".join(f"{code}={n}" for code, n in s.codes.items())
            if s.dropped:
                codes += f" dropped={s.dropped}"
            table.add_row(
                str(s.second),
                str(s.sent),
                str(s.answered),
                _fmt(s.p99_ms, ".1f"),
                _fmt(s.usage_percent, ".1f"),
                _fmt(s.level, "d"),
                codes,
            )
        return table
