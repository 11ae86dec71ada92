from autoglm.v1 import common_pb2 as _common_pb2
from autoglm.v1 import questions_pb2 as _questions_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResultStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESULT_STATUS_UNSPECIFIED: _ClassVar[ResultStatus]
    RESULT_STATUS_OK: _ClassVar[ResultStatus]
    RESULT_STATUS_NO_ENTITY: _ClassVar[ResultStatus]
    RESULT_STATUS_ENTITY_NOT_IN_GRAPH: _ClassVar[ResultStatus]
    RESULT_STATUS_EMPTY_SUBGRAPH: _ClassVar[ResultStatus]
    RESULT_STATUS_SUBGRAPH_TOO_LARGE: _ClassVar[ResultStatus]
    RESULT_STATUS_MODEL_UNAVAILABLE: _ClassVar[ResultStatus]
    RESULT_STATUS_ERROR: _ClassVar[ResultStatus]
RESULT_STATUS_UNSPECIFIED: ResultStatus
RESULT_STATUS_OK: ResultStatus
RESULT_STATUS_NO_ENTITY: ResultStatus
RESULT_STATUS_ENTITY_NOT_IN_GRAPH: ResultStatus
RESULT_STATUS_EMPTY_SUBGRAPH: ResultStatus
RESULT_STATUS_SUBGRAPH_TOO_LARGE: ResultStatus
RESULT_STATUS_MODEL_UNAVAILABLE: ResultStatus
RESULT_STATUS_ERROR: ResultStatus

class GraphNode(_message.Message):
    __slots__ = ("key", "name", "label")
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    key: str
    name: str
    label: str
    def __init__(self, key: _Optional[str] = ..., name: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class Subgraph(_message.Message):
    __slots__ = ("nodes", "edge_source", "edge_target", "edge_relation", "relation_types", "anchor_indices", "truncated", "edge_evidence")
    NODES_FIELD_NUMBER: _ClassVar[int]
    EDGE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    EDGE_TARGET_FIELD_NUMBER: _ClassVar[int]
    EDGE_RELATION_FIELD_NUMBER: _ClassVar[int]
    RELATION_TYPES_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_INDICES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    EDGE_EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[GraphNode]
    edge_source: _containers.RepeatedScalarFieldContainer[int]
    edge_target: _containers.RepeatedScalarFieldContainer[int]
    edge_relation: _containers.RepeatedScalarFieldContainer[int]
    relation_types: _containers.RepeatedScalarFieldContainer[str]
    anchor_indices: _containers.RepeatedScalarFieldContainer[int]
    truncated: bool
    edge_evidence: _containers.RepeatedCompositeFieldContainer[EdgeEvidence]
    def __init__(self, nodes: _Optional[_Iterable[_Union[GraphNode, _Mapping]]] = ..., edge_source: _Optional[_Iterable[int]] = ..., edge_target: _Optional[_Iterable[int]] = ..., edge_relation: _Optional[_Iterable[int]] = ..., relation_types: _Optional[_Iterable[str]] = ..., anchor_indices: _Optional[_Iterable[int]] = ..., truncated: _Optional[bool] = ..., edge_evidence: _Optional[_Iterable[_Union[EdgeEvidence, _Mapping]]] = ...) -> None: ...

class EdgeEvidence(_message.Message):
    __slots__ = ("edge", "evidence")
    EDGE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    edge: int
    evidence: _containers.RepeatedCompositeFieldContainer[_common_pb2.Evidence]
    def __init__(self, edge: _Optional[int] = ..., evidence: _Optional[_Iterable[_Union[_common_pb2.Evidence, _Mapping]]] = ...) -> None: ...

class ReasoningInput(_message.Message):
    __slots__ = ("request_id", "schema_version", "question", "subgraph", "linking", "graph_version", "hops", "top_k", "status", "error", "timings")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    SUBGRAPH_FIELD_NUMBER: _ClassVar[int]
    LINKING_FIELD_NUMBER: _ClassVar[int]
    GRAPH_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    question: _questions_pb2.ParsedQuestion
    subgraph: Subgraph
    linking: _questions_pb2.LinkingReport
    graph_version: int
    hops: int
    top_k: int
    status: ResultStatus
    error: str
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.HopTiming]
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., question: _Optional[_Union[_questions_pb2.ParsedQuestion, _Mapping]] = ..., subgraph: _Optional[_Union[Subgraph, _Mapping]] = ..., linking: _Optional[_Union[_questions_pb2.LinkingReport, _Mapping]] = ..., graph_version: _Optional[int] = ..., hops: _Optional[int] = ..., top_k: _Optional[int] = ..., status: _Optional[_Union[ResultStatus, str]] = ..., error: _Optional[str] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.HopTiming, _Mapping]]] = ...) -> None: ...

class Answer(_message.Message):
    __slots__ = ("key", "name", "probability", "path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    name: str
    probability: float
    path: _containers.RepeatedCompositeFieldContainer[_common_pb2.PathEdge]
    def __init__(self, key: _Optional[str] = ..., name: _Optional[str] = ..., probability: _Optional[float] = ..., path: _Optional[_Iterable[_Union[_common_pb2.PathEdge, _Mapping]]] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("request_id", "schema_version", "status", "error", "question", "answers", "confidence", "reasoning_path", "model_version", "graph_version", "timings", "linking", "hops", "trimmed")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    REASONING_PATH_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GRAPH_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    LINKING_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    schema_version: int
    status: ResultStatus
    error: str
    question: str
    answers: _containers.RepeatedCompositeFieldContainer[Answer]
    confidence: float
    reasoning_path: _containers.RepeatedCompositeFieldContainer[_common_pb2.PathEdge]
    model_version: str
    graph_version: int
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.HopTiming]
    linking: _questions_pb2.LinkingReport
    hops: int
    trimmed: str
    def __init__(self, request_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., status: _Optional[_Union[ResultStatus, str]] = ..., error: _Optional[str] = ..., question: _Optional[str] = ..., answers: _Optional[_Iterable[_Union[Answer, _Mapping]]] = ..., confidence: _Optional[float] = ..., reasoning_path: _Optional[_Iterable[_Union[_common_pb2.PathEdge, _Mapping]]] = ..., model_version: _Optional[str] = ..., graph_version: _Optional[int] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.HopTiming, _Mapping]]] = ..., linking: _Optional[_Union[_questions_pb2.LinkingReport, _Mapping]] = ..., hops: _Optional[int] = ..., trimmed: _Optional[str] = ...) -> None: ...
