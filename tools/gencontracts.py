"""Write tests/vectors/contracts/cases.json: what every contract in the shared corpus loads to.

The corpus (tests/vectors/contracts/*.yaml) is the contract between the Python and the Go
loaders: a good file loads to the same ``memcontract.v1.Contract`` in both, a bad one fails in
both with the same line, field and message. Python's loader is the reference: this script
records what it gives, ``tests/test_contract_corpus.py`` checks Python still gives it and
``go/memcontract/contract_test.go`` checks Go gives it too.

A case's ``module`` (the module selected, else none) is kept from the existing file; a new
case selects none. ``go_message`` set to ``"prefix"`` marks YAML syntax errors, whose wording
comes from each language's YAML parser: Go must fail with a line, no field and the
``invalid YAML:`` prefix.
Usage: python tools/gencontracts.py
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from google.protobuf import json_format

from memcontract import Contract, ContractError

CORPUS = pathlib.Path(__file__).resolve().parent.parent / "tests" / "vectors" / "contracts"
CASES = CORPUS / "cases.json"


def expected(path: pathlib.Path, module: str | None) -> dict[str, Any]:
    """What Python's loader gives for one corpus file: the contract or the error's parts."""
    try:
        contract = Contract.load(path, module=module)
    except ContractError as err:
        return {"error": {"line": err.line, "field": err.field, "message": err.message}}
    proto = contract.to_proto()
    return {"contract": json_format.MessageToDict(proto, preserving_proto_field_name=True)}


def build(old: dict[str, Any]) -> dict[str, Any]:
    """The cases for every corpus file, keeping each old case's inputs (module, go_message)."""
    cases = {}
    for path in sorted(CORPUS.glob("*.yaml")):
        inputs = {k: v for k, v in old.get(path.name, {}).items() if k in ("module", "go_message")}
        inputs.setdefault("module", None)
        cases[path.name] = {**inputs, **expected(path, inputs["module"])}
    return cases


def main() -> None:
    old = json.loads(CASES.read_text()) if CASES.exists() else {}
    CASES.write_text(json.dumps(build(old), indent=1, sort_keys=True, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
