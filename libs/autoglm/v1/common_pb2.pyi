from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Mention(_message.Message):
    __slots__ = ("text", "label", "start_char", "end_char", "key", "source")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    START_CHAR_FIELD_NUMBER: _ClassVar[int]
    END_CHAR_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    label: str
    start_char: int
    end_char: int
    key: str
    source: str
    def __init__(self, text: _Optional[str] = ..., label: _Optional[str] = ..., start_char: _Optional[int] = ..., end_char: _Optional[int] = ..., key: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class HopTiming(_message.Message):
    __slots__ = ("service", "milliseconds")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    MILLISECONDS_FIELD_NUMBER: _ClassVar[int]
    service: str
    milliseconds: float
    def __init__(self, service: _Optional[str] = ..., milliseconds: _Optional[float] = ...) -> None: ...

class PathEdge(_message.Message):
    __slots__ = ("source_key", "source_name", "relation", "target_key", "target_name", "weight")
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_KEY_FIELD_NUMBER: _ClassVar[int]
    TARGET_NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    source_key: str
    source_name: str
    relation: str
    target_key: str
    target_name: str
    weight: float
    def __init__(self, source_key: _Optional[str] = ..., source_name: _Optional[str] = ..., relation: _Optional[str] = ..., target_key: _Optional[str] = ..., target_name: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...
