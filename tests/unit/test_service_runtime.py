"""The service runtime in memory (FastStream's TestKafkaBroker): decode, route, dead-letter."""

from __future__ import annotations

import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from autoglm.bus import topics
from autoglm.bus.idempotency import MemoryIdempotencyStore
from autoglm.contracts import JSON, PROTOBUF, DeadLetter, ParsedQuestion, Question, decode, encode
from services.parser.app import ParserSettings, build


@pytest.fixture(scope="module")
def parser_service():
    settings = ParserSettings(max_message_bytes=2_000)
    runtime = build(settings, idempotency=MemoryIdempotencyStore())
    captured: dict[str, list] = {"parsed": [], "dead": []}

    @runtime.broker.subscriber(settings.topic(topics.PARSED_QUESTIONS))
    async def parsed(message: KafkaMessage) -> None:
        captured["parsed"].append((message.headers, message.body))

    @runtime.broker.subscriber(settings.topic(topics.DEAD_LETTERS))
    async def dead(message: KafkaMessage) -> None:
        captured["dead"].append(decode(DeadLetter, message.body, message.headers))

    return runtime, settings, captured


@pytest.fixture
async def service(parser_service):
    runtime, settings, captured = parser_service
    for items in captured.values():
        items.clear()
    async with TestKafkaBroker(runtime.broker) as broker:
        yield broker, settings, captured


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
async def test_question_is_parsed_in_the_encoding_it_came_in(service, content_type, unique):
    broker, settings, captured = service
    body, headers = encode(Question(request_id=unique, text="who acted in [Jaws]"), content_type)
    await broker.publish(body, topic=settings.topic(topics.QUESTIONS), headers=headers)
    ((out_headers, out_body),) = captured["parsed"]
    assert out_headers["content-type"] == content_type
    parsed = decode(ParsedQuestion, out_body, out_headers)
    assert parsed.request_id == unique
    assert parsed.mentions[0].key == "Jaws"
    assert "traceparent" in out_headers  # W3C context travels in the headers
    assert not captured["dead"]


@pytest.mark.parametrize(
    ("body", "headers", "error_type"),
    [
        (b"\x00\xffjunk\x01", {}, "decode"),
        (b'{"requestId": "r"}', {"content-type": JSON}, "missing_field"),
        (b'{"requestId": "r", "text": "x", "bogus": 1}', {"content-type": JSON}, "schema"),
        (
            b'{"requestId": "r", "text": "' + b"x" * 3000 + b'"}',
            {"content-type": JSON},
            "too_large",
        ),
    ],
)
async def test_bad_input_goes_to_dead_letters_with_original_bytes(
    service, body, headers, error_type
):
    broker, settings, captured = service
    await broker.publish(body, topic=settings.topic(topics.QUESTIONS), headers=headers)
    assert not captured["parsed"]
    (letter,) = captured["dead"]
    assert letter.service == "parser"
    assert letter.error_type == error_type
    if len(body) <= settings.max_message_bytes:
        assert letter.original_value == body and not letter.original_truncated
    else:  # the dead letter itself must fit: it keeps the first bytes and the full length
        assert letter.original_truncated and letter.original_length == len(body)
        assert body.startswith(letter.original_value) and len(letter.original_value) > 1000
    assert letter.reason
    assert len(letter.trace_id) == 32


async def test_replayed_request_id_is_processed_once(service, unique):
    broker, settings, captured = service
    body, headers = encode(Question(request_id=unique, text="who directed [Jaws]"))
    for _ in range(3):
        await broker.publish(body, topic=settings.topic(topics.QUESTIONS), headers=headers)
    assert len(captured["parsed"]) == 1


async def test_service_keeps_consuming_after_bad_input(service, unique):
    broker, settings, captured = service
    await broker.publish(b"\xff", topic=settings.topic(topics.QUESTIONS))
    body, headers = encode(Question(request_id=unique, text="who directed [Jaws]"))
    await broker.publish(body, topic=settings.topic(topics.QUESTIONS), headers=headers)
    assert len(captured["dead"]) == 1
    assert len(captured["parsed"]) == 1
