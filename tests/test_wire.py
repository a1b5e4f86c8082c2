"""Wire codec: the shared vectors, the parsing rules, and hostile input."""

from __future__ import annotations

import base64
import dataclasses
import json
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from xds.data.orca.v3 import orca_load_report_pb2

from memcontract import wire
from memcontract.pressure import MIB, Level, Pressure

from .support import pressure_from_json

VECTORS = pathlib.Path(__file__).parent / "vectors"
STATE_FILES = sorted(p for p in VECTORS.glob("*.json") if p.name != "parse.json")


def _wire_value(key: str, value: str) -> str | bytes:
    return base64.b64decode(value) if key.endswith("-bin") else value


def test_vectors_exist() -> None:
    assert len(STATE_FILES) >= 6


@pytest.mark.parametrize("path", STATE_FILES, ids=lambda p: p.stem)
def test_vector_encodes_exactly(path: pathlib.Path) -> None:
    vec = json.loads(path.read_text())
    p = pressure_from_json(vec["pressure"])
    instance = vec.get("instance_id", 0)
    expected = tuple((k, _wire_value(k, v)) for k, v in vec["metadata"])
    assert wire.encode(p, instance) == expected
    assert wire.orca_report(p) == base64.b64decode(vec["orca"])
    orca = (wire.ORCA_BIN, base64.b64decode(vec["orca"]))
    assert wire.encode_trailers(p, instance_id=instance) == (*expected, orca)


@pytest.mark.parametrize("path", STATE_FILES, ids=lambda p: p.stem)
def test_vector_round_trips(path: pathlib.Path) -> None:
    vec = json.loads(path.read_text())
    p = pressure_from_json(vec["pressure"])
    decoded = wire.decode(tuple((k, _wire_value(k, v)) for k, v in vec["metadata"]))
    assert decoded.invalid == ()
    assert decoded.instance_id == vec.get("instance_id", 0)
    # read back as at most 1000 %, as x-memory-usage carries it
    assert decoded.pressure == dataclasses.replace(p, usage_ratio=min(p.usage_ratio, 10.0))


def test_text_keys_alone_are_assembled() -> None:
    md = [(k, v) for k, v in wire.encode(Pressure(0.9, 0, 100 * MIB, level=Level.DEGRADED))]
    text_only = [(k, v) for k, v in md if not k.endswith("-bin")]
    p = wire.decode(text_only).pressure
    assert p is not None
    assert (p.usage_ratio, p.capacity_bytes, p.level) == (0.9, 100 * MIB, Level.DEGRADED)


def test_orca_report_fields() -> None:
    report = orca_load_report_pb2.OrcaLoadReport()
    report.ParseFromString(
        wire.orca_report(Pressure(1.7, level=Level.CRITICAL, alloc_rate_ratio=2.5))
    )
    assert report.mem_utilization == 1.0
    assert dict(report.named_metrics) == {
        "memcontract.level": 3.0,
        "memcontract.alloc_rate_ratio": 2.5,
    }


PARSE_CASES = json.loads((VECTORS / "parse.json").read_text())["cases"]


@pytest.mark.parametrize(
    "case", PARSE_CASES, ids=lambda c: f"{c['key']}={c.get('value', '<bytes>')!r}"[:60]
)
def test_parse_vector(case: dict[str, object]) -> None:
    key = str(case["key"])
    value = case["value"] if "value" in case else base64.b64decode(str(case["value_base64"]))
    decoded = wire.decode([(key, value)])
    if case["valid"]:
        assert decoded.invalid == ()
        assert decoded.pressure is not None or key in (wire.CAPACITY, wire.CONTRACT)
        parser = {
            wire.USAGE: wire.parse_usage,
            wire.CAPACITY: wire.parse_capacity,
            wire.CONTRACT: wire.parse_version,
            wire.LEVEL: wire.parse_level,
        }[key]
        assert parser(value) == case["parsed"]
    else:
        assert decoded.invalid == (key,)
        assert decoded.pressure is None


def test_foreign_keys_are_ignored_not_counted() -> None:
    assert wire.decode([("x-other", "1"), ("authorization", "t")]) == wire.Decoded(None, ())


def test_bin_must_be_bytes() -> None:
    assert wire.decode([(wire.PRESSURE_BIN, "CAE=")]).invalid == (wire.PRESSURE_BIN,)


def test_bin_with_unknown_level_is_invalid() -> None:
    raw = wire.to_proto(Pressure(0.5)).SerializeToString()
    bad = raw + b"\x28\x09"  # level field = 9, appended (last one wins)
    assert wire.decode([(wire.PRESSURE_BIN, bad)]).invalid == (wire.PRESSURE_BIN,)


_values = st.one_of(
    st.text(max_size=80), st.binary(max_size=200), st.integers(), st.none(), st.floats()
)


@given(
    st.lists(
        st.tuples(st.sampled_from([*sorted(wire.KEYS), "x-memory-other"]), _values), max_size=8
    )
)
def test_decode_never_raises(md: list[tuple[str, object]]) -> None:
    decoded = wire.decode(md)
    assert len(decoded.invalid) <= len(md)
    if decoded.pressure is not None:
        assert 0 <= decoded.pressure.level <= 3


@given(st.floats(min_value=0, max_value=20, allow_nan=False))
def test_usage_text_round_trips_to_a_tenth_of_a_percent(u: float) -> None:
    parsed = wire.parse_usage(wire.format_usage(u))
    assert parsed is not None
    assert abs(parsed - min(u, 10.0)) <= 0.0005 + 1e-12


_metadata_lists = st.lists(
    st.tuples(st.sampled_from([*sorted(wire.KEYS), "x-memory-other"]), _values), max_size=8
)


def test_the_bin_names_the_instance_and_a_message_without_one_names_none() -> None:
    p = Pressure(usage_ratio=0.5, level=Level.ALERT)
    assert wire.decode(wire.encode(p, instance_id=2**64 - 1)).instance_id == 2**64 - 1
    named = wire.decode(wire.encode(p, instance_id=7))
    assert named.instance_id == 7 and named.pressure == p
    assert wire.decode(wire.encode(p)).instance_id == 0
    text_only = tuple(pair for pair in wire.encode(p, 7) if pair[0] != wire.PRESSURE_BIN)
    assert wire.decode(text_only).instance_id == 0


ABSENT = json.loads((VECTORS / "calm" / "absent.json").read_text())["cases"]


@pytest.mark.parametrize("case", ABSENT, ids=lambda c: c["description"])
def test_absent_keys_read_as_calm(case: dict[str, object]) -> None:
    metadata = tuple((k, _wire_value(k, v)) for k, v in case["metadata"])  # type: ignore[union-attr]
    assert wire.decode(metadata) == wire.Decoded(None, (), 0)
