"""trainer service: results -> pseudo-labelled examples; feedback -> gold examples."""

from __future__ import annotations

import redis.asyncio as aioredis
from pydantic import Field
from redis.exceptions import RedisError

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore
from autoglm.bus.service import HandlerContext, Outgoing, ServiceRuntime
from autoglm.contracts import Feedback, Result
from autoglm.errors import TransientError
from autoglm.settings import Settings
from autoglm.training.examples import feedback_example, pseudo_label

SERVICE = "trainer"


class TrainerSettings(Settings):
    result_memory_ttl_s: int = Field(
        30 * 24 * 3600, description="How long results are kept for feedback to refer to."
    )


class RedisResultMemory:
    def __init__(self, client: aioredis.Redis, namespace: str, ttl_s: int) -> None:
        self._redis = client
        self._namespace = namespace
        self._ttl_s = ttl_s

    async def remember(self, result: Result) -> None:
        try:
            await self._redis.set(
                f"{self._namespace}:result:{result.request_id}",
                result.SerializeToString(),
                ex=self._ttl_s,
            )
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

    @runtime.consume(topics.RESULTS, Result, required=("request_id",))
    async def on_result(result: Result, ctx: HandlerContext) -> list[Outgoing]:
        await memory.remember(result)
        example = pseudo_label(result, settings.confidence_threshold)
        return (
            [Outgoing(topics.TRAINING_EXAMPLES, example, key=example.request_id)] if example else []
        )

    @runtime.consume(topics.FEEDBACK, Feedback, required=("request_id", "target_request_id"))
    async def on_feedback(feedback: Feedback, ctx: HandlerContext) -> list[Outgoing]:
        example = feedback_example(feedback, await memory.recall(feedback.target_request_id))
        return [Outgoing(topics.TRAINING_EXAMPLES, example, key=example.request_id)]

    return runtime
