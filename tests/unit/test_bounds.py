"""hops and top_k are bounded wherever a message asks for work: parser (questions),
graph-builder (parsed questions), trainer (training examples); inference is in
test_inference_inputs.py."""

from __future__ import annotations

import pytest

from autoglm.contracts import (
    JSON,
    LinkedEntity,
    Mention,
    ParsedQuestion,
    Question,
    TrainingExample,
    decode,
)
from autoglm.contracts.bounds import check_hops, check_top_k
from autoglm.errors import BadInputError
from autoglm.graph.questions import check_parsed_question
from autoglm.settings import Settings
from services.parser.app import question_bounds
from services.trainer.app import TrainerSettings, check_example

UINT32_MAX = 2**32 - 1


def test_bounds_with_and_without_a_default():
    settings = Settings()
    check_hops(0, settings, zero_is_default=True)
    check_top_k(100, settings)
    with pytest.raises(BadInputError, match="hops must be 1 to 3; got 0"):
        check_hops(0, settings)
    with pytest.raises(BadInputError, match="top_k must be 1 to 100, or 0 for the default; got"):
        check_top_k(101, settings, zero_is_default=True)


def test_a_json_question_with_top_k_at_uint32_max_is_one_clear_refusal():
    body = b'{"requestId": "q-1", "text": "who directed [Jaws]", "hops": 3, "topK": 4294967295}'
    question = decode(Question, body, {"content-type": JSON})
    error = question_bounds(question, Settings())
    assert error is not None and error.error_type == "invalid_field"
    assert f"top_k must be 1 to 100, or 0 for the default; got {UINT32_MAX}" == error.reason
    assert question_bounds(Question(text="q", hops=4), Settings()) is not None
    assert question_bounds(Question(text="q"), Settings()) is None  # 0 = the defaults
    assert question_bounds(Question(text="q", hops=5, top_k=7), Settings(max_hops=5)) is None


@pytest.mark.parametrize(
    ("question", "words"),
    [
        (ParsedQuestion(question=Question(hops=UINT32_MAX)), "hops must be 1 to 3"),
        (ParsedQuestion(question=Question(top_k=UINT32_MAX)), "top_k must be 1 to 100"),
        (ParsedQuestion(normalized_text="x" * 1_001), "1001 characters"),
        (ParsedQuestion(question=Question(text="x" * 1_001)), "1001 characters"),
        (ParsedQuestion(mentions=[Mention(text="m" * 5_000)]), "5000 characters"),
    ],
)
def test_graph_builder_refuses_forged_parsed_questions(question, words):
    with pytest.raises(BadInputError, match=words):
        check_parsed_question(question, Settings())


def test_graph_builder_accepts_what_the_parser_writes():
    check_parsed_question(
        ParsedQuestion(question=Question(text="who directed Jaws"), normalized_text="x"),
        Settings(),
    )


def test_trainer_refuses_examples_that_ask_for_unbounded_hops():
    example = TrainingExample(
        request_id="e",
        source_request_id="r",
        question="who directed Jaws",
        answer_keys=["Steven Spielberg"],
        weight=1.0,
        anchors=[LinkedEntity(key="Jaws")],
    )
    settings = TrainerSettings()
    assert check_example(example, settings) is None
    example.hops = UINT32_MAX
    error = check_example(example, settings)
    assert error is not None and "hops must be 1 to 3, or 0 for the default" in error.reason
