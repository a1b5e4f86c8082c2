"""Hostile x-memory-* header sets (oversized values among them) sent over a real channel, 500
to a server that trusts every caller and 500 to one that trusts none: no crash, no shed; a
trusted caller's invalid values are counted exactly (judged by an oracle written apart from the
codec), an untrusted caller's are not decoded at all, and its call is counted as untrusted."""

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

from memcontract.telemetry import INVALID_HEADERS, SHEDS, UNTRUSTED_PEERS
from memcontract.trust import TrustPolicy
from memcontract.v1 import memcontract_pb2

from .grpc_support import Calls, call_sync, serve
from .support import Rig, make_contract

PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
NUMERICISH = st.sampled_from(list("0123456789.%-e+ x"))


def oracle_valid(key: str, value: Any) -> bool:
    """The docs/design.md §5 rules, written without the codec."""
    if key == "x-memory-pressure-bin":
        msg = memcontract_pb2.MemoryPressure()
        try:
            msg.ParseFromString(value)
        except DecodeError:
            return False
        ok_version = not msg.contract_version or re.fullmatch(
            r"[A-Za-z0-9._-]{1,32}", msg.contract_version
        )
        numbers = (msg.usage_ratio, msg.alloc_rate_bytes_per_sec, msg.alloc_rate_ratio)
        return (
            len(value) <= 1024
            and 1 <= msg.level <= 4
            and all(math.isfinite(x) and x >= 0 for x in numbers)
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
    # oversized: well-formed but for their length (the flood of issue 10)
    st.builds(lambda n, tail: "7" * n + tail, st.integers(60, 1000), st.sampled_from(["", "%"])),
)
bin_value = st.one_of(
    st.binary(max_size=64),
    # a valid message made oversized by its module name
    st.builds(
        lambda n: memcontract_pb2.MemoryPressure(level=1, module="m" * n).SerializeToString(),
        st.integers(1000, 1100),
    ),
    st.builds(
        lambda level, usage, rate: memcontract_pb2.MemoryPressure(
            level=level, usage_ratio=usage, alloc_rate_ratio=rate
        ).SerializeToString(),
        st.integers(0, 9),
        st.floats(allow_nan=True, allow_infinity=True),
        st.one_of(st.just(0.0), st.floats(allow_nan=True, allow_infinity=True)),
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


Server = tuple[Rig, Calls, grpc.Channel, bool]


@pytest.fixture(scope="module", params=["trusted", "untrusted"])
def hostile_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    trusted = request.param == "trusted"
    trust = None if trusted else TrustPolicy.only(networks=["10.0.0.0/8"])  # not 127.0.0.1
    rig, calls = Rig(make_contract()), Calls()
    rig.step(0.42)
    with (
        serve("sync", rig.guard, calls, trust=trust) as address,
        grpc.insecure_channel(address) as channel,
    ):
        yield rig, calls, channel, trusted


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(headers=st.lists(header, min_size=1, max_size=6))
def test_hostile_headers_over_the_wire(
    hostile_server: Server, headers: list[tuple[str, Any]]
) -> None:
    rig, calls, channel, trusted = hostile_server
    counts = rig.guard.telemetry.counts
    before_invalid, before_untrusted = counts[INVALID_HEADERS], counts[UNTRUSTED_PEERS]
    before_ran = calls.ran
    code, responses, trailers = call_sync(channel, "UnaryUnary", b"ok", metadata=headers)
    assert code == grpc.StatusCode.OK, (headers, code)
    assert responses == [b"echo:ok"]
    assert calls.ran == before_ran + 1
    ours = [(k, v) for k, v in headers if k != "x-memory-other"]
    invalid = sum(1 for k, v in ours if not oracle_valid(k, v)) if trusted else 0
    assert counts[INVALID_HEADERS] - before_invalid == invalid, headers
    untrusted = 0 if trusted or not ours else 1
    assert counts[UNTRUSTED_PEERS] - before_untrusted == untrusted, headers
    if not trusted:
        assert calls.peers[-1] is None  # the handler never sees an untrusted caller's pressure
    assert rig.guard.telemetry.counts[SHEDS] == 0
    assert trailers.get("x-memory-level", "0") == "0"  # absent (calm is free) or said
