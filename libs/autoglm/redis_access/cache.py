"""A Redis cache of protobuf messages that never fails a request.

A read that fails, times out or is refused by the breaker is a miss; a write is skipped; a value
that does not decode is a miss. Subclasses say what they hold and how keys are made
(``models.result_cache``, ``graph.subgraph_cache``).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import ClassVar, Generic, Self, TypeVar

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError, Message

from autoglm.redis_access.breaker import CircuitBreaker
from autoglm.redis_access.client import FAILURES, async_client, breaker_for
from autoglm.settings import Settings

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    errors: int = 0
    bypassed: int = 0


class ProtoCache(Generic[M]):
    message_type: ClassVar[type[Message]]
    what: ClassVar[str] = "value"  # for log lines

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        namespace: str,
        ttl_s: int,
        retry_after_s: float = 5.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._redis = client
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.breaker = breaker or CircuitBreaker(f"{self.what} cache", retry_after_s)
        self.stats = CacheStats()

    @classmethod
    def from_settings(cls, settings: Settings, kind: str, ttl_s: int) -> Self:
        """A cache under ``{topic prefix}{kind}`` on the configured Redis."""
        return cls(
            async_client(settings),
            namespace=f"{settings.topic_prefix}{kind}",
            ttl_s=ttl_s,
            breaker=breaker_for(settings),
        )

    def _available(self) -> bool:
        if self.breaker.allow():
            return True
        self.stats.bypassed += 1
        return False

    def _failed(self, action: str, exc: BaseException) -> None:
        self.stats.errors += 1
        self.breaker.failed(f"{self.what} cache {action}", exc)

    async def get(self, key: str) -> M | None:
        if not self._available():
            return None
        try:
            raw = await self._redis.get(key)
        except FAILURES as exc:
            self._failed("read", exc)
            return None
        self.breaker.succeeded()
        if raw is None:
            self.stats.misses += 1
            return None
        message = self.message_type()
        try:
            message.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
        except DecodeError as exc:
            log.warning(
                "corrupt cached %s ignored", self.what, extra={"key": key, "error": str(exc)}
            )
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return message  # type: ignore[return-value]

    async def put(self, key: str, message: M) -> None:
        if not self._available():
            return
        try:
            await self._redis.set(key, message.SerializeToString(deterministic=True), ex=self.ttl_s)
        except FAILURES as exc:
            self._failed("write", exc)
            return
        self.breaker.succeeded()
        self.stats.writes += 1

    async def close(self) -> None:
        # Closing the client of a dead server must not fail shutdown.
        with contextlib.suppress(*FAILURES):
            await self._redis.aclose()
