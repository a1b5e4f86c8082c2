"""Inline suppression: ``# memcontract: ignore[MC003] reason`` on the finding's line.

One comment may name several codes (``ignore[MC001,MC003]``). As in staticcheck, a suppression
must say why (MC901 otherwise: the finding stays suppressed, this one takes its place) and one
that suppresses nothing is itself reported (MC902), as is one naming an unknown code. A code
that was redirected in the registry still suppresses its successor's findings. Contract YAML
files take the same comment.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field

from .finding import Finding
from .registry import resolve

_DIRECTIVE = re.compile(r"#\s*memcontract:\s*ignore\b(?P<rest>.*)")
_CODES = re.compile(r"\[(?P<codes>[^\]]*)\](?P<reason>.*)")
_REASON_LEAD = " \t-:\N{EM DASH}"
_YAML_COMMENT = re.compile(r"(?:^|\s)(#.*)$")


@dataclass
class Directive:
    """One suppression comment.

    Attributes:
        line: 1-based line of the comment (the line it applies to).
        column: 1-based character column of its ``#``.
        codes: the codes as written (empty when the comment is malformed).
        reason: the text after the codes, stripped; empty when missing.
    """

    line: int
    column: int
    codes: tuple[str, ...]
    reason: str
    malformed: bool = False
    used: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, comment: str, line: int, column: int) -> Directive | None:
        """The directive in ``comment`` (a ``#`` comment's text), or ``None`` if it has none."""
        match = _DIRECTIVE.match(comment)
        if match is None:
            return None
        codes = _CODES.match(match["rest"].lstrip())
        if codes is None:
            return cls(line, column, (), "", malformed=True)
        names = tuple(c.strip().upper() for c in codes["codes"].split(",") if c.strip())
        return cls(line, column, names, codes["reason"].strip(_REASON_LEAD).strip())


def python_directives(text: str) -> list[Directive]:
    """The directives in a Python file's comments (strings that look like one do not count)."""
    directives = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                d = Directive.parse(tok.string, tok.start[0], tok.start[1] + 1)
                if d is not None:
                    directives.append(d)
    except (tokenize.TokenError, SyntaxError):
        pass  # the file does not parse: MC900 reports it, nothing is suppressed
    return directives


def yaml_directives(text: str) -> list[Directive]:
    """The directives in a YAML file's comments (a ``#`` at a line start or after a blank)."""
    directives = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _YAML_COMMENT.search(line)
        if match:
            d = Directive.parse(match[1], number, match.start(1) + 1)
            if d is not None:
                directives.append(d)
    return directives


def apply(findings: Iterable[Finding], directives: list[Directive], path: str) -> list[Finding]:
    """The findings left after suppression, plus MC901 and MC902 findings for the directives."""
    by_line: dict[int, list[Directive]] = {}
    for d in directives:
        by_line.setdefault(d.line, []).append(d)
    kept = [f for f in findings if not _suppress(f, by_line.get(f.line, ()))]
    for d in directives:
        kept.extend(_check(d, path))
    return kept


def _suppress(finding: Finding, directives: Iterable[Directive]) -> bool:
    if not finding.rule.suppressible:
        return False
    for d in directives:
        for code in d.codes:
            row = resolve(code)
            if row is not None and row.code == finding.code:
                d.used.add(code)
                return True
    return False


def _check(d: Directive, path: str) -> list[Finding]:
    def finding(code: str, message: str) -> Finding:
        return Finding(path, d.line, d.column, code, message)

    if d.malformed or not d.codes:
        return [finding("MC902", "malformed suppression: write # memcontract: ignore[CODE] reason")]
    out = []
    for code in d.codes:
        row = resolve(code)
        if row is None:
            out.append(finding("MC902", f"suppression names unknown code {code}"))
        elif not row.suppressible:
            out.append(finding("MC902", f"{code} cannot be suppressed"))
        elif code not in d.used:
            out.append(finding("MC902", f"unused suppression: no {row.code} finding on this line"))
    if d.used and not d.reason:
        codes = ",".join(d.codes)
        out.append(
            finding(
                "MC901",
                f"suppression of {codes} gives no reason: "
                f"write # memcontract: ignore[{codes}] <why it does not apply>",
            )
        )
    return out
