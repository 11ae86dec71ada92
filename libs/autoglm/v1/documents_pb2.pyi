from autoglm.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DocumentFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_FORMAT_UNSPECIFIED: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_TEXT: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_TRIPLES: _ClassVar[DocumentFormat]
DOCUMENT_FORMAT_UNSPECIFIED: DocumentFormat
DOCUMENT_FORMAT_TEXT: DocumentFormat
DOCUMENT_FORMAT_TRIPLES: DocumentFormat

class Document(_message.Message):
    __slots__ = ("request_id", "schema_version", "document_id", "format", "text", "source", "first_line")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FIRST_LINE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    document_id: str
    format: DocumentFormat
    text: str
    source: str
    first_line: int
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., document_id: _Optional[str] = ..., format: _Optional[_Union[DocumentFormat, str]] = ..., text: _Optional[str] = ..., source: _Optional[str] = ..., first_line: _Optional[int] = ...) -> None: ...

class Sentence(_message.Message):
    __slots__ = ("text", "start_char", "end_char")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_CHAR_FIELD_NUMBER: _ClassVar[int]
    END_CHAR_FIELD_NUMBER: _ClassVar[int]
    text: str
    start_char: int
    end_char: int
    def __init__(self, text: _Optional[str] = ..., start_char: _Optional[int] = ..., end_char: _Optional[int] = ...) -> None: ...

class Triple(_message.Message):
    __slots__ = ("subject", "predicate", "object", "sentence", "confidence")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PREDICATE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    subject: str
    predicate: str
    object: str
    sentence: int
    confidence: float
    def __init__(self, subject: _Optional[str] = ..., predicate: _Optional[str] = ..., object: _Optional[str] = ..., sentence: _Optional[int] = ..., confidence: _Optional[float] = ...) -> None: ...

class LineError(_message.Message):
    __slots__ = ("line", "reason", "content")
    LINE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    line: int
    reason: str
    content: str
    def __init__(self, line: _Optional[int] = ..., reason: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class ParsedDocument(_message.Message):
    __slots__ = ("request_id", "schema_version", "document_id", "format", "source", "sentences", "entities", "triples", "line_errors", "timings")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SENTENCES_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    TRIPLES_FIELD_NUMBER: _ClassVar[int]
    LINE_ERRORS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    document_id: str
    format: DocumentFormat
    source: str
    sentences: _containers.RepeatedCompositeFieldContainer[Sentence]
    entities: _containers.RepeatedCompositeFieldContainer[_common_pb2.Mention]
    triples: _containers.RepeatedCompositeFieldContainer[Triple]
    line_errors: _containers.RepeatedCompositeFieldContainer[LineError]
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.HopTiming]
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., document_id: _Optional[str] = ..., format: _Optional[_Union[DocumentFormat, str]] = ..., source: _Optional[str] = ..., sentences: _Optional[_Iterable[_Union[Sentence, _Mapping]]] = ..., entities: _Optional[_Iterable[_Union[_common_pb2.Mention, _Mapping]]] = ..., triples: _Optional[_Iterable[_Union[Triple, _Mapping]]] = ..., line_errors: _Optional[_Iterable[_Union[LineError, _Mapping]]] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.HopTiming, _Mapping]]] = ...) -> None: ...

class GraphCommit(_message.Message):
    __slots__ = ("request_id", "schema_version", "document_id", "graph_version", "entities", "triples", "line_errors", "graph_entities", "graph_relations")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    TRIPLES_FIELD_NUMBER: _ClassVar[int]
    LINE_ERRORS_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ENTITIES_FIELD_NUMBER: _ClassVar[int]
    GRAPH_RELATIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    document_id: str
    graph_version: int
    entities: int
    triples: int
    line_errors: int
    graph_entities: int
    graph_relations: int
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., document_id: _Optional[str] = ..., graph_version: _Optional[int] = ..., entities: _Optional[int] = ..., triples: _Optional[int] = ..., line_errors: _Optional[int] = ..., graph_entities: _Optional[int] = ..., graph_relations: _Optional[int] = ...) -> None: ...
