"""Write tests/vectors/*.json: pressure states with the exact metadata they encode to.

The vectors are the contract between the Python and the Go encoders; regenerate only when the
wire format changes on purpose (then both sides' tests must pass again).
Usage: python tools/genvectors.py
"""

from __future__ import annotations

import base64
import json
import pathlib
import sys

from memcontract import wire
from memcontract.pressure import MIB, Level, Pressure

# The vectors' JSON form of a pressure is the one the tests read back (tests/support.py).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from tests.support import pressure_json

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "vectors"

STATES = {
    "normal": (
        "inside the contract",
        Pressure(
            0.684,
            1468006400,
            2048 * MIB,
            1048576.0,
            0.08,
            Level.NORMAL,
            "v1.2",
            "inventory",
            1800000000.25,
        ),
    ),
    "whole_percent": (
        "usage rounds to a whole percent: no decimal",
        Pressure(0.68, 696254464, 1024 * MIB, 0.0, 0.0, Level.NORMAL, "v1", "order", 1800000001.0),
    ),
    "alert": (
        "level 1 on heap",
        Pressure(
            0.8125,
            436207616,
            512 * MIB,
            5 * MIB,
            0.4,
            Level.ALERT,
            "v1.2",
            "inventory",
            1800000002.5,
        ),
    ),
    "degraded_rate": (
        "level 2 on allocation rate",
        Pressure(
            0.5,
            900 * MIB,
            1800 * MIB,
            20 * MIB,
            1.6,
            Level.DEGRADED,
            "2026.11-rc_1",
            "transaction-processor",
            1800000003.999,
        ),
    ),
    "critical": (
        "level 3, over budget",
        Pressure(
            0.9731,
            1045000000,
            1024 * MIB,
            30 * MIB,
            2.4,
            Level.CRITICAL,
            "v1.2",
            "inventory",
            1800000004.001,
        ),
    ),
    "over_budget_clamped": (
        "usage over 1000% is clamped in text (the -bin keeps it, read as 1000%); ORCA clamps to 1",
        Pressure(
            12.5, 13421772800, 1024 * MIB, 0.0, 0.0, Level.CRITICAL, "v9", "batch", 1800000005.0
        ),
    ),
    "plateau": (
        "level 3 left on live memory: usage is live / capacity, used bytes and the plateau kept",
        Pressure(
            0.21875,
            241172480,
            256 * MIB,
            0.0,
            0.0,
            Level.NORMAL,
            "v1.2",
            "inventory",
            1800000007.5,
            live_bytes=56 * MIB,
            live_source="pymalloc+mallinfo2",
            plateau_bytes=240 * MIB,
        ),
    ),
    "no_version": (
        "no contract version: x-memory-contract omitted",
        Pressure(0.0, 0, 3 * MIB + 17, 0.0, 0.0, Level.NORMAL, "", "", 0.0),
    ),
    "named_instance": (
        "a backend naming its instance (instance_id, fixed64) in the -bin value",
        Pressure(
            0.42, 450887680, 1024 * MIB, 0.0, 0.0, Level.NORMAL, "v1.2", "inventory", 1800000007.0
        ),
    ),
    "rounding_half": (
        "one decimal, rounded from the exact binary value",
        Pressure(
            0.12345, 129446707, 1000 * MIB, 123.5, 0.00001, Level.NORMAL, "v1", "m", 1800000006.5
        ),
    ),
}

