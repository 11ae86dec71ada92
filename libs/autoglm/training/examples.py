"""Trainer core: confident results and user feedback become training examples.

Results are remembered (question, answers, versions) so later feedback about a request id can be
turned into a gold example. Example request ids derive from the source request id, so replays are
idempotent downstream too.
"""

from __future__ import annotations

from typing import Protocol

from autoglm.contracts import (
    SCHEMA_VERSION,
    ExampleSource,
    Feedback,
    Result,
    ResultStatus,
    TrainingExample,
)
from autoglm.errors import BadInputError
from autoglm.nlp.keys import normalize_key

FEEDBACK_WEIGHT = 5.0


class ResultMemory(Protocol):
    async def remember(self, result: Result) -> None: ...

    async def recall(self, request_id: str) -> Result | None: ...


def pseudo_label(result: Result, threshold: float) -> TrainingExample | None:
    if result.status != ResultStatus.RESULT_STATUS_OK or result.confidence < threshold:
        return None
    if not result.answers:
        return None
    top = result.answers[0].probability
    # Every answer as sure as the top one is a label (many MetaQA questions have several).
    answers = [a.key for a in result.answers if a.probability >= threshold * top]
    return TrainingExample(
        request_id=f"{result.request_id}:pseudo",
        schema_version=SCHEMA_VERSION,
        source_request_id=result.request_id,
        source=ExampleSource.EXAMPLE_SOURCE_PSEUDO_LABEL,
        question=result.question,
        answer_keys=answers,
        weight=float(result.confidence),
        model_version=result.model_version,
        graph_version=result.graph_version,
        hops=result.hops,
        anchors=result.linking.anchors,
    )


def feedback_example(
    feedback: Feedback, result: Result | None, weight: float = FEEDBACK_WEIGHT
) -> TrainingExample:
    if result is None:
        raise BadInputError(
            f"feedback refers to unknown request id {feedback.target_request_id!r}",
            error_type="unknown_request",
        )
    if not feedback.correct_answers and not feedback.wrong:
        raise BadInputError(
            "feedback has neither correct answers nor 'wrong'", error_type="missing_field"
        )
    example = TrainingExample(
        request_id=f"{feedback.target_request_id}:feedback:{feedback.request_id}",
        schema_version=SCHEMA_VERSION,
        source_request_id=feedback.target_request_id,
        source=ExampleSource.EXAMPLE_SOURCE_FEEDBACK,
        question=result.question,
        # Keys are normalised names: a user may send either.
        answer_keys=sorted({normalize_key(a) for a in feedback.correct_answers if a.strip()}),
        weight=weight,
        model_version=result.model_version,
        graph_version=result.graph_version,
        hops=result.hops,
        anchors=result.linking.anchors,
    )
    if feedback.wrong and not feedback.correct_answers and result.answers:
        example.negative_keys.append(result.answers[0].key)
    return example
