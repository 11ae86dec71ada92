"""Remembers which request ids a service has fully processed, so replays do no harm.

A key is marked only after the message's outputs were acknowledged by Kafka, so a crash between
the two re-processes the message (at-least-once) rather than losing it. Redis is an accelerator:
when it is down the service keeps working and may process a replay twice.
"""

from __future__ import annotations

import logging
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class IdempotencyStore(Protocol):
    async def seen(self, key: str) -> bool: ...

    async def mark(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryIdempotencyStore:
    """In-process store for unit tests and single-replica runs without Redis."""

    def __init__(self) -> None:
        self._keys: set[str] = set()

    async def seen(self, key: str) -> bool:
        return key in self._keys

    async def mark(self, key: str) -> None:
        self._keys.add(key)

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
        try:
            await self._redis.set(self._key(key), b"1", ex=self._ttl_s)
        except RedisError as exc:
            log.warning("idempotency mark skipped: redis unavailable", extra={"error": str(exc)})

    async def close(self) -> None:
        await self._redis.aclose()
