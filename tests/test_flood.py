"""A caller floods a real guarded server (a child process) with unique oversized or ever-new
``x-memory-usage`` values: the server's memory grows no more than under a flood of an unrelated
header, so the flood cannot push it to level 3 (issue 10, item 1)."""

from __future__ import annotations

import grpc
import pytest

from .floodserver import MIB, FloodServer

# The server: a 72 MiB budget, about 47 MiB at rest (level 3 from 68.4 MiB).
BUDGET_MB = 72
CALLS = 2000
# A few MiB: grpcio's own per-call memory varies from run to run by about one.
SLACK = 3 * MIB


@pytest.fixture(scope="module")
def unrelated_growth() -> int:
    """What the same flood under a header memcontract does not read costs the server."""
    with FloodServer(BUDGET_MB, "all") as server:
        return server.flood("x-flood-other", CALLS, 7000)


@pytest.mark.parametrize(
    ("trust", "key", "size"),
    [
        ("10.0.0.0/8", "x-memory-usage", 7000),
        ("all", "x-memory-usage", 7000),
        ("all", "x-memory-pressure-bin", 1000),
    ],
    ids=["untrusted-oversized", "trusted-oversized", "trusted-bin-within-limit"],
)
def test_a_header_flood_costs_what_an_unrelated_header_costs(
    unrelated_growth: int, trust: str, key: str, size: int
) -> None:
    # 1,000-byte -bin values are within the size limit, so they are parsed and memoized: the
    # memos are bounded in bytes, not in entries.
    with FloodServer(BUDGET_MB, trust) as server:
        growth = server.flood(key, CALLS, size)
        code, trailers = server.call()
    assert growth - unrelated_growth < SLACK, (growth / MIB, unrelated_growth / MIB)
    assert code == grpc.StatusCode.OK
    assert trailers.get("x-memory-level", "0") != "3"  # absent: calm (calm is free)
