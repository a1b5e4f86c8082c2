"""The shared contract corpus (tests/vectors/contracts): one contract, one meaning in both
languages.

``cases.json`` records what every corpus file loads to: the contract, or the error's line,
field and message. This test holds Python's loader to it; the Go loader's test
(``go/memcontract/contract_test.go``) reads the same files and the same cases, so the
two loaders accept and reject the same files with the same messages. Regenerate with
``python tools/gencontracts.py`` after adding a file (and check the recorded result).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import gencontracts  # type: ignore[import-not-found]  # noqa: E402

CASES: dict[str, dict[str, Any]] = json.loads(gencontracts.CASES.read_text())


@pytest.fixture(autouse=True)
def _no_module_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MEMCONTRACT_MODULE", raising=False)
    yield


def test_every_corpus_file_has_a_case() -> None:
    files = {p.name for p in gencontracts.CORPUS.glob("*.yaml")}
    assert files == set(CASES), "run python tools/gencontracts.py"
    assert sum("error" in c for c in CASES.values()) >= 40
    assert sum("contract" in c for c in CASES.values()) >= 10


@pytest.mark.parametrize("name", sorted(CASES))
def test_python_loads_corpus_file_as_recorded(name: str) -> None:
    case = CASES[name]
    got = gencontracts.expected(gencontracts.CORPUS / name, case["module"])
    want = {k: v for k, v in case.items() if k in ("contract", "error")}
    assert got == want
