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

class DocumentAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_ACTION_UNSPECIFIED: _ClassVar[DocumentAction]
    DOCUMENT_ACTION_UPSERT: _ClassVar[DocumentAction]
    DOCUMENT_ACTION_DELETE: _ClassVar[DocumentAction]
DOCUMENT_FORMAT_UNSPECIFIED: DocumentFormat
DOCUMENT_FORMAT_TEXT: DocumentFormat
DOCUMENT_FORMAT_TRIPLES: DocumentFormat
DOCUMENT_ACTION_UNSPECIFIED: DocumentAction
DOCUMENT_ACTION_UPSERT: DocumentAction
DOCUMENT_ACTION_DELETE: DocumentAction

class Document(_message.Message):
    __slots__ = ("request_id", "schema_version", "document_id", "format", "text", "source", "first_line", "action")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FIRST_LINE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    document_id: str
    format: DocumentFormat
    text: str
    source: str
    first_line: int
    action: DocumentAction
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., document_id: _Optional[str] = ..., format: _Optional[_Union[DocumentFormat, str]] = ..., text: _Optional[str] = ..., source: _Optional[str] = ..., first_line: _Optional[int] = ..., action: _Optional[_Union[DocumentAction, str]] = ...) -> None: ...

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
    __slots__ = ("subject", "predicate", "object", "sentence", "confidence", "start_char", "end_char", "subject_type", "object_type", "open", "object_literal", "subject_key", "object_key")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PREDICATE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    START_CHAR_FIELD_NUMBER: _ClassVar[int]
    END_CHAR_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    OBJECT_LITERAL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    subject: str
    predicate: str
    object: str
    sentence: int
    confidence: float
    start_char: int
    end_char: int
    subject_type: str
    object_type: str
    open: bool
    object_literal: bool
    subject_key: str
    object_key: str
    def __init__(self, subject: _Optional[str] = ..., predicate: _Optional[str] = ..., object: _Optional[str] = ..., sentence: _Optional[int] = ..., confidence: _Optional[float] = ..., start_char: _Optional[int] = ..., end_char: _Optional[int] = ..., subject_type: _Optional[str] = ..., object_type: _Optional[str] = ..., open: _Optional[bool] = ..., object_literal: _Optional[bool] = ..., subject_key: _Optional[str] = ..., object_key: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("request_id", "schema_version", "document_id", "format", "source", "sentences", "entities", "triples", "line_errors", "timings", "action", "extractor_version")
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
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EXTRACTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
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
    action: DocumentAction
    extractor_version: str
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., document_id: _Optional[str] = ..., format: _Optional[_Union[DocumentFormat, str]] = ..., source: _Optional[str] = ..., sentences: _Optional[_Iterable[_Union[Sentence, _Mapping]]] = ..., entities: _Optional[_Iterable[_Union[_common_pb2.Mention, _Mapping]]] = ..., triples: _Optional[_Iterable[_Union[Triple, _Mapping]]] = ..., line_errors: _Optional[_Iterable[_Union[LineError, _Mapping]]] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.HopTiming, _Mapping]]] = ..., action: _Optional[_Union[DocumentAction, str]] = ..., extractor_version: _Optional[str] = ...) -> None: ...

class GraphCommit(_message.Message):
    __slots__ = ("request_id", "schema_version", "document_id", "graph_version", "entities", "triples", "line_errors", "graph_entities", "graph_relations", "action", "triples_removed", "entities_resolved", "ambiguous_mentions")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    GRAPH_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    TRIPLES_FIELD_NUMBER: _ClassVar[int]
    LINE_ERRORS_FIELD_NUMBER: _ClassVar[int]
    GRAPH_ENTITIES_FIELD_NUMBER: _ClassVar[int]
    GRAPH_RELATIONS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TRIPLES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_RESOLVED_FIELD_NUMBER: _ClassVar[int]
    AMBIGUOUS_MENTIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    document_id: str
    graph_version: int
    entities: int
    triples: int
    line_errors: int
    graph_entities: int
    graph_relations: int
    action: DocumentAction
    triples_removed: int
    entities_resolved: int
    ambiguous_mentions: _containers.RepeatedCompositeFieldContainer[AmbiguousMention]
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., document_id: _Optional[str] = ..., graph_version: _Optional[int] = ..., entities: _Optional[int] = ..., triples: _Optional[int] = ..., line_errors: _Optional[int] = ..., graph_entities: _Optional[int] = ..., graph_relations: _Optional[int] = ..., action: _Optional[_Union[DocumentAction, str]] = ..., triples_removed: _Optional[int] = ..., entities_resolved: _Optional[int] = ..., ambiguous_mentions: _Optional[_Iterable[_Union[AmbiguousMention, _Mapping]]] = ...) -> None: ...

class AmbiguousMention(_message.Message):
    __slots__ = ("mention", "type", "key", "candidates")
    MENTION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    mention: str
    type: str
    key: str
    candidates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, mention: _Optional[str] = ..., type: _Optional[str] = ..., key: _Optional[str] = ..., candidates: _Optional[_Iterable[str]] = ...) -> None: ...
