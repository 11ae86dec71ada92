from autoglm.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Question(_message.Message):
    __slots__ = ("request_id", "schema_version", "text", "hops", "top_k")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    text: str
    hops: int
    top_k: int
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., text: _Optional[str] = ..., hops: _Optional[int] = ..., top_k: _Optional[int] = ...) -> None: ...

class ParsedQuestion(_message.Message):
    __slots__ = ("request_id", "schema_version", "question", "normalized_text", "mentions", "timings")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_TEXT_FIELD_NUMBER: _ClassVar[int]
    MENTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    question: Question
    normalized_text: str
    mentions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Mention]
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.HopTiming]
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., question: _Optional[_Union[Question, _Mapping]] = ..., normalized_text: _Optional[str] = ..., mentions: _Optional[_Iterable[_Union[_common_pb2.Mention, _Mapping]]] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.HopTiming, _Mapping]]] = ...) -> None: ...

class LinkedEntity(_message.Message):
    __slots__ = ("mention", "key", "name", "score")
    MENTION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    mention: str
    key: str
    name: str
    score: float
    def __init__(self, mention: _Optional[str] = ..., key: _Optional[str] = ..., name: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class LinkingReport(_message.Message):
    __slots__ = ("anchors", "unlinked_mentions", "ambiguous_candidates")
    ANCHORS_FIELD_NUMBER: _ClassVar[int]
    UNLINKED_MENTIONS_FIELD_NUMBER: _ClassVar[int]
    AMBIGUOUS_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    anchors: _containers.RepeatedCompositeFieldContainer[LinkedEntity]
    unlinked_mentions: _containers.RepeatedScalarFieldContainer[str]
    ambiguous_candidates: _containers.RepeatedCompositeFieldContainer[LinkedEntity]
    def __init__(self, anchors: _Optional[_Iterable[_Union[LinkedEntity, _Mapping]]] = ..., unlinked_mentions: _Optional[_Iterable[str]] = ..., ambiguous_candidates: _Optional[_Iterable[_Union[LinkedEntity, _Mapping]]] = ...) -> None: ...
