"""A real process under a 256 MiB contract allocates ~300 MiB for real, then frees it."""

from __future__ import annotations

import json
import subprocess
import sys

from .memchild import __file__ as CHILD


def test_real_allocation_reaches_level3_and_steps_back_down() -> None:
    out = subprocess.run(
        [sys.executable, CHILD, "300"], capture_output=True, text=True, timeout=90, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["reached_critical"], result
    assert result["recovered"], result
    transitions = [(old, new) for _, old, new, _ in result["transitions"]]
    assert transitions == [(0, 1), (1, 2), (2, 3), (3, 2), (2, 1), (1, 0)], result
    entered_critical = result["transitions"][2][0]
    # level 3 is entered within (confirm + 1) samples of the allocation (confirm[3] = 3)
    assert entered_critical - result["allocated_at"] <= 3 + 1, result
    assert result["gc_collections"] == 1
    # downward: one level at a time, each after recover_after (3) samples below
    down = [sample for sample, old, new, _ in result["transitions"][3:]]
    assert down[0] - result["freed_at"] >= 3 - 1
    assert down[1] - down[0] == 3 and down[2] - down[1] == 3, result
