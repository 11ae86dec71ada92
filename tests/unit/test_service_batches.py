"""Batch consumption in memory (FastStream's TestKafkaBroker): every per-message guarantee holds
for each message of a batch."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from autoglm.bus import topics
from autoglm.bus.idempotency import MemoryIdempotencyStore
from autoglm.bus.service import (
    HandlerContext,
    Incoming,
    ItemResult,
    Outgoing,
    ServiceRuntime,
    _failed,
)
from autoglm.contracts import DeadLetter, Question, decode, encode
from autoglm.errors import BadInputError, TransientError
from autoglm.retries import RetryPolicy
from autoglm.settings import Settings


class Recorder(MemoryIdempotencyStore):
    """Remembers the order in which request ids were marked done."""

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[str] = []

    async def mark_many(self, keys: Sequence[str]) -> None:
        self.marked.extend(keys)
        await super().mark_many(keys)


def _runtime(behaviour: dict[str, str]):
    """A service whose batch core echoes questions, misbehaving for the texts in ``behaviour``."""
    settings = Settings()
    store = Recorder()
    runtime = ServiceRuntime("echo", settings, idempotency=store)
    runtime.retry_policy = RetryPolicy(initial_s=0.0, max_s=0.0, jitter_s=0.0)
    calls: list[list[str]] = []
    captured: dict[str, list] = {"out": [], "dead": []}

    @runtime.consume_batch(
        topics.QUESTIONS, Question, max_records=10, required=("request_id", "text")
    )
    async def echo(items: Sequence[Incoming[Question]]) -> list[ItemResult]:
        texts = [item.message.text for item in items]
        calls.append(texts)
        results: list[ItemResult] = []
        for item in items:
            mode = behaviour.get(item.message.text)
            if mode == "crash":
                raise RuntimeError(f"cannot handle {item.message.text}")
            if mode == "transient":
                raise TransientError("store down")
            if mode == "bad":
                results.append(BadInputError("not a question", error_type="semantic"))
                continue
            results.append([Outgoing(topics.PARSED_QUESTIONS, item.message, key="k")])
        return results

    @runtime.broker.subscriber(settings.topic(topics.PARSED_QUESTIONS))
    async def out(message: KafkaMessage) -> None:
        captured["out"].append(decode(Question, message.body, message.headers).text)

    @runtime.broker.subscriber(settings.topic(topics.DEAD_LETTERS))
    async def dead(message: KafkaMessage) -> None:
        captured["dead"].append(decode(DeadLetter, message.body, message.headers))

    return runtime, settings, store, calls, captured


def _bodies(*questions: Question | bytes) -> list[bytes]:
    return [q if isinstance(q, bytes) else encode(q)[0] for q in questions]


async def test_one_bad_message_is_dead_lettered_and_the_rest_of_the_batch_goes_on():
    runtime, settings, store, calls, captured = _runtime({"nonsense": "bad"})
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish_batch(
            *_bodies(
                Question(request_id="r1", text="one"),
                b"\xff\xfejunk",
                Question(request_id="r2", text="nonsense"),
                Question(request_id="r3", text=""),
                Question(request_id="r4", text="four"),
            ),
            topic=settings.topic(topics.QUESTIONS),
            headers={"content-type": "application/x-protobuf"},
        )
    assert calls == [["one", "nonsense", "four"]]  # one core call, undecodable ones left out
    assert captured["out"] == ["one", "four"]
    reasons = {(d.request_id, d.error_type) for d in captured["dead"]}
    assert reasons == {("", "decode"), ("r2", "semantic"), ("r3", "missing_field")}
    assert all(d.original_value and len(d.trace_id) == 32 for d in captured["dead"])
    assert sorted(store.marked) == [f"echo:questions:r{n}" for n in (1, 2, 3, 4)]


async def test_replays_are_skipped_within_a_batch_and_across_batches():
    runtime, settings, _, calls, captured = _runtime({})
    async with TestKafkaBroker(runtime.broker) as broker:
        first = Question(request_id="same", text="once")
        await broker.publish_batch(
            *_bodies(first, first, Question(request_id="other", text="twice")),
            topic=settings.topic(topics.QUESTIONS),
        )
        await broker.publish_batch(*_bodies(first), topic=settings.topic(topics.QUESTIONS))
    assert calls == [["once", "twice"]]
    assert captured["out"] == ["once", "twice"]


async def test_a_crashing_message_is_isolated_retried_and_dead_lettered():
    runtime, settings, store, calls, captured = _runtime({"poison": "crash"})
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish_batch(
            *_bodies(
                Question(request_id="a", text="fine"),
                Question(request_id="b", text="poison"),
                Question(request_id="c", text="also fine"),
            ),
            topic=settings.topic(topics.QUESTIONS),
        )
    # The batch fails, then each message runs alone; the poisonous one up to max_attempts times.
    assert calls == [["fine", "poison", "also fine"], ["fine"], *[["poison"]] * 3, ["also fine"]]
    assert captured["out"] == ["fine", "also fine"]
    (letter,) = captured["dead"]
    assert (letter.request_id, letter.error_type) == ("b", "processing")
    assert "cannot handle poison" in letter.reason
    assert sorted(store.marked) == ["echo:questions:a", "echo:questions:b", "echo:questions:c"]


async def test_a_transient_failure_publishes_and_marks_nothing():
    runtime, settings, store, _, captured = _runtime({"flaky": "transient"})
    async with TestKafkaBroker(runtime.broker) as broker:
        with pytest.raises(TransientError):
            await broker.publish_batch(
                *_bodies(
                    Question(request_id="a", text="ok"), Question(request_id="b", text="flaky")
                ),
                topic=settings.topic(topics.QUESTIONS),
            )
    assert captured == {"out": [], "dead": []}
    assert store.marked == []


async def test_nothing_is_marked_done_when_an_output_is_not_acknowledged():
    runtime, settings, store, _, _ = _runtime({})
    send = runtime._send

    async def refuse(outgoing, body, headers):
        if outgoing.topic == topics.PARSED_QUESTIONS:
            return _failed(KafkaConnectionError("broker gone"))
        return await send(outgoing, body, headers)

    async with TestKafkaBroker(runtime.broker) as broker:
        runtime._send = refuse  # type: ignore[method-assign]
        with pytest.raises(TransientError, match="broker gone"):
            await broker.publish_batch(
                *_bodies(Question(request_id="a", text="ok")),
                topic=settings.topic(topics.QUESTIONS),
            )
    assert store.marked == []


async def test_a_refused_output_fails_its_own_message_only():
    """The broker refuses one message's output for good (too large): that message is
    dead-lettered in its place, the others are delivered and marked done, nothing is retried."""
    runtime, settings, store, _, captured = _runtime({})
    send = runtime._send

    async def refuse_big(outgoing, body, headers):
        if outgoing.topic == topics.PARSED_QUESTIONS and b"big" in body:
            return _failed(MessageSizeTooLargeError("record too large"))
        return await send(outgoing, body, headers)

    async with TestKafkaBroker(runtime.broker) as broker:
        runtime._send = refuse_big  # type: ignore[method-assign]
        await broker.publish_batch(
            *_bodies(
                Question(request_id="a", text="one"),
                Question(request_id="b", text="big"),
                Question(request_id="c", text="three"),
            ),
            topic=settings.topic(topics.QUESTIONS),
        )
    assert captured["out"] == ["one", "three"]
    (letter,) = captured["dead"]
    assert (letter.request_id, letter.error_type) == ("b", "output_refused")
    assert sorted(store.marked) == ["echo:questions:a", "echo:questions:b", "echo:questions:c"]


async def test_a_retriable_send_failure_marks_the_delivered_messages_done():
    """A refetch after a failed send must not publish again what was already acknowledged."""
    runtime, settings, store, calls, captured = _runtime({})
    send = runtime._send
    failures = iter([True])

    async def flaky(outgoing, body, headers):
        if b"second" in body and next(failures, False):
            return _failed(KafkaConnectionError("leader moved"))
        return await send(outgoing, body, headers)

    runtime._send = flaky  # type: ignore[method-assign]
    batch = _bodies(Question(request_id="a", text="first"), Question(request_id="b", text="second"))
    async with TestKafkaBroker(runtime.broker) as broker:
        with pytest.raises(TransientError):
            await broker.publish_batch(*batch, topic=settings.topic(topics.QUESTIONS))
        assert store.marked == ["echo:questions:a"]
        await broker.publish_batch(*batch, topic=settings.topic(topics.QUESTIONS))  # the refetch
    assert calls == [["first", "second"], ["second"]]
    assert captured["out"] == ["first", "second"]


async def test_a_one_message_handler_is_tried_max_attempts_times_then_dead_lettered():
    settings = Settings()
    runtime = ServiceRuntime("single", settings, idempotency=MemoryIdempotencyStore())
    runtime.retry_policy = RetryPolicy(initial_s=0.0, max_s=0.0, jitter_s=0.0)
    attempts: list[str] = []
    dead: list[DeadLetter] = []

    @runtime.consume(topics.QUESTIONS, Question)
    async def always_fails(question: Question, ctx: HandlerContext) -> list[Outgoing]:
        attempts.append(question.request_id)
        raise KeyError("no such thing")

    @runtime.broker.subscriber(settings.topic(topics.DEAD_LETTERS))
    async def letters(message: KafkaMessage) -> None:
        dead.append(decode(DeadLetter, message.body, message.headers))

    async with TestKafkaBroker(runtime.broker) as broker:
        body, headers = encode(Question(request_id="q", text="why"))
        await broker.publish(body, topic=settings.topic(topics.QUESTIONS), headers=headers)
    assert attempts == ["q"] * runtime.max_attempts
    (letter,) = dead
    assert letter.error_type == "processing" and "KeyError" in letter.reason