PARSE_CASES: list[tuple[str, str | bytes, bool, object]] = [
    ("x-memory-usage", "68", True, 0.68),
    ("x-memory-usage", "68%", True, 0.68),
    ("x-memory-usage", "68.4%", True, 0.684),
    ("x-memory-usage", "0%", True, 0.0),
    ("x-memory-usage", "1000%", True, 10.0),
    ("x-memory-usage", "1000.1%", False, None),
    ("x-memory-usage", "-5%", False, None),
    ("x-memory-usage", "abc", False, None),
    ("x-memory-usage", "68 %", False, None),
    ("x-memory-usage", "", False, None),
    ("x-memory-usage", "1e2%", False, None),
    ("x-memory-usage", "NaN", False, None),
    ("x-memory-usage", "0" * 65, False, None),
    ("x-memory-usage", b"\xff\xfe68%", False, None),
    ("x-memory-capacity", "2048", True, 2048 * MIB),
    ("x-memory-capacity", "0", True, 0),
    ("x-memory-capacity", "2048.5", False, None),
    ("x-memory-capacity", "-1", False, None),
    ("x-memory-capacity", "1234567890123", False, None),
    ("x-memory-contract", "v1.2", True, "v1.2"),
    ("x-memory-contract", "v1 2", False, None),
    ("x-memory-contract", "x" * 33, False, None),
    ("x-memory-level", "0", True, 0),
    ("x-memory-level", "3", True, 3),
    ("x-memory-level", "4", False, None),
    ("x-memory-level", "-1", False, None),
    ("x-memory-level", "03", False, None),
    ("x-memory-pressure-bin", b"\xff\xff\xff", False, None),
    ("x-memory-pressure-bin", b"", False, None),
]


# The memory ladder (used and live memory, design §4) under the default ladder, one case per
# rule. The expected levels and plateaus are written here by hand (not computed), so that a
# change of behavior shows up in both languages' tests. Each sample: (t seconds, used MiB,
# live MiB or None, limit MiB or None); each expected: (level, plateau MiB or None).
N = None


def every_half_second(used_live_mib: list[tuple[int, int]]) -> list[tuple[float, int, int, None]]:
    """Samples 0.5 s apart of (used, live) MiB, no hard limit."""
    return [(0.5 * i, u, live, N) for i, (u, live) in enumerate(used_live_mib)]


