"""The shared breach-ladder sequences (tests/vectors/ladder): Python and Go step the same samples
to the same levels (the Go ladder's test reads the same file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memcontract.contract import LadderConfig
from memcontract.ladder import ALLOC_RATE, HEAP, Ladder, MemoryLadder, MemorySample

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "ladder" / "sequences.json").read_text()
)["cases"]


def test_sequences_exist() -> None:
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_ladder_steps_the_shared_sequence(case: dict[str, Any]) -> None:
    ladder = Ladder(LadderConfig())
    levels = [
        int(ladder.step({HEAP: s["heap"], ALLOC_RATE: s["alloc_rate"]})) for s in case["samples"]
    ]
    assert levels == case["levels"]


MEMORY_CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "ladder" / "memory.json").read_text()
)["cases"]
MIB = 1024 * 1024


def test_memory_cases_exist() -> None:
    assert len(MEMORY_CASES) >= 10


@pytest.mark.parametrize("case", MEMORY_CASES, ids=[c["name"][:60] for c in MEMORY_CASES])
def test_memory_ladder_steps_the_shared_sequence(case: dict[str, Any]) -> None:
    ladder = MemoryLadder(
        LadderConfig(),
        interval=case["interval_s"],
        promised_rate_bytes_per_sec=case["promised_mib_per_s"] * MIB,
        live_exit=case["live_exit"],
        recycles=case["recycles"],
    )

    def mib(value: float | None) -> int | None:
        return None if value is None else round(value * MIB)

    levels, plateaus = [], []
    for s in case["samples"]:
        step = ladder.step(
            MemorySample(
                now=s["t"],
                used_bytes=round(s["used_mib"] * MIB),
                capacity_bytes=case["capacity_mib"] * MIB,
                live_bytes=mib(s["live_mib"]),
                limit_bytes=mib(s["limit_mib"]),
            )
        )
        levels.append(int(step.level))
        plateaus.append(None if step.plateau_bytes is None else step.plateau_bytes / MIB)
    assert levels == case["levels"]
    assert plateaus == case["plateau_mib"]
