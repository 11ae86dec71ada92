"""The idempotency store on Redis: which request ids a service finished, and their content.

Each mark is ``{namespace}:done:{key}`` holding the digest of the content that was processed
(``bus.envelope.content_digest``; ``1`` from before digests were kept, read as "unknown"), with
the TTL ``idempotency_ttl_s``. Redis being down never stops or fails a message: through the
breaker, a lookup that cannot be made says "not seen" (the message is processed, a replay at
worst twice) and a mark that cannot be written is skipped, each with a warning.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis

from autoglm.redis_access.breaker import CircuitBreaker
from autoglm.redis_access.client import FAILURES, async_client, breaker_for
from autoglm.settings import Settings

log = logging.getLogger(__name__)

_UNKNOWN = b"1"


class RedisIdempotencyStore:
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
        self.breaker = breaker or CircuitBreaker(f"idempotency {namespace}", 5.0)

    @classmethod
    def connect(cls, settings: Settings, service: str) -> RedisIdempotencyStore:
        return cls(
            async_client(settings),
            namespace=f"{settings.topic_prefix}{service}",
            ttl_s=settings.idempotency_ttl_s,
            breaker=breaker_for(settings),
        )

    def _key(self, key: str) -> str:
        return f"{self._namespace}:done:{key}"

    async def seen(self, key: str) -> bool:
        return (await self.seen_many([key]))[0]

    async def mark(self, key: str) -> None:
        await self.mark_many([key])

    async def seen_many(self, keys: Sequence[str]) -> list[bool]:
        return [digest is not None for digest in await self.digests_many(keys)]

    async def digests_many(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        if not self.breaker.allow():
            return [None] * len(keys)
        try:
            values = await self._redis.mget([self._key(key) for key in keys])
        except FAILURES as exc:
            self.breaker.failed("idempotency check (messages are processed)", exc)
            return [None] * len(keys)
        self.breaker.succeeded()
        return [_digest(value) for value in values]

    async def mark_many(self, keys: Sequence[str] | Mapping[str, str]) -> None:
        """Mark ``keys`` done; a mapping gives the content digest of each."""
        if not keys:
            return
        digests = keys if isinstance(keys, Mapping) else dict.fromkeys(keys, "")
        if not self.breaker.allow():
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, digest in digests.items():
                    pipe.set(self._key(key), digest.encode() or _UNKNOWN, ex=self._ttl_s)
                await pipe.execute()
        except FAILURES as exc:
            self.breaker.failed("idempotency mark (skipped)", exc)
            return
        self.breaker.succeeded()

    async def close(self) -> None:
        with contextlib.suppress(*FAILURES):
            await self._redis.aclose()


def _digest(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    raw = value if isinstance(value, bytes) else value.encode()
    return "" if raw == _UNKNOWN else raw.decode("ascii", "replace")
