from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

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
    __slots__ = ("source_key", "source_name", "relation", "target_key", "target_name", "weight", "evidence")
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_KEY_FIELD_NUMBER: _ClassVar[int]
    TARGET_NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    source_key: str
    source_name: str
    relation: str
    target_key: str
    target_name: str
    weight: float
    evidence: _containers.RepeatedCompositeFieldContainer[Evidence]
    def __init__(self, source_key: _Optional[str] = ..., source_name: _Optional[str] = ..., relation: _Optional[str] = ..., target_key: _Optional[str] = ..., target_name: _Optional[str] = ..., weight: _Optional[float] = ..., evidence: _Optional[_Iterable[_Union[Evidence, _Mapping]]] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("document_id", "sentence", "text", "start_char", "end_char", "extractor_version", "confidence")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_CHAR_FIELD_NUMBER: _ClassVar[int]
    END_CHAR_FIELD_NUMBER: _ClassVar[int]
    EXTRACTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    sentence: int
    text: str
    start_char: int
    end_char: int
    extractor_version: str
    confidence: float
    def __init__(self, document_id: _Optional[str] = ..., sentence: _Optional[int] = ..., text: _Optional[str] = ..., start_char: _Optional[int] = ..., end_char: _Optional[int] = ..., extractor_version: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...
