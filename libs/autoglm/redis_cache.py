"""Redis as an accelerator: a cache of protobuf messages that never fails a request.

After an error the cache is bypassed for ``retry_after_s``, so a dead Redis costs one timeout,
not one per request; a warning is logged when it goes down and an info line when it is back.
A value that does not decode is a miss. Subclasses say what they hold and how keys are made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError, Message
from redis.exceptions import RedisError

from autoglm.settings import Settings

log = logging.getLogger(__name__)

_FAILURES = (RedisError, OSError, asyncio.TimeoutError)

M = TypeVar("M", bound=Message)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    errors: int = 0
    bypassed: int = 0


def cache_client_options(settings: Settings) -> dict[str, Any]:
    """Short timeouts: a slow Redis must cost a request little, the caches are optional."""
    return {
        "socket_timeout": settings.subgraph_cache_timeout_s,
        "socket_connect_timeout": settings.subgraph_cache_timeout_s,
    }


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
    ) -> None:
        self._redis = client
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.retry_after_s = retry_after_s
        self.stats = CacheStats()
        self._down_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, kind: str, ttl_s: int) -> Self:
        """A cache under ``{topic prefix}{kind}`` on the configured Redis."""
        client = aioredis.Redis.from_url(settings.redis_url, **cache_client_options(settings))
        return cls(
            client,
            namespace=f"{settings.topic_prefix}{kind}",
            ttl_s=ttl_s,
            retry_after_s=settings.subgraph_cache_retry_after_s,
        )

    def _available(self) -> bool:
        if time.monotonic() < self._down_until:
            self.stats.bypassed += 1
            return False
        return True

    def _failed(self, action: str, exc: BaseException) -> None:
        self.stats.errors += 1
        if not self._down_until:
            log.warning(
                "%s cache %s failed, working without it: %s",
                self.what,
                action,
                exc,
                extra={"error": str(exc), "retry_after_s": self.retry_after_s},
            )
        self._down_until = time.monotonic() + self.retry_after_s

    def _succeeded(self) -> None:
        if self._down_until:
            log.info("%s cache reachable again", self.what)
            self._down_until = 0.0

    async def get(self, key: str) -> M | None:
        if not self._available():
            return None
        try:
            raw = await self._redis.get(key)
        except _FAILURES as exc:
            self._failed("read", exc)
            return None
        self._succeeded()
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
        except _FAILURES as exc:
            self._failed("write", exc)
            return
        self._succeeded()
        self.stats.writes += 1

    async def close(self) -> None:
        # Closing the client of a dead server must not fail shutdown.
        with contextlib.suppress(*_FAILURES):
            await self._redis.aclose()
