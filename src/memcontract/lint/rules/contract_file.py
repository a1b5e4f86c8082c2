"""A contract file does not validate (MC004, invalid-contract-file).

What: every contract file found (a ``.yaml`` or ``.yml`` file whose name contains ``contract``,
or any in a directory named ``contracts``) validates as ``memcontract contract check`` validates
it, with the same message, at the line it names. A file of several modules needs no module
selected.

Why: a contract is read when the service starts; an invalid one stops the service from starting,
or (worse) is the one a deploy script forgot to check.

Example::

    # memory_contract.yaml
    modules:
      - name: inventory
        max_heap_mb: -5   # MC004 modules[0].max_heap_mb: must be greater than 0, got -5
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ...contract import Contract
from ...errors import ContractError
from ..finding import Finding

SUFFIXES = frozenset({".yaml", ".yml"})
CONTRACT_DIRS = frozenset({"contract", "contracts"})


def is_contract_file(path: Path) -> bool:
    """Whether ``path`` is taken for a contract file: a YAML file whose name contains
    ``contract`` or that sits in a directory named ``contracts``."""
    return path.suffix.lower() in SUFFIXES and (
        "contract" in path.name.lower() or path.parent.name.lower() in CONTRACT_DIRS
    )


class ContractFile:
    """MC004: a contract file that does not validate."""

    code: ClassVar[str] = "MC004"

    def check(self, path: Path, display: str) -> list[Finding]:
        """The file's validation error as a finding, or nothing."""
        try:
            Contract.check_file(path)
        except ContractError as err:
            message = f"{err.field}: {err.message}" if err.field else err.message
            return [Finding(display, err.line or 1, 1, self.code, message)]
        return []
