"""The trainer's memory of results, so that feedback on a request id can become an example.

Unlike the caches, this one is needed: feedback without the result it refers to cannot be
learnt from. So Redis down is a ``TransientError`` (the message is retried with the runtime's
backoff, never dead-lettered), and while the breaker is open it is raised at once instead of
after a timeout per message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import redis.asyncio as aioredis

from autoglm.contracts import Result
from autoglm.errors import TransientError
from autoglm.redis_access.breaker import CircuitBreaker
from autoglm.redis_access.client import FAILURES, async_client, breaker_for
from autoglm.settings import Settings


class RedisResultMemory:
    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        ttl_s: int,
        *,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._redis = client
        self._namespace = namespace
        self._ttl_s = ttl_s
        self.breaker = breaker or CircuitBreaker(f"result memory {namespace}", 5.0)

    @classmethod
    def connect(cls, settings: Settings, namespace: str, ttl_s: int) -> RedisResultMemory:
        return cls(async_client(settings), namespace, ttl_s, breaker=breaker_for(settings))

    def _key(self, request_id: str) -> str:
        return f"{self._namespace}:result:{request_id}"

    async def remember(self, result: Result) -> None:
        await self.remember_many([result])

    async def remember_many(self, results: Sequence[Result]) -> None:
        """One round trip for a batch of results."""
        with self._redis_is_transient("result memory write"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for result in results:
                    pipe.set(
                        self._key(result.request_id), result.SerializeToString(), ex=self._ttl_s
                    )
                await pipe.execute()

    async def recall(self, request_id: str) -> Result | None:
        with self._redis_is_transient("result memory read"):
            raw = await self._redis.get(self._key(request_id))
        if raw is None:
            return None
        result = Result()
        result.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
        return result

    async def close(self) -> None:
        with contextlib.suppress(*FAILURES):
            await self._redis.aclose()

    @contextlib.contextmanager
    def _redis_is_transient(self, what: str) -> Iterator[None]:
        """Redis down is a transient error: the message is retried, not dead-lettered."""
        if not self.breaker.allow():
            raise TransientError(
                f"redis unavailable ({what}): circuit open after a failure", error_type="redis"
            )
        try:
            yield
        except FAILURES as exc:
            self.breaker.failed(what, exc)
            raise TransientError(f"redis unavailable: {exc}", error_type="redis") from exc
        self.breaker.succeeded()
