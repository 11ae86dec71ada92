"""Redis is an accelerator: with the test stack's Redis blackholed (SIGSTOP: connections hang)
and then stopped (connections refused) while questions flow, the running services keep
answering every question; once Redis is back they use it again. Redis is restored whatever
happens (the integration lock keeps other test runs off the stack meanwhile)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator

import pytest

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.contracts import Question, Result, ResultStatus
from autoglm.redis_access import async_client
from autoglm.settings import PROJECT_ROOT, Settings
from autoglm.stack import LocalStack
from autoglm.stack.procs import is_alive, running_record

pytestmark = pytest.mark.e2e

QUESTIONS = [
    line.split("\t")[0]
    for line in (PROJECT_ROOT / "samples" / "questions.txt").read_text().splitlines()
    if line.strip()
]


class RedisServer:
    """The test stack's redis-server process: paused, stopped and started again."""

    def __init__(self, settings: Settings) -> None:
        self.stack = LocalStack(settings)
        record = running_record(self.stack.paths.pid_file("redis"))
        if record is None:
            pytest.fail(
                "this test stops and restarts the local test stack's redis-server; none runs "
                f"under {settings.stack_dir} (testcontainers or AUTOGLM_TEST_ENDPOINTS=env?)"
            )
        self.record = record

    @contextlib.contextmanager
    def blackholed(self) -> Iterator[None]:
        os.kill(self.record.pid, signal.SIGSTOP)  # the kernel still accepts connections
        try:
            yield
        finally:
            os.kill(self.record.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        os.kill(self.record.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while is_alive(self.record.process) and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            yield
        finally:
            self.restore()

    def restore(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.record.pid, signal.SIGCONT)
        self.stack.up()  # starts what is not running (Redis), probes the rest
        record = running_record(self.stack.paths.pid_file("redis"))
        assert record is not None
        self.record = record


async def _ask_while_flowing(settings: Settings, count: int, seconds: float) -> list[object]:
    """``count`` questions published evenly over ``seconds``; every reply."""
    questions = [
        Question(request_id=new_request_id(), text=QUESTIONS[n % len(QUESTIONS)], hops=1)
        for n in range(count)
    ]
    async with PipelineClient(settings) as client:
        client.expect(q.request_id for q in questions)
        for question in questions:
            await client.publish(topics.QUESTIONS, question, key=question.request_id)
            await asyncio.sleep(seconds / count)
        replies = dict(
            [item async for item in client.replies([q.request_id for q in questions], 90.0)]
        )
    return [replies[q.request_id] for q in questions]


def _all_answered(replies: list[object]) -> None:
    for reply in replies:
        assert isinstance(reply, Result), reply  # no dead letter, no timeout
        assert reply.status == ResultStatus.RESULT_STATUS_OK, reply.error


async def _marks(settings: Settings, request_ids: list[str]) -> int:
    client = async_client(settings)
    try:
        keys = [f"{settings.topic_prefix}parser:done:parser:questions:{r}" for r in request_ids]
        return sum(value is not None for value in await client.mget(keys))
    finally:
        await client.aclose()


async def test_answers_keep_coming_while_redis_hangs_and_while_it_is_down(
    stack_settings, sample_graph
):
    redis = RedisServer(stack_settings)
    try:
        _all_answered(await _ask_while_flowing(stack_settings, 6, 1.0))

        with redis.blackholed():
            started = time.monotonic()
            _all_answered(await _ask_while_flowing(stack_settings, 20, 8.0))
            hung = time.monotonic() - started

        with redis.stopped():
            started = time.monotonic()
            _all_answered(await _ask_while_flowing(stack_settings, 20, 8.0))
            down = time.monotonic() - started

        # Back: after the breaker's interval the services mark and cache in Redis again.
        deadline = time.monotonic() + 60
        while True:
            replies = await _ask_while_flowing(stack_settings, 5, 1.0)
            _all_answered(replies)
            if await _marks(stack_settings, [r.request_id for r in replies]) == 5:  # type: ignore[attr-defined]
                break
            assert time.monotonic() < deadline, "the services never used Redis again"
    finally:
        redis.restore()
    # Each phase published over 8 s; answering must not wait for Redis timeouts per message.
    assert hung < 40 and down < 40, (hung, down)
