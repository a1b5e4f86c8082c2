from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CallerPressure(_message.Message):
    __slots__ = ("present", "usage_ratio", "level", "module")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    USAGE_RATIO_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    present: bool
    usage_ratio: float
    level: int
    module: str
    def __init__(self, present: _Optional[bool] = ..., usage_ratio: _Optional[float] = ..., level: _Optional[int] = ..., module: _Optional[str] = ...) -> None: ...

class GetStockRequest(_message.Message):
    __slots__ = ("sku",)
    SKU_FIELD_NUMBER: _ClassVar[int]
    sku: str
    def __init__(self, sku: _Optional[str] = ...) -> None: ...

class GetStockResponse(_message.Message):
    __slots__ = ("sku", "quantity", "source", "cache_denied", "caller")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CACHE_DENIED_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    source: str
    cache_denied: str
    caller: CallerPressure
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ..., source: _Optional[str] = ..., cache_denied: _Optional[str] = ..., caller: _Optional[_Union[CallerPressure, _Mapping]] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("caller",)
    CALLER_FIELD_NUMBER: _ClassVar[int]
    caller: CallerPressure
    def __init__(self, caller: _Optional[_Union[CallerPressure, _Mapping]] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("rows", "chunk_rows", "hold_ms")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ROWS_FIELD_NUMBER: _ClassVar[int]
    HOLD_MS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    chunk_rows: int
    hold_ms: int
    def __init__(self, rows: _Optional[int] = ..., chunk_rows: _Optional[int] = ..., hold_ms: _Optional[int] = ...) -> None: ...

class ReportRow(_message.Message):
    __slots__ = ("sku", "quantity", "detail")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    detail: str
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class ReportChunk(_message.Message):
    __slots__ = ("index", "rows")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    index: int
    rows: _containers.RepeatedCompositeFieldContainer[ReportRow]
    def __init__(self, index: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[ReportRow, _Mapping]]] = ...) -> None: ...
