"""The wire codec (docs/design.md §5): a :class:`Pressure` to and from gRPC metadata, both
languages alike.

Encoding is exact and shared with Go through ``tests/vectors``. Decoding is forgiving: a value
that does not parse is ignored for its key and named in :attr:`Decoded.invalid`; it never raises.

>>> md = encode(Pressure(usage_ratio=0.684, capacity_bytes=2 << 30, contract_version="v1.2"))
>>> [value for _, value in md[:4]]
['68.4%', '2048', 'v1.2', '0']
>>> decode(md).pressure.usage_ratio
0.684
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from google.protobuf.message import DecodeError
from xds.data.orca.v3 import orca_load_report_pb2

from .pressure import MIB, Level, Pressure
from .v1 import memcontract_pb2

USAGE = "x-memory-usage"
CAPACITY = "x-memory-capacity"
CONTRACT = "x-memory-contract"
LEVEL = "x-memory-level"
PRESSURE_BIN = "x-memory-pressure-bin"
ORCA_BIN = "endpoint-load-metrics-bin"
RETRY_PUSHBACK = "grpc-retry-pushback-ms"

KEYS = frozenset({USAGE, CAPACITY, CONTRACT, LEVEL, PRESSURE_BIN})
ORCA_LEVEL = "memcontract.level"
ORCA_ALLOC_RATE_RATIO = "memcontract.alloc_rate_ratio"

MAX_VALUE_BYTES = 64
MAX_USAGE_PERCENT = 1000.0
# The -bin value carries a handful of scalars; anything larger is not ours.
MAX_BIN_BYTES = 1024

_USAGE_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?%?")
_CAPACITY_RE = re.compile(r"[0-9]{1,12}")
_VERSION_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_LEVEL_RE = re.compile(r"[0-3]")
_LIVE_SOURCE_RE = re.compile(r"[A-Za-z0-9._+/-]{0,32}")

Metadata = tuple[tuple[str, str | bytes], ...]


def format_usage(usage_ratio: float) -> str:
    """``x-memory-usage`` text: percent with one decimal, ``.0`` dropped (``0.68`` → ``68%``)."""
    percent = min(max(usage_ratio, 0.0), MAX_USAGE_PERCENT / 100) * 100
    text = format(percent, ".1f")
    return (text[:-2] if text.endswith(".0") else text) + "%"


def to_proto(p: Pressure, instance_id: int = 0) -> memcontract_pb2.MemoryPressure:
    """The ``memcontract.v1.MemoryPressure`` message of a pressure, from backend ``instance_id``
    (0: not named)."""
    msg = memcontract_pb2.MemoryPressure(
        usage_ratio=p.usage_ratio,
        used_bytes=p.used_bytes,
        capacity_bytes=p.capacity_bytes,
        alloc_rate_bytes_per_sec=p.alloc_rate_bytes_per_sec,
        level=cast(Any, int(p.level) + 1),  # BreachLevel: ladder level + 1
        contract_version=p.contract_version,
        module=p.module,
        alloc_rate_ratio=p.alloc_rate_ratio,
        live_bytes=p.live_bytes,
        plateau_bytes=p.plateau_bytes,
        live_source=p.live_source,
        instance_id=instance_id,
    )
    millis = round(p.sampled_at * 1000)
    msg.sampled_at.seconds, msg.sampled_at.nanos = millis // 1000, (millis % 1000) * 1_000_000
    return msg


def from_proto(msg: memcontract_pb2.MemoryPressure) -> Pressure:
    """A pressure from a ``MemoryPressure`` message (level 1..4 on the wire → 0..3)."""
    ts = msg.sampled_at
    return Pressure(
        usage_ratio=msg.usage_ratio,
        used_bytes=msg.used_bytes,
        capacity_bytes=msg.capacity_bytes,
        alloc_rate_bytes_per_sec=msg.alloc_rate_bytes_per_sec,
        alloc_rate_ratio=msg.alloc_rate_ratio,
        level=Level(msg.level - 1),
        contract_version=msg.contract_version,
        module=msg.module,
        sampled_at=ts.seconds + ts.nanos / 1e9,
        live_bytes=msg.live_bytes if msg.HasField("live_bytes") else None,
        live_source=msg.live_source,
        plateau_bytes=msg.plateau_bytes if msg.HasField("plateau_bytes") else None,
    )


def orca_load_report(
    p: Pressure, *, rps: float = 0.0, eps: float = 0.0, application_utilization: bool = True
) -> orca_load_report_pb2.OrcaLoadReport:
    """The ORCA ``OrcaLoadReport`` of ``p`` (per call and out of band alike).

    ``mem_utilization`` is the usage ratio clamped to [0, 1]; ``application_utilization`` (what
    ``weighted_round_robin`` balancers weigh by) is the unclamped usage ratio unless turned off;
    ``rps_fractional`` and ``eps_fractional`` (field ``eps``) are ``rps`` and ``eps``, calls and
    errors per second over the last sample. Zeros are not sent (proto3).
    """
    usage = p.usage_ratio if math.isfinite(p.usage_ratio) else 0.0
    return orca_load_report_pb2.OrcaLoadReport(
        mem_utilization=min(max(usage, 0.0), 1.0),
        application_utilization=max(usage, 0.0) if application_utilization else 0.0,
        rps_fractional=rps,
        eps=eps,
        named_metrics={ORCA_LEVEL: float(p.level), ORCA_ALLOC_RATE_RATIO: p.alloc_rate_ratio},
    )


def orca_report(
    p: Pressure, *, rps: float = 0.0, eps: float = 0.0, application_utilization: bool = True
) -> bytes:
    """``endpoint-load-metrics-bin``: :func:`orca_load_report`, deterministically serialized."""
    report = orca_load_report(p, rps=rps, eps=eps, application_utilization=application_utilization)
    data: bytes = report.SerializeToString(deterministic=True)
    return data


def encode(p: Pressure, instance_id: int = 0) -> Metadata:
    """The request metadata for ``p``: the four text keys and ``x-memory-pressure-bin``
    (naming ``instance_id`` when not 0)."""
    md: list[tuple[str, str | bytes]] = [
        (USAGE, format_usage(p.usage_ratio)),
        (CAPACITY, str(p.capacity_bytes // MIB)),
    ]
    if p.contract_version:
        md.append((CONTRACT, p.contract_version))
    md.append((LEVEL, str(int(p.level))))
    md.append((PRESSURE_BIN, to_proto(p, instance_id).SerializeToString(deterministic=True)))
    return tuple(md)


def encode_trailers(
    p: Pressure,
    *,
    rps: float = 0.0,
    eps: float = 0.0,
    application_utilization: bool = True,
    instance_id: int = 0,
) -> Metadata:
    """The server's trailing metadata for ``p``: :func:`encode` plus the ORCA report (see
    :func:`orca_load_report` for ``rps``, ``eps`` and ``application_utilization``)."""
    report = orca_report(p, rps=rps, eps=eps, application_utilization=application_utilization)
    return (*encode(p, instance_id), (ORCA_BIN, report))


@dataclass(frozen=True, slots=True)
class Decoded:
    """What :func:`decode` found: the peer's pressure (or ``None``), the invalid keys, and the
    instance the peer named in its ``-bin`` value (0: none)."""

    pressure: Pressure | None
    invalid: tuple[str, ...] = ()
    instance_id: int = 0


NOTHING = Decoded(None)
"""What metadata without our keys decodes to."""


def _text(value: Any) -> str | None:
    """The value as text if it is short, valid UTF-8 text; else ``None``."""
    if isinstance(value, bytes):
        if len(value) > MAX_VALUE_BYTES:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str) and len(value.encode("utf-8", "surrogatepass")) <= MAX_VALUE_BYTES:
        return value
    return None


def parse_usage(value: Any) -> float | None:
    """``68``, ``68%`` or ``68.4%`` → 0.68 / 0.684; anything else (or over 1000 %) → ``None``."""
    text = _text(value)
    if text is None or not _USAGE_RE.fullmatch(text):
        return None
    percent = float(text.rstrip("%"))
    return percent / 100 if percent <= MAX_USAGE_PERCENT else None


def parse_capacity(value: Any) -> int | None:
    """Capacity in MiB (decimal integer, at most 12 digits) → bytes, else ``None``."""
    text = _text(value)
    return int(text) * MIB if text is not None and _CAPACITY_RE.fullmatch(text) else None


def parse_version(value: Any) -> str | None:
    """A contract version ``[A-Za-z0-9._-]{1,32}``, else ``None``."""
    text = _text(value)
    return text if text is not None and _VERSION_RE.fullmatch(text) else None


def parse_level(value: Any) -> Level | None:
    """``0``..``3`` → :class:`Level`, else ``None``."""
    text = _text(value)
    return Level(int(text)) if text is not None and _LEVEL_RE.fullmatch(text) else None


def parse_pressure_bin(value: Any) -> Pressure | None:
    """A serialized ``MemoryPressure`` with a known level, a finite non-negative usage and
    allocation rates, and a valid contract version, else ``None``. A usage above 1000 % is
    read as 1000 %, as ``x-memory-usage`` carries it."""
    parsed = parse_named_pressure_bin(value)
    return None if parsed is None else parsed[0]


def parse_named_pressure_bin(value: Any) -> tuple[Pressure, int] | None:
    """:func:`parse_pressure_bin` and the instance id the message names (0: none)."""
    if not isinstance(value, bytes) or len(value) > MAX_BIN_BYTES:
        return None
    msg = memcontract_pb2.MemoryPressure()
    try:
        msg.ParseFromString(value)
    except DecodeError:
        return None
    if not 1 <= msg.level <= 4:
        return None
    numbers = (msg.usage_ratio, msg.alloc_rate_bytes_per_sec, msg.alloc_rate_ratio)
    if not all(math.isfinite(x) and x >= 0 for x in numbers):
        return None
    if parse_version(msg.contract_version) is None and msg.contract_version:
        return None
    if msg.usage_ratio > MAX_USAGE_PERCENT / 100:
        msg.usage_ratio = MAX_USAGE_PERCENT / 100
    if not _LIVE_SOURCE_RE.fullmatch(msg.live_source):
        msg.live_source = ""  # a name only: anything else is not ours, and is dropped
    return from_proto(msg), msg.instance_id


_TEXT_PARSERS = {
    USAGE: parse_usage,
    CAPACITY: parse_capacity,
    CONTRACT: parse_version,
    LEVEL: parse_level,
}


def value_limit(key: str) -> int:
    """The most bytes a value of our ``key`` may have (longer ones are invalid, never parsed)."""
    return MAX_BIN_BYTES if key == PRESSURE_BIN else MAX_VALUE_BYTES


def parse_value(key: str, value: Any) -> Any:
    """One of our keys' value parsed (:func:`parse_named_pressure_bin`'s pair for the ``-bin``
    key), or ``None`` when invalid: not text or bytes, over :func:`value_limit`, or unparsable."""
    if type(value) not in (str, bytes) or len(value) > value_limit(key):
        return None
    return _TEXT_PARSERS.get(key, parse_named_pressure_bin)(value)


def decode(metadata: Iterable[tuple[str, Any]] | None) -> Decoded:
    """Read a peer's pressure from gRPC metadata (invocation metadata or trailers).

    The ``-bin`` value wins when it parses; otherwise the text keys are assembled. Keys that
    are not ours are skipped; ours that do not parse are named in ``invalid``. Never raises.
    No keys at all: no pressure (a calm peer says nothing while nothing changes).
    """
    if not metadata:
        return NOTHING
    found: dict[str, Any] = {}
    invalid: list[str] = []
    for key, value in metadata:
        if key in KEYS:
            parsed = parse_value(key, value)
            if parsed is None:
                invalid.append(key)
            else:
                found[key] = parsed
    return assemble(found, tuple(invalid)) if found or invalid else NOTHING


def assemble(found: dict[str, Any], invalid: tuple[str, ...]) -> Decoded:
    """What :func:`decode` returns for the parsed values ``found`` (by key) and the invalid keys.
    The ``-bin`` value wins; else the text keys (which carry no used bytes or rates: those stay
    0, "not reported", as in Go)."""
    if PRESSURE_BIN in found:
        pressure, instance = found[PRESSURE_BIN]
        return Decoded(pressure, invalid, instance)
    if USAGE not in found and LEVEL not in found:
        return Decoded(None, invalid)
    return Decoded(
        Pressure(
            usage_ratio=found.get(USAGE, 0.0),
            capacity_bytes=found.get(CAPACITY, 0),
            level=found.get(LEVEL, Level.NORMAL),
            contract_version=found.get(CONTRACT, ""),
        ),
        invalid,
    )
