"""``memcontract contract check FILE`` as a user runs it: one OK line, or one error line and
exit status 2, never a traceback."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "contracts"
SAMPLE = "examples/contracts/memory_contract.yaml"

# Until the probe command lands, stand in a no-op ``probe_cmd`` so that the contract command
# can be exercised through the real ``memcontract.cli.main``.
_SHIM = """
import sys, types
stub = types.ModuleType("memcontract.cli.probe_cmd")
stub.register = lambda sub: None
sys.modules["memcontract.cli.probe_cmd"] = stub
from memcontract.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli_command() -> list[str]:
    if importlib.util.find_spec("memcontract.cli.probe_cmd") is not None:
        return [sys.executable, "-m", "memcontract.cli"]
    return [sys.executable, "-c", _SHIM]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "MEMCONTRACT_MODULE"}
    environ.update(env or {})
    return subprocess.run(
        [*_cli_command(), "contract", "check", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sample_contract_is_ok() -> None:
    result = run(SAMPLE)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"OK {SAMPLE}: version v1.2, module transaction-processor (budget 1800 MiB, "
        "alloc 12.5 MiB/s, interval 500 ms, 1 core glob, on_stuck=half_open, dry_run=false)\n"
    )
    assert result.stderr == ""


def test_module_option_selects() -> None:
    result = run("tests/contracts/multi.yaml", "--module", "worker")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK tests/contracts/multi.yaml: version v3, module worker")
    assert "budget 2048 MiB" in result.stdout
    assert result.stdout.count("\n") == 1


def test_without_a_module_every_module_is_checked() -> None:
    result = run("tests/contracts/multi.yaml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(", module ")[1].split(" (")[0:2] for line in lines] == [
        ["api", "1 of 2)"],
        ["worker", "2 of 2)"],
    ]
    assert all(line.startswith("OK tests/contracts/multi.yaml: version v3,") for line in lines)


def test_env_selects() -> None:
    result = run("tests/contracts/multi.yaml", env={"MEMCONTRACT_MODULE": "api"})
    assert result.returncode == 0, result.stderr
    assert "module api" in result.stdout


ERROR_LINE = re.compile(r"^memcontract: (?P<file>[^:]+):(?P<line>\d+): (?P<field>[\w.\[\]]+): \S")


@pytest.mark.parametrize(
    ("name", "line", "field"),
    [
        ("bad_unknown_key.yaml", 6, "modules[0].ladder.heap.levl2"),
        ("bad_type.yaml", 4, "modules[0].sample_interval_ms"),
        ("bad_thresholds.yaml", 6, "modules[0].ladder.alloc_rate.level2"),
        ("bad_duplicate.yaml", 4, "modules[2].name"),
        ("bad_pause.yaml", 3, "modules[0].required_gc_pauses_ms"),
        ("bad_budget.yaml", 3, "modules[0].max_heap_mb"),
    ],
)
def test_bad_file_is_one_error_line(name: str, line: int, field: str) -> None:
    path = f"tests/contracts/{name}"
    result = run(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    match = ERROR_LINE.match(result.stderr)
    assert match, result.stderr
    assert (match["file"], int(match["line"]), match["field"]) == (path, line, field)


@pytest.mark.parametrize(("name", "line"), [("bad_yaml.yaml", 4), ("bad_alias.yaml", 1)])
def test_bad_yaml_names_file_and_line(name: str, line: int) -> None:
    result = run(f"tests/contracts/{name}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"memcontract: tests/contracts/{name}:{line}: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    result = run(str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"memcontract: {path}: cannot read file")


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "blob.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    result = run(str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}:1: file is not valid UTF-8" in result.stderr


def test_unknown_module_option() -> None:
    result = run("tests/contracts/multi.yaml", "--module", "wrker")
    assert result.returncode == 2
    assert "did you mean 'worker'" in result.stderr


def test_check_names_the_position_of_the_selected_module(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("modules: [{name: a}, {name: b}]\n")
    out = subprocess.run(
        [sys.executable, "-m", "memcontract.cli", "contract", "check", str(path), "--module", "b"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "module b (2 of 2)" in out.stdout


def test_summary_says_what_level_3_does_when_stuck() -> None:
    result = run("tests/contracts/full.yaml")
    assert result.returncode == 0, result.stderr
    assert "on_stuck=recycle" in result.stdout
