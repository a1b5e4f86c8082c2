"""memcontract: keep a gRPC service inside its declared memory budget and tell its peers.

>>> from memcontract import Contract, Guard, Level
>>> contract = Contract.from_yaml("modules: [{name: api, max_heap_mb: 512}]")
>>> contract.module.name
'api'
"""

from .caller import peer_pressure
from .contract import Contract, ModuleContract
from .errors import ContractError, GuardStateError, MemcontractError
from .guard import Guard
from .pressure import Level, Pressure
from .probe import Probe, Reading
from .publish import Snapshot
from .trust import TrustPolicy

__version__ = "0.1.0"

__all__ = [
    "Contract",
    "ContractError",
    "Guard",
    "GuardStateError",
    "Level",
    "MemcontractError",
    "ModuleContract",
    "Pressure",
    "Probe",
    "Reading",
    "Snapshot",
    "TrustPolicy",
    "__version__",
    "peer_pressure",
]
