"""trainer service: results -> pseudo-labelled examples; feedback -> gold examples."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from pydantic import Field
from redis.exceptions import RedisError

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore
from autoglm.bus.service import HandlerContext, Incoming, ItemResult, Outgoing, ServiceRuntime
from autoglm.contracts import Feedback, Result
from autoglm.errors import TransientError
from autoglm.settings import Settings
from autoglm.training.examples import feedback_example, pseudo_label

SERVICE = "trainer"


class TrainerSettings(Settings):
    result_memory_ttl_s: int = Field(
        30 * 24 * 3600, description="How long results are kept for feedback to refer to."
    )
    result_batch_size: int = Field(
        256, ge=1, description="Most results one poll brings (remembered in one round trip)."
    )


class RedisResultMemory:
    def __init__(self, client: aioredis.Redis, namespace: str, ttl_s: int) -> None:
        self._redis = client
        self._namespace = namespace
        self._ttl_s = ttl_s

    async def remember(self, result: Result) -> None:
        await self.remember_many([result])

    async def remember_many(self, results: Sequence[Result]) -> None:
        """One round trip for a batch of results."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for result in results:
                    pipe.set(
                        f"{self._namespace}:result:{result.request_id}",
                        result.SerializeToString(),
                        ex=self._ttl_s,
                    )
                await pipe.execute()
        except RedisError as exc:
            raise TransientError(f"redis unavailable: {exc}", error_type="redis") from exc

    async def recall(self, request_id: str) -> Result | None:
        try:
            raw = await self._redis.get(f"{self._namespace}:result:{request_id}")
        except RedisError as exc:
            raise TransientError(f"redis unavailable: {exc}", error_type="redis") from exc
        if raw is None:
            return None
        result = Result()
        result.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
        return result


def build(
    settings: TrainerSettings | None = None, *, idempotency: IdempotencyStore | None = None
) -> ServiceRuntime:
    settings = settings or TrainerSettings()
    runtime = ServiceRuntime(SERVICE, settings, idempotency=idempotency)
    client = aioredis.Redis.from_url(settings.redis_url)
    memory = RedisResultMemory(
        client, f"{settings.topic_prefix}trainer", settings.result_memory_ttl_s
    )
    runtime.on_shutdown(client.aclose)

    @runtime.consume_batch(
        topics.RESULTS, Result, max_records=settings.result_batch_size, required=("request_id",)
    )
    async def on_results(items: Sequence[Incoming[Result]]) -> list[ItemResult]:
        await memory.remember_many([item.message for item in items])
        examples = [pseudo_label(item.message, settings.confidence_threshold) for item in items]
        return [
            [Outgoing(topics.TRAINING_EXAMPLES, example, key=example.request_id)] if example else []
            for example in examples
        ]

    @runtime.consume(topics.FEEDBACK, Feedback, required=("request_id", "target_request_id"))
    async def on_feedback(feedback: Feedback, ctx: HandlerContext) -> list[Outgoing]:
        example = feedback_example(feedback, await memory.recall(feedback.target_request_id))
        return [Outgoing(topics.TRAINING_EXAMPLES, example, key=example.request_id)]

    return runtime
