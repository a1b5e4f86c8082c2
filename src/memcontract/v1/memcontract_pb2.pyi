import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

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
    __slots__ = ("usage_ratio", "used_bytes", "capacity_bytes", "alloc_rate_bytes_per_sec", "level", "contract_version", "module", "sampled_at", "alloc_rate_ratio", "live_bytes", "plateau_bytes", "live_source", "instance_id")
    USAGE_RATIO_FIELD_NUMBER: _ClassVar[int]
    USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_BYTES_FIELD_NUMBER: _ClassVar[int]
    ALLOC_RATE_BYTES_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_AT_FIELD_NUMBER: _ClassVar[int]
    ALLOC_RATE_RATIO_FIELD_NUMBER: _ClassVar[int]
    LIVE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PLATEAU_BYTES_FIELD_NUMBER: _ClassVar[int]
    LIVE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    usage_ratio: float
    used_bytes: int
    capacity_bytes: int
    alloc_rate_bytes_per_sec: float
    level: BreachLevel
    contract_version: str
    module: str
    sampled_at: _timestamp_pb2.Timestamp
    alloc_rate_ratio: float
    live_bytes: int
    plateau_bytes: int
    live_source: str
    instance_id: int
    def __init__(self, usage_ratio: _Optional[float] = ..., used_bytes: _Optional[int] = ..., capacity_bytes: _Optional[int] = ..., alloc_rate_bytes_per_sec: _Optional[float] = ..., level: _Optional[_Union[BreachLevel, str]] = ..., contract_version: _Optional[str] = ..., module: _Optional[str] = ..., sampled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., alloc_rate_ratio: _Optional[float] = ..., live_bytes: _Optional[int] = ..., plateau_bytes: _Optional[int] = ..., live_source: _Optional[str] = ..., instance_id: _Optional[int] = ...) -> None: ...

class Contract(_message.Message):
    __slots__ = ("version", "modules")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODULES_FIELD_NUMBER: _ClassVar[int]
    version: str
    modules: _containers.RepeatedCompositeFieldContainer[ModuleContract]
    def __init__(self, version: _Optional[str] = ..., modules: _Optional[_Iterable[_Union[ModuleContract, _Mapping]]] = ...) -> None: ...

class ModuleContract(_message.Message):
    __slots__ = ("name", "max_heap_mb", "alloc_rate_mb_per_sec", "gc_trigger_ratio", "required_gc_pauses_ms", "core_methods", "sample_interval_ms", "ladder", "noncritical_loggers", "retry_pushback_ms", "dry_run", "on_stuck", "max_fail_fast_ms", "orca")
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
    ON_STUCK_FIELD_NUMBER: _ClassVar[int]
    MAX_FAIL_FAST_MS_FIELD_NUMBER: _ClassVar[int]
    ORCA_FIELD_NUMBER: _ClassVar[int]
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
    on_stuck: str
    max_fail_fast_ms: int
    orca: OrcaOptions
    def __init__(self, name: _Optional[str] = ..., max_heap_mb: _Optional[float] = ..., alloc_rate_mb_per_sec: _Optional[float] = ..., gc_trigger_ratio: _Optional[float] = ..., required_gc_pauses_ms: _Optional[str] = ..., core_methods: _Optional[_Iterable[str]] = ..., sample_interval_ms: _Optional[int] = ..., ladder: _Optional[_Union[Ladder, _Mapping]] = ..., noncritical_loggers: _Optional[_Iterable[str]] = ..., retry_pushback_ms: _Optional[int] = ..., dry_run: _Optional[bool] = ..., on_stuck: _Optional[str] = ..., max_fail_fast_ms: _Optional[int] = ..., orca: _Optional[_Union[OrcaOptions, _Mapping]] = ...) -> None: ...

class OrcaOptions(_message.Message):
    __slots__ = ("application_utilization", "rates")
    APPLICATION_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    RATES_FIELD_NUMBER: _ClassVar[int]
    application_utilization: str
    rates: str
    def __init__(self, application_utilization: _Optional[str] = ..., rates: _Optional[str] = ...) -> None: ...

