"""Every output fits the message size limit (bus.limits): dead letters keep a prefix of the
original, Results drop their tail answers, anything else is refused before it is sent."""

from __future__ import annotations

import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from autoglm.bus import topics
from autoglm.bus.idempotency import MemoryIdempotencyStore
from autoglm.bus.limits import OutputTooLargeError, encode_within
from autoglm.bus.service import HandlerContext, Outgoing, ServiceRuntime
from autoglm.contracts import (
    JSON,
    PROTOBUF,
    Answer,
    DeadLetter,
    ParsedQuestion,
    PathEdge,
    Question,
    Result,
    decode,
    encode,
)
from autoglm.settings import Settings


@pytest.mark.parametrize("content_type", [JSON, PROTOBUF])
@pytest.mark.parametrize("size", [790_000, 1_000_100])
def test_a_dead_letter_of_a_huge_body_fits_and_says_how_long_the_body_was(content_type, size):
    body = b"{" + b"x" * (size - 1)
    letter = DeadLetter(request_id="r", original_value=body, reason="bad json " * 2000)
    letter.original_headers.update({"content-type": JSON, "h" * 5000: "v" * 5000})
    encoded, headers = encode_within(letter, content_type, 1_000_000)
    assert len(encoded) <= 1_000_000
    back = decode(DeadLetter, encoded, headers)
    fits = content_type == PROTOBUF and size < 1_000_000 - 100_000  # binary: no base64
    assert back.original_truncated is not fits
    assert back.original_length == (0 if fits else size)
    assert body.startswith(back.original_value)
    assert len(back.original_value) > 700_000  # keeps as much of the original as fits
    assert fits or len(back.reason) <= 4_000
    assert letter.original_value == body  # the caller's message is left as it was


def test_a_dead_letter_that_fits_is_sent_whole():
    letter = DeadLetter(request_id="r", original_value=b"\xff" * 100, reason="decode")
    encoded, headers = encode_within(letter, JSON, 1_000_000)
    back = decode(DeadLetter, encoded, headers)
    assert back.original_value == b"\xff" * 100 and not back.original_truncated


def _result(answers: int) -> Result:
    result = Result(request_id="r", question="what", confidence=0.5)
    for n in range(answers):
        edge = PathEdge(source_key="a" * 200, relation="r", target_key=f"{n}" * 200)
        result.answers.append(Answer(key=f"answer {n}", probability=1 / (n + 1), path=[edge] * 3))
    result.reasoning_path.extend(result.answers[0].path)
    return result


@pytest.mark.parametrize("content_type", [JSON, PROTOBUF])
def test_a_large_result_keeps_its_best_answers_and_says_why(content_type):
    result = _result(2_000)
    encoded, headers = encode_within(result, content_type, 100_000)
    assert len(encoded) <= 100_000
    back = decode(Result, encoded, headers)
    assert 0 < len(back.answers) < 2_000
    assert [a.key for a in back.answers] == [f"answer {n}" for n in range(len(back.answers))]
    assert "100000-byte" in back.trimmed and f"of {2_000}" in back.trimmed
    assert (
        not _result(3).trimmed
        and not decode(Result, *encode_within(_result(3), JSON, 10**6)).trimmed
    )


def test_other_messages_over_the_limit_are_refused():
    with pytest.raises(OutputTooLargeError, match="ParsedQuestion of"):
        encode_within(ParsedQuestion(request_id="r", normalized_text="x" * 5000), JSON, 1000)


async def test_a_message_whose_output_cannot_fit_is_dead_lettered_and_its_batch_goes_on():
    settings = Settings(max_message_bytes=2_000)
    runtime = ServiceRuntime("echo", settings, idempotency=MemoryIdempotencyStore())
    out: list[str] = []
    dead: list[DeadLetter] = []

    @runtime.consume(topics.QUESTIONS, Question)
    async def echo(question: Question, ctx: HandlerContext) -> list[Outgoing]:
        # A question just under the input limit whose output is several times larger.
        parsed = ParsedQuestion(request_id=question.request_id, question=question)
        parsed.normalized_text = question.text * (5 if question.text.startswith("big") else 1)
        return [Outgoing(topics.PARSED_QUESTIONS, parsed, key=question.request_id)]

    @runtime.broker.subscriber(settings.topic(topics.PARSED_QUESTIONS))
    async def parsed(message: KafkaMessage) -> None:
        out.append(decode(ParsedQuestion, message.body, message.headers).request_id)

    @runtime.broker.subscriber(settings.topic(topics.DEAD_LETTERS))
    async def letters(message: KafkaMessage) -> None:
        dead.append(decode(DeadLetter, message.body, message.headers))

    async with TestKafkaBroker(runtime.broker) as broker:
        for request_id, text in (("a", "small"), ("b", "big " * 300), ("c", "small too")):
            body, headers = encode(Question(request_id=request_id, text=text), JSON)
            await broker.publish(body, topic=settings.topic(topics.QUESTIONS), headers=headers)
    assert out == ["a", "c"]
    (letter,) = dead
    assert letter.request_id == "b" and letter.error_type == "output_too_large"
