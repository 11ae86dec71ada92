"""Idempotency keeps the content digest: a request id reused for other content is reported on
the request topics (not silently skipped), the same content in another encoding is a replay,
and a redrive's autoglm-attempt header makes a new key."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from autoglm.bus import topics
from autoglm.bus.envelope import ATTEMPT_HEADER, content_digest
from autoglm.bus.idempotency import MemoryIdempotencyStore
from autoglm.bus.service import Incoming, ItemResult, Outgoing, ServiceRuntime
from autoglm.contracts import JSON, DeadLetter, Question, decode, encode
from autoglm.settings import Settings


def _echo(topic: str):
    settings = Settings()
    store = MemoryIdempotencyStore()
    runtime = ServiceRuntime("echo", settings, idempotency=store)
    handled: list[str] = []
    dead: list[DeadLetter] = []

    @runtime.consume_batch(topic, Question, max_records=10)
    async def echo(items: Sequence[Incoming[Question]]) -> list[ItemResult]:
        handled.extend(item.message.text for item in items)
        return [[Outgoing(topics.RESULTS, item.message, key="k")] for item in items]

    @runtime.broker.subscriber(settings.topic(topics.DEAD_LETTERS))
    async def letters(message: KafkaMessage) -> None:
        dead.append(decode(DeadLetter, message.body, message.headers))

    return runtime, settings, store, handled, dead


async def test_a_reused_request_id_is_dead_lettered_with_both_digests():
    runtime, settings, store, handled, dead = _echo(topics.QUESTIONS)
    first, other = Question(request_id="r", text="who directed [Jaws]"), Question(request_id="r")
    other.text = "who acted in [Jaws]"
    topic = settings.topic(topics.QUESTIONS)
    async with TestKafkaBroker(runtime.broker) as broker:
        for message, content_type in (
            (first, JSON),
            (other, JSON),
            (first, "application/x-protobuf"),
        ):
            body, headers = encode(message, content_type)
            await broker.publish(body, topic=topic, headers=headers)
        # Both in one batch: the second is reported too.
        await broker.publish_batch(
            encode(Question(request_id="s", text="a"))[0],
            encode(Question(request_id="s", text="b"))[0],
            topic=topic,
        )
    assert handled == ["who directed [Jaws]", "a"]  # the same content as protobuf: a replay
    assert [(d.request_id, d.error_type) for d in dead] == [
        ("r", "request_id_reused"),
        ("s", "request_id_reused"),
    ]
    assert content_digest(first) in dead[0].reason and content_digest(other) in dead[0].reason
    # What is remembered under the id is still what was processed.
    assert await store.digests_many(["echo:questions:r"]) == [content_digest(first)]


async def test_a_redrive_attempt_is_processed_once_under_its_own_key():
    runtime, settings, store, handled, dead = _echo(topics.QUESTIONS)
    body, headers = encode(Question(request_id="r", text="again"))
    topic = settings.topic(topics.QUESTIONS)
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish(body, topic=topic, headers=headers)
        await broker.publish(body, topic=topic, headers=headers)  # a replay: skipped
        for _ in range(2):  # a redrive, run twice: the second is a replay of the first
            await broker.publish(body, topic=topic, headers={**headers, ATTEMPT_HEADER: "a1"})
    assert handled == ["again", "again"] and not dead
    assert await store.seen_many(["echo:questions:r", "echo:questions:r@a1"]) == [True, True]


async def test_internal_topics_skip_a_replay_whatever_its_content():
    runtime, settings, _, handled, dead = _echo(topics.PARSED_QUESTIONS)
    topic = settings.topic(topics.PARSED_QUESTIONS)
    async with TestKafkaBroker(runtime.broker) as broker:
        for text in ("first run", "re-run upstream, other timings"):
            body, headers = encode(Question(request_id="r", text=text))
            await broker.publish(body, topic=topic, headers=headers)
    assert handled == ["first run"] and not dead
