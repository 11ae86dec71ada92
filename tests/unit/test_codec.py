"""The wire codec: binary and canonical JSON, and a clear error for every bad input."""

from __future__ import annotations

import pytest

from autoglm.contracts import (
    JSON,
    PROTOBUF,
    DeadLetter,
    Document,
    Feedback,
    GraphNode,
    ModelUpdate,
    ParsedDocument,
    ParsedQuestion,
    Question,
    ReasoningInput,
    Result,
    TrainingExample,
    decode,
    encode,
    require_fields,
)
from autoglm.errors import BadInputError, ErrorCategory

SAMPLES = [
    Question(request_id="r1", schema_version=1, text="who directed [Jaws]", hops=1, top_k=3),
    ParsedQuestion(request_id="r1", question=Question(request_id="r1", text="x")),
    Document(request_id="d1", document_id="doc", text="Jaws|directed_by|Steven Spielberg"),
    ParsedDocument(request_id="d1", document_id="doc"),
    ReasoningInput(request_id="r1", graph_version=7),
    Result(request_id="r1", confidence=0.5, model_version="m"),
    Feedback(request_id="f1", target_request_id="r1", wrong=True),
    TrainingExample(request_id="t1", answer_keys=["a"]),
    ModelUpdate(request_id="u1", version="v2", metrics={"hits@1": 0.9}),
    DeadLetter(request_id="r1", original_value=b"\xff\x00", reason="x"),
]


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.DESCRIPTOR.name)
def test_round_trip(message, content_type):
    body, headers = encode(message, content_type)
    assert headers == {"content-type": content_type}
    assert decode(type(message), body, headers) == message


def test_json_is_the_canonical_mapping():
    body, _ = encode(Question(request_id="r1", text="hi", top_k=2), JSON)
    assert body == b'{"requestId": "r1", "text": "hi", "topK": 2}'
    # snake_case field names are accepted too, as the proto3 JSON spec requires
    parsed = decode(Question, b'{"request_id": "r1", "text": "hi"}', {"content-type": JSON})
    assert parsed.request_id == "r1"


def test_missing_content_type_is_sniffed():
    assert decode(Question, b'{"requestId": "a", "text": "b"}').text == "b"
    body, _ = encode(Question(request_id="a", text="b"))
    assert decode(Question, body).text == "b"


@pytest.mark.parametrize(
    ("body", "headers", "error_type"),
    [
        (b'{"requestId": "a", "txt": "b"}', {"content-type": JSON}, "schema"),
        (b'{"requestId": 5}', {"content-type": JSON}, "schema"),
        (b'{"requestId": "a"', {"content-type": JSON}, "schema"),
        (b'{"text": "\xff\xfe"}', {"content-type": JSON}, "decode"),
        (b"\xff\xfe\x00 junk", {}, "decode"),
        (bytes([0x52, 3, 1, 2, 3]), {"content-type": PROTOBUF}, "schema"),
        (b"hello", {"content-type": "text/xml"}, "content_type"),
    ],
)
def test_bad_bodies_are_bad_input(body, headers, error_type):
    with pytest.raises(BadInputError) as caught:
        decode(Question, body, headers)
    assert caught.value.error_type == error_type
    assert caught.value.category is ErrorCategory.BAD_INPUT
    assert caught.value.reason


def test_required_fields_and_schema_version():
    with pytest.raises(BadInputError, match="request_id, text"):
        require_fields(Question(text="  "), "request_id", "text")
    with pytest.raises(BadInputError, match="schema_version 9"):
        require_fields(Question(request_id="a", text="b", schema_version=9), "request_id")
    with pytest.raises(BadInputError, match="question"):
        require_fields(ParsedQuestion(request_id="a"), "request_id", "question")
    require_fields(ParsedQuestion(request_id="a", question=Question()), "request_id", "question")


def test_binary_nodes_keep_unicode():
    node = GraphNode(key="amélie", name="Amélie")
    body, headers = encode(node, JSON)
    assert decode(GraphNode, body, headers).name == "Amélie"
