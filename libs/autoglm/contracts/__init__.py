"""Wire contracts: messages generated from ``proto/`` and their binary/JSON codecs."""

from autoglm.contracts.codec import (
    CONTENT_TYPE_HEADER,
    JSON,
    PROTOBUF,
    SCHEMA_VERSION,
    decode,
    encode,
    require_fields,
    to_json_dict,
)
from autoglm.v1.common_pb2 import Evidence, HopTiming, Mention, PathEdge
from autoglm.v1.dead_letter_pb2 import DeadLetter
from autoglm.v1.documents_pb2 import (
    AmbiguousMention,
    Document,
    DocumentAction,
    DocumentFormat,
    GraphCommit,
    LineError,
    ParsedDocument,
    Sentence,
    Triple,
)
from autoglm.v1.feedback_pb2 import (
    ExampleSource,
    Feedback,
    ModelAction,
    ModelUpdate,
    TrainingExample,
)
from autoglm.v1.questions_pb2 import LinkedEntity, LinkingReport, ParsedQuestion, Question
from autoglm.v1.reasoning_pb2 import (
    Answer,
    EdgeEvidence,
    GraphNode,
    ReasoningInput,
    Result,
    ResultStatus,
    Subgraph,
)

__all__ = [
    "CONTENT_TYPE_HEADER",
    "JSON",
    "PROTOBUF",
    "SCHEMA_VERSION",
    "AmbiguousMention",
    "Answer",
    "DeadLetter",
    "Document",
    "DocumentAction",
    "DocumentFormat",
    "EdgeEvidence",
    "Evidence",
    "ExampleSource",
    "Feedback",
    "GraphCommit",
    "GraphNode",
    "HopTiming",
    "LineError",
    "LinkedEntity",
    "LinkingReport",
    "Mention",
    "ModelAction",
    "ModelUpdate",
    "ParsedDocument",
    "ParsedQuestion",
    "PathEdge",
    "Question",
    "ReasoningInput",
    "Result",
    "ResultStatus",
    "Sentence",
    "Subgraph",
    "TrainingExample",
    "Triple",
    "decode",
    "encode",
    "require_fields",
    "to_json_dict",
]
