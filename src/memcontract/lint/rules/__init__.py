"""The rules of ``memcontract lint``, one module each; the codes are in ``..registry``."""

from __future__ import annotations

from .contract_file import ContractFile, is_contract_file
from .contract_reference import ContractReference
from .request_allocation import RequestAllocation
from .unwired_server import UnwiredServer

#: The rules that inspect Python syntax trees, in code order.
AST_RULES = (UnwiredServer(), ContractReference(), RequestAllocation())

__all__ = ["AST_RULES", "ContractFile", "is_contract_file"]
