"""500 hostile x-memory-* header sets sent over a real channel: no crash, no shed, and exactly
the invalid values counted (judged by an oracle written apart from the codec)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memcontract.telemetry import INVALID_HEADERS, SHEDS
from memcontract.v1 import memcontract_pb2

from .grpc_support import Calls, call_sync, serve
from .support import Rig, make_contract

PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
NUMERICISH = st.sampled_from(list("0123456789.%-e+ x"))


def oracle_valid(key: str, value: Any) -> bool:
    """The SPEC §5 rules, written without the codec."""
    if key == "x-memory-pressure-bin":
        msg = memcontract_pb2.MemoryPressure()
        try:
            msg.ParseFromString(value)
        except DecodeError:
            return False
        ok_version = not msg.contract_version or re.fullmatch(
            r"[A-Za-z0-9._-]{1,32}", msg.contract_version
        )
        return (
            len(value) <= 1024
            and 1 <= msg.level <= 4
            and math.isfinite(msg.usage_ratio)
            and msg.usage_ratio >= 0
            and bool(ok_version)
        )
    if len(value.encode()) > 64:
        return False
    if key == "x-memory-usage":
        return (
            bool(re.fullmatch(r"[0-9]+(\.[0-9]+)?%?", value)) and float(value.rstrip("%")) <= 1000
        )
    if key == "x-memory-capacity":
        return bool(re.fullmatch(r"[0-9]{1,12}", value))
    if key == "x-memory-contract":
        return bool(re.fullmatch(r"[A-Za-z0-9._-]{1,32}", value))
    if key == "x-memory-level":
        return value in ("0", "1", "2", "3")
    return True


text_value = st.one_of(
    st.text(NUMERICISH, min_size=1, max_size=12).filter(lambda s: s.strip() == s),
    st.text(PRINTABLE, min_size=1, max_size=80),
    st.sampled_from(["68%", "1000%", "1000.01%", "3", "4", "v1.2", "-1", "NaN", "inf", "0" * 70]),
)
bin_value = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda level, usage: memcontract_pb2.MemoryPressure(
            level=level, usage_ratio=usage
        ).SerializeToString(),
        st.integers(0, 9),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
)
header = st.one_of(
    st.tuples(
        st.sampled_from(
            ["x-memory-usage", "x-memory-capacity", "x-memory-contract", "x-memory-level"]
        ),
        text_value,
    ),
    st.tuples(st.just("x-memory-pressure-bin"), bin_value),
    st.tuples(st.just("x-memory-other"), st.text(PRINTABLE, min_size=1, max_size=8)),
)


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[tuple[Rig, Calls, grpc.Channel]]:
    rig, calls = Rig(make_contract()), Calls()
    rig.step(0.42)
    with serve("sync", rig.guard, calls) as address, grpc.insecure_channel(address) as channel:
        yield rig, calls, channel


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(headers=st.lists(header, min_size=1, max_size=6))
def test_hostile_headers_over_the_wire(
    hostile_server: tuple[Rig, Calls, grpc.Channel], headers: list[tuple[str, Any]]
) -> None:
    rig, calls, channel = hostile_server
    before_invalid = rig.guard.telemetry.counts[INVALID_HEADERS]
    before_ran = calls.ran
    code, responses, trailers = call_sync(channel, "UnaryUnary", b"ok", metadata=headers)
    assert code == grpc.StatusCode.OK, (headers, code)
    assert responses == [b"echo:ok"]
    assert calls.ran == before_ran + 1
    expected = sum(1 for k, v in headers if k != "x-memory-other" and not oracle_valid(k, v))
    assert rig.guard.telemetry.counts[INVALID_HEADERS] - before_invalid == expected, headers
    assert rig.guard.telemetry.counts[SHEDS] == 0
    assert trailers["x-memory-level"] == "0"
