"""Remembers which request ids a service has fully processed, so replays do no harm.

A key is marked only after the message's outputs were acknowledged by Kafka, so a crash between
the two re-processes the message (at-least-once) rather than losing it. Redis is an accelerator:
when it is down the service keeps working and may process a replay twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class IdempotencyStore(Protocol):
    async def seen(self, key: str) -> bool: ...

    async def mark(self, key: str) -> None: ...

    async def seen_many(self, keys: Sequence[str]) -> list[bool]:
        """``seen`` for each key, in one round trip where the store allows."""
        ...

    async def mark_many(self, keys: Sequence[str]) -> None: ...

    async def close(self) -> None: ...


class MemoryIdempotencyStore:
    """In-process store for unit tests and single-replica runs without Redis."""

    def __init__(self) -> None:
        self._keys: set[str] = set()

    async def seen(self, key: str) -> bool:
        return key in self._keys

    async def mark(self, key: str) -> None:
        self._keys.add(key)

    async def seen_many(self, keys: Sequence[str]) -> list[bool]:
        return [key in self._keys for key in keys]

    async def mark_many(self, keys: Sequence[str]) -> None:
        self._keys.update(keys)

    async def close(self) -> None:
        self._keys.clear()


class RedisIdempotencyStore:
    def __init__(self, client: aioredis.Redis, namespace: str, ttl_s: int) -> None:
        self._redis = client
        self._namespace = namespace
        self._ttl_s = ttl_s

    def _key(self, key: str) -> str:
        return f"{self._namespace}:done:{key}"

    async def seen(self, key: str) -> bool:
        try:
            return bool(await self._redis.exists(self._key(key)))
        except RedisError as exc:
            log.warning("idempotency check skipped: redis unavailable", extra={"error": str(exc)})
            return False

    async def mark(self, key: str) -> None:
        await self.mark_many([key])

    async def seen_many(self, keys: Sequence[str]) -> list[bool]:
        if not keys:
            return []
        try:
            values = await self._redis.mget([self._key(key) for key in keys])
        except RedisError as exc:
            log.warning("idempotency check skipped: redis unavailable", extra={"error": str(exc)})
            return [False] * len(keys)
        return [value is not None for value in values]

    async def mark_many(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(self._key(key), b"1", ex=self._ttl_s)
                await pipe.execute()
        except RedisError as exc:
            log.warning("idempotency mark skipped: redis unavailable", extra={"error": str(exc)})

    async def close(self) -> None:
        await self._redis.aclose()
