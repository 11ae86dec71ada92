"""Retries of the service runtime back off: consecutive transient failures of a route wait
longer and longer (exponential, jitter, a cap) and the first success resets the count; the
tries of a message that raised an unexpected exception are spaced by the same policy."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Sequence

import pytest
from faststream.kafka import TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from autoglm.bus import topics
from autoglm.bus.idempotency import MemoryIdempotencyStore
from autoglm.bus.service import Incoming, ItemResult, ServiceRuntime, transient_retry_policy
from autoglm.contracts import Question, encode
from autoglm.errors import MisconfiguredError, TransientError
from autoglm.retries import RetryPolicy
from autoglm.settings import Settings


def _waits(caplog: pytest.LogCaptureFixture, text: str) -> list[float]:
    return [r.wait_s for r in caplog.records if text in r.getMessage()]  # type: ignore[attr-defined]


def test_the_default_policy_doubles_from_half_a_second_to_about_thirty():
    random.seed(3)
    policy = transient_retry_policy(Settings())
    waits = list(policy.delays(10))
    for retry, wait in enumerate(waits[:6], start=1):
        base = 0.5 * 2 ** (retry - 1)
        assert base <= wait <= base + 0.5
    assert waits[7:] == [30.0] * 3  # 0.5 * 2**7 = 64: capped
    assert len({round(w % 0.5, 6) for w in waits[:6]}) > 1, "jitter"


async def test_consecutive_transient_failures_of_a_route_back_off_and_success_resets(caplog):
    settings = Settings()
    runtime = ServiceRuntime("flaky", settings, idempotency=MemoryIdempotencyStore())
    runtime.retry_policy = RetryPolicy(initial_s=0.01, max_s=0.04, jitter_s=0.0)
    outcomes = iter(["down", "down", "down", "down", "up", "down"])

    @runtime.consume_batch(topics.QUESTIONS, Question, max_records=10)
    async def core(items: Sequence[Incoming[Question]]) -> list[ItemResult]:
        if next(outcomes) == "down":
            raise TransientError("store down", error_type="store")
        return [[] for _ in items]

    caplog.set_level(logging.WARNING, logger="autoglm.bus.service")
    async with TestKafkaBroker(runtime.broker) as broker:
        for n in range(6):
            body, headers = encode(Question(request_id=f"q{n}", text="t"))
            with contextlib.suppress(TransientError):
                await broker.publish_batch(
                    body, topic=settings.topic(topics.QUESTIONS), headers=headers
                )
    # 0.01 doubling to the 0.04 cap; the success in between starts again from the first wait.
    assert _waits(caplog, "will retry the batch") == [0.01, 0.02, 0.04, 0.04, 0.01]


async def test_an_unexpected_exception_is_retried_alone_with_the_same_policy(caplog):
    settings = Settings()
    runtime = ServiceRuntime("crashy", settings, idempotency=MemoryIdempotencyStore())
    runtime.retry_policy = RetryPolicy(initial_s=0.01, max_s=0.015, jitter_s=0.0)
    runtime.max_attempts = 4

    @runtime.consume_batch(topics.QUESTIONS, Question, max_records=10)
    async def core(items: Sequence[Incoming[Question]]) -> list[ItemResult]:
        raise RuntimeError("bug")

    caplog.set_level(logging.WARNING, logger="autoglm.bus.service")
    async with TestKafkaBroker(runtime.broker) as broker:
        body, headers = encode(Question(request_id="q", text="t"))
        await broker.publish_batch(body, topic=settings.topic(topics.QUESTIONS), headers=headers)
    assert _waits(caplog, "processing failed, will retry") == [0.01, 0.015, 0.015]


async def test_a_dependency_refusing_the_configuration_pauses_the_route_and_loses_nothing(caplog):
    """E.g. Neo4j refusing the password: not the message's fault, so it is neither dead-lettered
    nor marked done; the route retries with the backoff, logs an error each time, and the
    message is processed once the configuration is fixed."""
    settings = Settings()
    store = MemoryIdempotencyStore()
    runtime = ServiceRuntime("writer", settings, idempotency=store)
    runtime.retry_policy = RetryPolicy(initial_s=0.01, max_s=0.02, jitter_s=0.0)
    fixed = iter([False, False, True])
    handled: list[str] = []
    dead: list[bytes] = []

    @runtime.consume_batch(topics.QUESTIONS, Question, max_records=10)
    async def core(items: Sequence[Incoming[Question]]) -> list[ItemResult]:
        if not next(fixed):
            raise MisconfiguredError("neo4j refuses the password", error_type="neo4j_config")
        handled.extend(item.message.request_id for item in items)
        return [[] for _ in items]

    @runtime.broker.subscriber(settings.topic(topics.DEAD_LETTERS))
    async def letters(message: KafkaMessage) -> None:
        dead.append(message.body)

    caplog.set_level(logging.WARNING, logger="autoglm.bus.service")
    body, headers = encode(Question(request_id="doc", text="t"))
    async with TestKafkaBroker(runtime.broker) as broker:
        for _ in range(2):  # what the broker redelivers while it is not fixed
            with pytest.raises(MisconfiguredError):
                await broker.publish_batch(
                    body, topic=settings.topic(topics.QUESTIONS), headers=headers
                )
            assert not await store.seen("writer:questions:doc")
        await broker.publish_batch(body, topic=settings.topic(topics.QUESTIONS), headers=headers)
    assert handled == ["doc"] and dead == []
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and all("not consuming" in r.getMessage() for r in errors)
