"""The memory contract: ``memory_contract.yaml`` loaded, validated and frozen.

>>> c = Contract.from_yaml("modules: [{name: api, max_heap_mb: 512}]")
>>> c.module.max_heap_bytes
536870912
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .pressure import MIB, Level

if TYPE_CHECKING:
    from .v1 import memcontract_pb2

HEALTH_METHODS = "/grpc.health.v1.Health/*"


@dataclass(frozen=True, slots=True)
class LevelThresholds:
    """Thresholds of levels 1, 2 and 3 (strictly increasing)."""

    level1: float
    level2: float
    level3: float

    def at(self, level: Level | int) -> float:
        """The threshold of ``level`` (1..3)."""
        return (self.level1, self.level2, self.level3)[int(level) - 1]


@dataclass(frozen=True, slots=True)
class LevelCounts:
    """Consecutive-sample counts for levels 1, 2 and 3 (each >= 1)."""

    level1: int = 1
    level2: int = 2
    level3: int = 3

    def at(self, level: Level | int) -> int:
        """The count of ``level`` (1..3)."""
        return (self.level1, self.level2, self.level3)[int(level) - 1]


@dataclass(frozen=True, slots=True)
class LadderConfig:
    """Thresholds of the breach ladder (SPEC §4)."""

    heap: LevelThresholds = LevelThresholds(0.80, 0.90, 0.95)
    alloc_rate: LevelThresholds = LevelThresholds(1.0, 1.5, 2.0)
    confirm: LevelCounts = LevelCounts(1, 2, 3)
    recover_after: int = 5


@dataclass(frozen=True, slots=True)
class ModuleContract:
    """The contract of one module; units are in the field names (MiB, ms, ratios 0-1)."""

    name: str
    max_heap_mb: float = 1800.0
    alloc_rate_mb_per_sec: float = 12.5
    gc_trigger_ratio: float = 0.75
    required_gc_pauses_ms: str = "<5"
    core_methods: tuple[str, ...] = (HEALTH_METHODS,)
    sample_interval_ms: int = 500
    ladder: LadderConfig = field(default_factory=LadderConfig)
    noncritical_loggers: tuple[str, ...] = ()
    retry_pushback_ms: int = 1000
    dry_run: bool = False

    @property
    def max_heap_bytes(self) -> int:
        """The memory budget in bytes."""
        return int(self.max_heap_mb * MIB)

    @property
    def alloc_rate_bytes_per_sec(self) -> float:
        """The promised growth-rate ceiling in bytes per second."""
        return self.alloc_rate_mb_per_sec * MIB

    @property
    def sample_interval(self) -> float:
        """The sampling interval in seconds."""
        return self.sample_interval_ms / 1000.0

    @property
    def gc_pause_objective_ms(self) -> float:
        """The GC pause objective as a number of milliseconds (``"<5"`` gives 5.0)."""
        return float(self.required_gc_pauses_ms.lstrip("<= "))

    def core_matcher(self) -> re.Pattern[str]:
        """One compiled pattern for all core-method globs (health is always core)."""
        globs = {*self.core_methods, HEALTH_METHODS}
        return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in sorted(globs)))


@dataclass(frozen=True, slots=True)
class Contract:
    """A contract file: its version, its modules and the module in force (``module``)."""

    version: str
    modules: tuple[ModuleContract, ...]
    module: ModuleContract
    path: str | None = None

    @classmethod
    def load(cls, path: str, module: str | None = None) -> Contract:
        """Load and validate a contract file; raise :class:`ContractError` naming file, line, field."""
        raise NotImplementedError

    @classmethod
    def from_yaml(
        cls, text: str, *, path: str = "<string>", module: str | None = None
    ) -> Contract:
        """Parse and validate contract YAML text."""
        raise NotImplementedError

    def to_proto(self) -> memcontract_pb2.Contract:
        """The contract as a ``memcontract.v1.Contract`` message, defaults filled in."""
        raise NotImplementedError
