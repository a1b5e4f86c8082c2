"""YAML mechanics of contract files: bounded reading, composing with line numbers, typed values.

Private. The schema (which keys, which ranges, which defaults) lives in
:mod:`memcontract.contract`; this module only turns text into checked Python values and turns
every problem into a :class:`~memcontract.errors.ContractError` naming file, line and field.

We compose (never construct) the document so that every value keeps its line, and we build
plain values from scalar nodes with PyYAML's *safe* constructors only.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Collection
from typing import NoReturn

import yaml

from .errors import ContractError, did_you_mean, format_number

MAX_FILE_BYTES = 1024 * 1024
# Deeper than any valid contract (which nests 5 levels); bounds the composer's recursion.
MAX_DEPTH = 64
UINT32_MAX = 2**32 - 1

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_YAML + t for t in ("str", "int", "float", "bool", "null"))
_MAP_TAG = _YAML + "map"
_SEQ_TAG = _YAML + "seq"
_MERGE_TAG = _YAML + "merge"
# YAML 1.2 numbers that PyYAML's YAML 1.1 resolver reads as strings (``1e3``, ``5.``); the Go
# loader reads them as numbers, so we do too (but only when written plain, never quoted).
_YAML12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")

Scalar = str | int | float | bool | None


def read_file(path: str) -> str:
    """The text of a contract file; size, readability and encoding problems are ContractErrors."""
    try:
        with open(path, "rb") as f:
            # Check the size before reading so a huge file is never pulled into memory.
            size = os.fstat(f.fileno()).st_size
            _check_size(size, path)
            # st_size can lie (pipes, /proc); never read more than one byte past the limit.
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ContractError(f"cannot read file: {err.strerror or err}", path=path) from None
    _check_size(len(data), path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        message = f"file is not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})"
        raise ContractError(message, path=path, line=line) from None


def check_text_size(text: str, path: str) -> None:
    """Apply the file-size limit to text handed over directly."""
    size = len(text) if len(text) > MAX_FILE_BYTES else len(text.encode("utf-8", "surrogatepass"))
    _check_size(size, path)


def _check_size(size: int, path: str) -> None:
    if size > MAX_FILE_BYTES:
        raise ContractError(f"file is larger than 1 MiB ({size} bytes)", path=path)


def line_of(node: yaml.Node | None) -> int | None:
    """The 1-based line where ``node`` starts."""
    mark = node.start_mark if node is not None else None
    return mark.line + 1 if mark is not None else None


def join(field: str | None, key: str | int) -> str:
    """``field.key`` or ``field[i]``; the root has no field."""
    if isinstance(key, int):
        return f"{field or ''}[{key}]"
    return f"{field}.{key}" if field else key


class _Composer(yaml.SafeLoader):
    """A SafeLoader composer that refuses anchors and aliases (alias bombs) and deep nesting."""

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text)
        self._path = path
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            self._fail(event.start_mark, "YAML anchors and aliases are not allowed")
        if self._depth >= MAX_DEPTH:
            self._fail(event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _fail(self, mark: yaml.Mark | None, message: str) -> NoReturn:
        line = mark.line + 1 if mark is not None else None
        raise ContractError(message, path=self._path, line=line)


def compose(text: str, path: str) -> yaml.Node | None:
    """The document's node tree (``None`` for an empty document); bad YAML is a ContractError."""
    loader: _Composer | None = None
    try:
        loader = _Composer(text, path)
        return loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or err.context or "malformed document"
        raise ContractError(f"invalid YAML: {problem}", path=path, line=line) from None
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise ContractError(f"invalid YAML: {err.reason}", path=path, line=line) from None
    except yaml.YAMLError as err:
        raise ContractError(f"invalid YAML: {err}", path=path) from None
    finally:
        if loader is not None:
            loader.dispose()


def _describe(node: yaml.Node, value: Scalar = None) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"a string ({shown!r})"


