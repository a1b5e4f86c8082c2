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
    absent = {"cases": ABSENT_CASES}
    (OUT / "calm").mkdir(exist_ok=True)
    (OUT / "calm" / "absent.json").write_text(json.dumps(absent, indent=2) + "\n")


if __name__ == "__main__":
    main()
