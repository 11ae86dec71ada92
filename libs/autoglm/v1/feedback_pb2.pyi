import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from autoglm.v1 import questions_pb2 as _questions_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExampleSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXAMPLE_SOURCE_UNSPECIFIED: _ClassVar[ExampleSource]
    EXAMPLE_SOURCE_PSEUDO_LABEL: _ClassVar[ExampleSource]
    EXAMPLE_SOURCE_FEEDBACK: _ClassVar[ExampleSource]
    EXAMPLE_SOURCE_LABELLED: _ClassVar[ExampleSource]

class ModelAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_ACTION_UNSPECIFIED: _ClassVar[ModelAction]
    MODEL_ACTION_PROMOTE: _ClassVar[ModelAction]
    MODEL_ACTION_ROLLBACK: _ClassVar[ModelAction]
EXAMPLE_SOURCE_UNSPECIFIED: ExampleSource
EXAMPLE_SOURCE_PSEUDO_LABEL: ExampleSource
EXAMPLE_SOURCE_FEEDBACK: ExampleSource
EXAMPLE_SOURCE_LABELLED: ExampleSource
MODEL_ACTION_UNSPECIFIED: ModelAction
MODEL_ACTION_PROMOTE: ModelAction
MODEL_ACTION_ROLLBACK: ModelAction

class Feedback(_message.Message):
    __slots__ = ("request_id", "schema_version", "target_request_id", "correct_answers", "wrong", "comment")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CORRECT_ANSWERS_FIELD_NUMBER: _ClassVar[int]
    WRONG_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    target_request_id: str
    correct_answers: _containers.RepeatedScalarFieldContainer[str]
    wrong: bool
    comment: str
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., target_request_id: _Optional[str] = ..., correct_answers: _Optional[_Iterable[str]] = ..., wrong: _Optional[bool] = ..., comment: _Optional[str] = ...) -> None: ...

class TrainingExample(_message.Message):
    __slots__ = ("request_id", "schema_version", "source_request_id", "source", "question", "answer_keys", "negative_keys", "weight", "model_version", "graph_version", "hops", "anchors")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_KEYS_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_KEYS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GRAPH_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    ANCHORS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    source_request_id: str
    source: ExampleSource
    question: str
    answer_keys: _containers.RepeatedScalarFieldContainer[str]
    negative_keys: _containers.RepeatedScalarFieldContainer[str]
    weight: float
    model_version: str
    graph_version: int
    hops: int
    anchors: _containers.RepeatedCompositeFieldContainer[_questions_pb2.LinkedEntity]
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., source_request_id: _Optional[str] = ..., source: _Optional[_Union[ExampleSource, str]] = ..., question: _Optional[str] = ..., answer_keys: _Optional[_Iterable[str]] = ..., negative_keys: _Optional[_Iterable[str]] = ..., weight: _Optional[float] = ..., model_version: _Optional[str] = ..., graph_version: _Optional[int] = ..., hops: _Optional[int] = ..., anchors: _Optional[_Iterable[_Union[_questions_pb2.LinkedEntity, _Mapping]]] = ...) -> None: ...

class ModelUpdate(_message.Message):
    __slots__ = ("request_id", "schema_version", "action", "version", "parent_version", "metrics", "created_at")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    action: ModelAction
    version: str
    parent_version: str
    metrics: _containers.ScalarMap[str, float]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., action: _Optional[_Union[ModelAction, str]] = ..., version: _Optional[str] = ..., parent_version: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