class Walker:
    """Reads typed values out of composed nodes; every failure names file, line and field."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._constructor = yaml.constructor.SafeConstructor()

    def fail(self, message: str, node: yaml.Node | None, field: str | None) -> NoReturn:
        """Raise the ContractError for ``node``."""
        raise ContractError(message, path=self.path, line=line_of(node), field=field)

    def scalar(self, node: yaml.Node, field: str | None, what: str = "a single value") -> Scalar:
        """The value of a scalar node: str, int, float, bool or None (``what`` is expected)."""
        if not isinstance(node, yaml.ScalarNode):
            self.fail(f"expected {what}, got {_describe(node)}", node, field)
        if node.tag not in _SCALAR_TAGS:
            self.fail(f"unsupported YAML value (tag {node.tag}); quote it", node, field)
        try:
            value = self._constructor.construct_object(node, deep=True)
        # PyYAML's scalar constructors raise assorted built-in errors (IndexError, KeyError,
        # ValueError) on explicitly tagged junk such as ``!!int ""``; all of it is bad input.
        except Exception as err:
            self.fail(f"unreadable value: {err}", node, field)
        assert value is None or isinstance(value, str | int | float | bool)
        return value

    def mapping(
        self, node: yaml.Node, field: str | None, allowed: Collection[str]
    ) -> dict[str, yaml.Node]:
        """The value nodes of a mapping by key; unknown and duplicate keys are errors."""
        self._check_tag(node, field)
        if not isinstance(node, yaml.MappingNode):
            self.fail(f"expected a mapping, got {self._describe(node, field)}", node, field)
        result: dict[str, yaml.Node] = {}
        first_line: dict[str, int | None] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, field)
            key_field = join(field, key)
            if key in result:
                message = f"duplicate key {key!r} (first at line {first_line[key]})"
                self.fail(message, key_node, key_field)
            if key not in allowed:
                self.fail(f"unknown key {key!r}{did_you_mean(key, allowed)}", key_node, key_field)
            result[key] = value_node
            first_line[key] = line_of(key_node)
        return result

    def _key(self, node: yaml.Node, field: str | None) -> str:
        if isinstance(node, yaml.ScalarNode) and node.tag == _MERGE_TAG:
            self.fail("merge keys (<<) are not allowed", node, field)
        if not isinstance(node, yaml.ScalarNode):
            self.fail(f"keys must be strings, got {_describe(node)}", node, field)
        key = self.scalar(node, field)
        if not isinstance(key, str):
            self.fail(f"keys must be strings, got {_describe(node, key)}", node, field)
        return key

    def sequence(self, node: yaml.Node, field: str) -> list[yaml.Node]:
        """The item nodes of a list."""
        self._check_tag(node, field)
        if not isinstance(node, yaml.SequenceNode):
            self.fail(f"expected a list, got {self._describe(node, field)}", node, field)
        items: list[yaml.Node] = node.value
        return items

    def string(self, node: yaml.Node, field: str, *, what: str = "a string") -> str:
        """A string value (numbers, booleans and null are not strings)."""
        value = self.scalar(node, field, what)
        if not isinstance(value, str):
            self.fail(f"expected {what}, got {_describe(node, value)}", node, field)
        return value

    def strings(self, node: yaml.Node, field: str) -> list[tuple[yaml.Node, str]]:
        """A list of strings, each with its node (for line numbers)."""
        return [
            (item, self.string(item, join(field, i)))
            for i, item in enumerate(self.sequence(node, field))
        ]

    def boolean(self, node: yaml.Node, field: str) -> bool:
        """A boolean (``true``/``false``)."""
        value = self.scalar(node, field, "true or false")
        if not isinstance(value, bool):
            self.fail(f"expected true or false, got {_describe(node, value)}", node, field)
        return value

    def integer(self, node: yaml.Node, field: str, *, low: int, high: int = UINT32_MAX) -> int:
        """An integer in ``[low, high]`` (booleans and floats are not integers)."""
        value = self.scalar(node, field, "an integer")
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"expected an integer, got {_describe(node, value)}", node, field)
        if not low <= value <= high:
            self.fail(f"must be between {low} and {high}, got {value}", node, field)
        return value

    def number(
        self,
        node: yaml.Node,
        field: str,
        *,
        above: float = 0.0,
        at_most: float = math.inf,
        below: float = math.inf,
    ) -> float:
        """A finite number with ``above < value <= at_most`` and ``value < below``."""
        value = self._finite(node, field)
        got = format_number(value)
        if value <= above:
            self.fail(f"must be greater than {format_number(above)}, got {got}", node, field)
        if value > at_most:
            self.fail(f"must be at most {format_number(at_most)}, got {got}", node, field)
        if value >= below:
            self.fail(f"must be less than {format_number(below)}, got {got}", node, field)
        return value

    def _finite(self, node: yaml.Node, field: str) -> float:
        value = self.scalar(node, field, "a number")
        if isinstance(value, str) and node.tag == _YAML + "str" and _is_plain_number(node, value):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"expected a number, got {_describe(node, value)}", node, field)
        try:
            number = float(value)
        except OverflowError:
            self.fail("number is too large", node, field)
        if not math.isfinite(number):
            self.fail(f"must be a finite number, got {number!r}", node, field)
        return number

    def _check_tag(self, node: yaml.Node, field: str | None) -> None:
        # A collection with another tag (!!set, !!omap, !custom) is not a plain map or list.
        if isinstance(node, yaml.CollectionNode) and node.tag not in (_MAP_TAG, _SEQ_TAG):
            self.fail(f"unsupported YAML value (tag {node.tag})", node, field)

    def _describe(self, node: yaml.Node, field: str | None) -> str:
        if isinstance(node, yaml.ScalarNode):
            return _describe(node, self.scalar(node, field))
        return _describe(node)


def _is_plain_number(node: yaml.Node, value: str) -> bool:
    plain = isinstance(node, yaml.ScalarNode) and node.style is None
    return plain and _YAML12_FLOAT.fullmatch(value) is not None
