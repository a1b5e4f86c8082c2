"""The shared breach-ladder sequences (tests/vectors/ladder): Python and Go step the same samples
to the same levels (the Go ladder's test reads the same file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memcontract.contract import LadderConfig
from memcontract.ladder import ALLOC_RATE, HEAP, Ladder

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