MEMORY_CASES: list[dict[str, object]] = [
    {
        "name": "flat level 3 with low live memory: straight to live's level, plateau kept, "
        "re-entry above plateau + 5 %",
        "capacity_mib": 100,
        "samples": [(0.5 * i, u, 20, N) for i, u in enumerate([97] * 8 + [101, 103])],
        "expect": [(1, N), (2, N), (3, N), (3, N), (3, N), *[(0, 97)] * 4, (3, N)],
    },
    {
        "name": "the calm gap counts: live + (used - live at the last calm, steady sample) "
        "at or above the level-1 threshold: no exit; below it: exit to its level",
        "capacity_mib": 100,
        "promised_mib_per_s": 1000,  # the climb from 45 to 97 MiB is quiet on growth
        "samples": every_half_second(
            # gaps 20 (flat), then 24 (flat: the calm gap), then 25 (not flat: not taken)
            [(40, 20), (40, 20), (40, 16), (45, 20), (97, 90), (97, 70)]
            + [(97, 65)] * 3
            + [(97, 57)] * 2  # 57 + 24 = 81 %: no exit (the least gap, 20, would exit)
            + [(97, 55)] * 2  # 55 + 24 = 79 %: exit (the last gap, 25, would not)
        ),
        "expect": [(0, N)] * 4 + [(1, N), (2, N)] + [(3, N)] * 5 + [(0, 97)] * 2,
    },
    {
        "name": "no steady calm sample: the gap at the last calm one counts",
        "capacity_mib": 100,
        "promised_mib_per_s": 1000,
        "samples": every_half_second(
            [(40, 20), (97, 90), (97, 70), (97, 65)]
            + [(97, 62)] * 3  # 62 + 20 = 82 %: no exit (a gap of 0 would exit)
            + [(97, 58)]  # 78 %: exit
        ),
        "expect": [(0, N), (1, N), (2, N)] + [(3, N)] * 4 + [(0, 97)],
    },
    {
        "name": "level 1 on retained memory: left on live; used climbing 5 % above the plateau "
        "is at once the level used indicates (2, not 3)",
        "capacity_mib": 100,
        "promised_mib_per_s": 1000,
        "samples": every_half_second(
            [(40, 20), (40, 20), (85, 80), (85, 50)]
            + [(85, 40)] * 3  # flat for 3 samples, 40 + 20 = 60 %: level 0 on live
            + [(91, 45)] * 2
        ),
        "expect": [(0, N), (0, N), (1, N), (1, N), (1, N), (0, 85), (0, 85), (2, N), (2, N)],
    },
    {
        "name": "used memory back below the level-1 threshold: no live exit, one level at a time",
        "capacity_mib": 100,
        "promised_mib_per_s": 1000,
        "samples": every_half_second([(40, 20), (40, 20), (92, 85), (92, 85)] + [(50, 30)] * 10),
        "expect": [(0, N), (0, N), (1, N)] + [(2, N)] * 5 + [(1, N)] * 5 + [(0, N)],
    },
    {
        "name": "live memory unknown: level 3 is held on used memory",
        "capacity_mib": 100,
        "samples": [(0.5 * i, 97, N, N) for i in range(8)],
        "expect": [(1, N), (2, N)] + [(3, N)] * 6,
    },
    {
        "name": "live memory above the level-1 threshold: no exit",
        "capacity_mib": 100,
        "samples": [(0.5 * i, 97, 85, N) for i in range(8)],
        "expect": [(1, N), (2, N)] + [(3, N)] * 6,
    },
    {
        "name": "used memory not flat (2 % steps): no exit",
        "capacity_mib": 100,
        "samples": [(0.5 * i, 96 if i % 2 else 98, 20, N) for i in range(8)],
        "expect": [(1, N), (2, N)] + [(3, N)] * 6,
    },
    {
        "name": "used memory falls below the level-1 threshold by itself: plateau dropped",
        "capacity_mib": 100,
        "samples": [(0.5 * i, u, 20, N) for i, u in enumerate([97] * 6 + [70, 90, 92])],
        "expect": [(1, N), (2, N), (3, N), (3, N), (3, N), (0, 97), (0, N), (1, N), (2, N)],
    },
    {
        "name": "hard limit: level 3 at once when used + growth x (3 intervals + 2 s) reaches it",
        "capacity_mib": 160,
        "samples": [(0.5 * i, 20 + 10 * i, N, 160) for i in range(8)],
        "expect": [(0, N)] * 7 + [(3, N)],
    },
    {
        "name": "hard limit: level 3 the projection forced is held while used stays at the "
        "level-2 threshold of the limit (growth stopped: shedding works), then steps down",
        "capacity_mib": 160,
        "samples": [
            (0.5 * i, u, N, 160) for i, u in enumerate([120, 120, 130] + [148] * 6 + [140] * 5)
        ],
        "expect": [(0, N), (0, N)] + [(3, N)] * 11 + [(2, N)],
    },
    {
        "name": "hard limit: the sampler's lag widens the margin",
        "capacity_mib": 160,
        "samples": [(0.0, 45, N, 160), (0.5, 55, N, 160), (1.5, 65, N, 160), (2.5, 85, N, 160)],
        "expect": [(0, N), (0, N), (0, N), (3, N)],
    },
    {
        "name": "a stopped process: a long gap restarts the growth baseline, a sample too close "
        "to the last one leaves the rate alone",
        "capacity_mib": 160,
        "samples": [
            (0.0, 40, N, 160),
            (0.5, 40, N, 160),
            (10.5, 100, N, 160),
            (10.55, 130, N, 160),
            (11.0, 101, N, 160),
        ],
        "expect": [(0, N), (0, N), (0, N), (1, N), (1, N)],
    },
    {
        "name": "plateau recorded, then growth towards the hard limit: level 3 at once",
        "capacity_mib": 160,
        "samples": [(0.5 * i, u, 30, 160) for i, u in enumerate([152] * 6 + [156])],
        "expect": [(1, N), (2, N), (3, N), (3, N), (3, N), (0, 152), (3, N)],
    },
    {
        "name": "used memory at the budget without a cgroup (on_stuck half_open): live exit",
        "capacity_mib": 100,
        "samples": [(0.5 * i, 99, 10, N) for i in range(8)],
        "expect": [(1, N), (2, N), (3, N), (3, N), (3, N), (0, 99), (0, 99), (0, 99)],
    },
    {
        "name": "used memory at the budget with on_stuck recycle: no live exit (recycle's case)",
        "capacity_mib": 100,
        "recycles": True,
        "samples": [(0.5 * i, 99, 10, N) for i in range(8)],
        "expect": [(1, N), (2, N)] + [(3, N)] * 6,
    },
    {
        "name": "used memory at a cgroup limit: no live exit",
        "capacity_mib": 100,
        "samples": [(0.5 * i, 99, 10, 100) for i in range(8)],
        "expect": [(1, N), (2, N)] + [(3, N)] * 6,
    },
    {
        "name": "live exit turned off: level 3 held on used memory",
        "capacity_mib": 100,
        "live_exit": False,
        "samples": [(0.5 * i, 97, 20, N) for i in range(8)],
        "expect": [(1, N), (2, N)] + [(3, N)] * 6,
    },
]


