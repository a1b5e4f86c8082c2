import datetime
from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper

DESCRIPTOR: _descriptor.FileDescriptor

class BreachLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREACH_LEVEL_UNSPECIFIED: _ClassVar[BreachLevel]
    BREACH_LEVEL_NORMAL: _ClassVar[BreachLevel]
    BREACH_LEVEL_ALERT: _ClassVar[BreachLevel]
    BREACH_LEVEL_DEGRADED: _ClassVar[BreachLevel]
    BREACH_LEVEL_CRITICAL: _ClassVar[BreachLevel]
BREACH_LEVEL_UNSPECIFIED: BreachLevel
BREACH_LEVEL_NORMAL: BreachLevel
BREACH_LEVEL_ALERT: BreachLevel
BREACH_LEVEL_DEGRADED: BreachLevel
BREACH_LEVEL_CRITICAL: BreachLevel

class MemoryPressure(_message.Message):
    __slots__ = ("alloc_rate_bytes_per_sec", "alloc_rate_ratio", "capacity_bytes", "contract_version", "level", "module", "sampled_at", "usage_ratio", "used_bytes")
    USAGE_RATIO_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    ALLOC_RATE_BYTES_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_AT_FIELD_NUMBER: _ClassVar[int]
    ALLOC_RATE_RATIO_FIELD_NUMBER: _ClassVar[int]
    usage_ratio: float
    used_bytes: int
    capacity_bytes: int
    alloc_rate_bytes_per_sec: float
    level: BreachLevel
    contract_version: str
    module: str
    sampled_at: _timestamp_pb2.Timestamp
    alloc_rate_ratio: float
    def __init__(self, usage_ratio: float | None = ..., used_bytes: int | None = ..., capacity_bytes: int | None = ..., alloc_rate_bytes_per_sec: float | None = ..., level: BreachLevel | str | None = ..., contract_version: str | None = ..., module: str | None = ..., sampled_at: datetime.datetime | _timestamp_pb2.Timestamp | _Mapping | None = ..., alloc_rate_ratio: float | None = ...) -> None: ...

class Contract(_message.Message):
    __slots__ = ("modules", "version")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODULES_FIELD_NUMBER: _ClassVar[int]
    version: str
    modules: _containers.RepeatedCompositeFieldContainer[ModuleContract]
    def __init__(self, version: str | None = ..., modules: _Iterable[ModuleContract | _Mapping] | None = ...) -> None: ...

class ModuleContract(_message.Message):
    __slots__ = ("alloc_rate_mb_per_sec", "core_methods", "dry_run", "gc_trigger_ratio", "ladder", "max_heap_mb", "name", "noncritical_loggers", "required_gc_pauses_ms", "retry_pushback_ms", "sample_interval_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_HEAP_MB_FIELD_NUMBER: _ClassVar[int]
    ALLOC_RATE_MB_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    GC_TRIGGER_RATIO_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_GC_PAUSES_MS_FIELD_NUMBER: _ClassVar[int]
    CORE_METHODS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    LADDER_FIELD_NUMBER: _ClassVar[int]
    NONCRITICAL_LOGGERS_FIELD_NUMBER: _ClassVar[int]
    RETRY_PUSHBACK_MS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    name: str
    max_heap_mb: float
    alloc_rate_mb_per_sec: float
    gc_trigger_ratio: float
    required_gc_pauses_ms: str
    core_methods: _containers.RepeatedScalarFieldContainer[str]
    sample_interval_ms: int
    ladder: Ladder
    noncritical_loggers: _containers.RepeatedScalarFieldContainer[str]
    retry_pushback_ms: int
    dry_run: bool
    def __init__(self, name: str | None = ..., max_heap_mb: float | None = ..., alloc_rate_mb_per_sec: float | None = ..., gc_trigger_ratio: float | None = ..., required_gc_pauses_ms: str | None = ..., core_methods: _Iterable[str] | None = ..., sample_interval_ms: int | None = ..., ladder: Ladder | _Mapping | None = ..., noncritical_loggers: _Iterable[str] | None = ..., retry_pushback_ms: int | None = ..., dry_run: bool | None = ...) -> None: ...

class Ladder(_message.Message):
    __slots__ = ("alloc_rate", "confirm", "heap", "recover_after")
    HEAP_FIELD_NUMBER: _ClassVar[int]
    ALLOC_RATE_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_FIELD_NUMBER: _ClassVar[int]
    RECOVER_AFTER_FIELD_NUMBER: _ClassVar[int]
    heap: LevelThresholds
    alloc_rate: LevelThresholds
    confirm: LevelCounts
    recover_after: int
    def __init__(self, heap: LevelThresholds | _Mapping | None = ..., alloc_rate: LevelThresholds | _Mapping | None = ..., confirm: LevelCounts | _Mapping | None = ..., recover_after: int | None = ...) -> None: ...

class LevelThresholds(_message.Message):
    __slots__ = ("level1", "level2", "level3")
    LEVEL1_FIELD_NUMBER: _ClassVar[int]
    LEVEL2_FIELD_NUMBER: _ClassVar[int]
    LEVEL3_FIELD_NUMBER: _ClassVar[int]
    level1: float
    level2: float
    level3: float
    def __init__(self, level1: float | None = ..., level2: float | None = ..., level3: float | None = ...) -> None: ...

class LevelCounts(_message.Message):
    __slots__ = ("level1", "level2", "level3")
    LEVEL1_FIELD_NUMBER: _ClassVar[int]
    LEVEL2_FIELD_NUMBER: _ClassVar[int]
    LEVEL3_FIELD_NUMBER: _ClassVar[int]
    level1: int
    level2: int
    level3: int
    def __init__(self, level1: int | None = ..., level2: int | None = ..., level3: int | None = ...) -> None: ...

class GetPressureRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPressureResponse(_message.Message):
    __slots__ = ("pressure",)
    PRESSURE_FIELD_NUMBER: _ClassVar[int]
    pressure: MemoryPressure
    def __init__(self, pressure: MemoryPressure | _Mapping | None = ...) -> None: ...

class WatchPressureRequest(_message.Message):
    __slots__ = ("interval_ms",)
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    interval_ms: int
    def __init__(self, interval_ms: int | None = ...) -> None: ...

class WatchPressureResponse(_message.Message):
    __slots__ = ("pressure",)
    PRESSURE_FIELD_NUMBER: _ClassVar[int]
    pressure: MemoryPressure
    def __init__(self, pressure: MemoryPressure | _Mapping | None = ...) -> None: ...
