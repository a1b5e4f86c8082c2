"""One lint finding: a code, where (file, line, column) and a message."""

from __future__ import annotations

from dataclasses import dataclass

from .registry import BY_CODE, Code


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """A finding, ordered by file, line and column.

    Attributes:
        path: the file as shown to the user (relative to the working directory when inside it).
        line: 1-based line.
        column: 1-based column in characters (not the UTF-8 byte offset ``ast`` reports).
        code: the code in the registry, e.g. ``MC003``.
        message: what is wrong and what to do, one line.
    """

    path: str
    line: int
    column: int
    code: str
    message: str

    @property
    def rule(self) -> Code:
        """The registry row of :attr:`code`."""
        return BY_CODE[self.code]