def memory_case(case: dict[str, object]) -> dict[str, object]:
    """One memory-ladder case in its JSON form."""
    samples = case["samples"]
    expect = case["expect"]
    assert isinstance(samples, list) and isinstance(expect, list)
    assert len(samples) == len(expect), case["name"]
    return {
        "name": case["name"],
        "capacity_mib": case["capacity_mib"],
        "interval_s": 0.5,
        "promised_mib_per_s": case.get("promised_mib_per_s", 100),
        "live_exit": case.get("live_exit", True),
        "recycles": case.get("recycles", False),
        "samples": [
            {"t": t, "used_mib": used, "live_mib": live, "limit_mib": limit}
            for t, used, live, limit in samples
        ],
        "levels": [level for level, _ in expect],
        "plateau_mib": [plateau for _, plateau in expect],
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# The instance a vector's sender names (0, the default, is left out of the vector).
INSTANCES = {"named_instance": 0xFEDCBA9876543210}

# Metadata that carries none of our keys: a calm peer says nothing while nothing changes, and a
# receiver reads that as calm (no pressure), not as an error.
ABSENT_CASES: list[dict[str, object]] = [
    {"description": "no metadata at all", "metadata": []},
    {"description": "other keys only", "metadata": [["x-request-id", "abc"], ["user-agent", "t"]]},
    {"description": "the ORCA report alone", "metadata": [["endpoint-load-metrics-bin", ""]]},
]


def vector(name: str, description: str, p: Pressure) -> dict[str, object]:
    """One vector: the state and the exact metadata it encodes to."""
    instance = INSTANCES.get(name, 0)
    md = [[k, _b64(v) if isinstance(v, bytes) else v] for k, v in wire.encode(p, instance)]
    vec: dict[str, object] = {
        "name": name,
        "description": description,
        "pressure": pressure_json(p),
    }
    if instance:
        vec["instance_id"] = instance
    vec["metadata"] = md
    vec["orca"] = _b64(wire.orca_report(p))
    return vec


def parse_case(key: str, value: str | bytes, valid: bool, parsed: object) -> dict[str, object]:
    """One parsing case: a header value, whether it is valid and what it parses to."""
    case: dict[str, object] = {"key": key, "valid": valid, "parsed": parsed}
    if isinstance(value, bytes):
        case["value_base64"] = _b64(value)
    else:
        case["value"] = value
    return case


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (description, p) in STATES.items():
        text = json.dumps(vector(name, description, p), indent=2) + "\n"
        (OUT / f"{name}.json").write_text(text)
    cases = [parse_case(*c) for c in PARSE_CASES]
    (OUT / "parse.json").write_text(json.dumps({"cases": cases}, indent=2) + "\n")
    memory = {
        "description": "The memory ladder (design §4) under the default ladder (heap "
        "0.80/0.90/0.95, alloc_rate 1.0/1.5/2.0 x promised (100 MiB/s: quiet here), "
        "confirm 1/2/3, recover_after 5): "
        "samples of used, live (null: unknown) and the hard limit (null: none), MiB, at t "
        "seconds; the level and the retained plateau (MiB, null: none) after each. Live "
        "memory counts with the calm gap: used - live at the last calm, steady sample (level "
        "0, no plateau, used flat since the sample before; until there is one, the last calm "
        "sample). Read by "
        "tests/test_ladder_vectors.py and the Go ladder test.",
        "cases": [memory_case(c) for c in MEMORY_CASES],
    }
    text = json.dumps(memory, indent=1) + "\n"
    (OUT / "ladder" / "memory.json").write_text(text)
    absent = {"cases": ABSENT_CASES}
    (OUT / "calm").mkdir(exist_ok=True)
    (OUT / "calm" / "absent.json").write_text(json.dumps(absent, indent=2) + "\n")


if __name__ == "__main__":
    main()
