"""A Python file read once: its text, lines and tree, and ast positions in characters."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property


@dataclass
class Source:
    """The text of one file and what the rules need to place findings in it.

    Attributes:
        path: the file as shown in findings.
        text: its contents (decoded as UTF-8).
    """

    path: str
    text: str
    lines: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.lines = self.text.splitlines()

    @cached_property
    def tree(self) -> ast.Module:
        """The parsed module (raises ``SyntaxError``)."""
        return ast.parse(self.text, filename=self.path, type_comments=False)

    def column(self, line: int, byte_offset: int) -> int:
        """The 1-based character column of a UTF-8 byte offset on a 1-based line.

        ``ast`` gives ``col_offset`` in UTF-8 bytes; editors and SARIF count characters:

        >>> Source("x.py", "s = 'é'; bytearray(n)\\n").column(1, 10)
        10
        """
        if not 0 < line <= len(self.lines):
            return byte_offset + 1
        prefix = self.lines[line - 1].encode("utf-8")[:byte_offset]
        return len(prefix.decode("utf-8", errors="replace")) + 1