class Ladder(_message.Message):
    __slots__ = ("heap", "alloc_rate", "confirm", "recover_after")
    HEAP_FIELD_NUMBER: _ClassVar[int]
    ALLOC_RATE_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_FIELD_NUMBER: _ClassVar[int]
    RECOVER_AFTER_FIELD_NUMBER: _ClassVar[int]
    heap: LevelThresholds
    alloc_rate: LevelThresholds
    confirm: LevelCounts
    recover_after: int
    def __init__(self, heap: _Optional[_Union[LevelThresholds, _Mapping]] = ..., alloc_rate: _Optional[_Union[LevelThresholds, _Mapping]] = ..., confirm: _Optional[_Union[LevelCounts, _Mapping]] = ..., recover_after: _Optional[int] = ...) -> None: ...

class LevelThresholds(_message.Message):
    __slots__ = ("level1", "level2", "level3")
    LEVEL1_FIELD_NUMBER: _ClassVar[int]
    LEVEL2_FIELD_NUMBER: _ClassVar[int]
    LEVEL3_FIELD_NUMBER: _ClassVar[int]
    level1: float
    level2: float
    level3: float
    def __init__(self, level1: _Optional[float] = ..., level2: _Optional[float] = ..., level3: _Optional[float] = ...) -> None: ...

class LevelCounts(_message.Message):
    __slots__ = ("level1", "level2", "level3")
    LEVEL1_FIELD_NUMBER: _ClassVar[int]
    LEVEL2_FIELD_NUMBER: _ClassVar[int]
    LEVEL3_FIELD_NUMBER: _ClassVar[int]
    level1: int
    level2: int
    level3: int
    def __init__(self, level1: _Optional[int] = ..., level2: _Optional[int] = ..., level3: _Optional[int] = ...) -> None: ...

class GetPressureRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPressureResponse(_message.Message):
    __slots__ = ("pressure",)
    PRESSURE_FIELD_NUMBER: _ClassVar[int]
    pressure: MemoryPressure
    def __init__(self, pressure: _Optional[_Union[MemoryPressure, _Mapping]] = ...) -> None: ...

class WatchPressureRequest(_message.Message):
    __slots__ = ("interval_ms",)
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    interval_ms: int
    def __init__(self, interval_ms: _Optional[int] = ...) -> None: ...

class WatchPressureResponse(_message.Message):
    __slots__ = ("pressure",)
    PRESSURE_FIELD_NUMBER: _ClassVar[int]
    pressure: MemoryPressure
    def __init__(self, pressure: _Optional[_Union[MemoryPressure, _Mapping]] = ...) -> None: ...

class GetAllocationReportRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAllocationReportResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: AllocationReport
    def __init__(self, report: _Optional[_Union[AllocationReport, _Mapping]] = ...) -> None: ...

class AllocationReport(_message.Message):
    __slots__ = ("taken_at", "level", "sites", "traced", "examined")
    TAKEN_AT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    TRACED_FIELD_NUMBER: _ClassVar[int]
    EXAMINED_FIELD_NUMBER: _ClassVar[int]
    taken_at: _timestamp_pb2.Timestamp
    level: BreachLevel
    sites: _containers.RepeatedCompositeFieldContainer[AllocationSite]
    traced: int
    examined: int
    def __init__(self, taken_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., level: _Optional[_Union[BreachLevel, str]] = ..., sites: _Optional[_Iterable[_Union[AllocationSite, _Mapping]]] = ..., traced: _Optional[int] = ..., examined: _Optional[int] = ...) -> None: ...

class AllocationSite(_message.Message):
    __slots__ = ("location", "size_bytes", "blocks")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    location: str
    size_bytes: int
    blocks: int
    def __init__(self, location: _Optional[str] = ..., size_bytes: _Optional[int] = ..., blocks: _Optional[int] = ...) -> None: ...
