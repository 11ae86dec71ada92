"""Remembers which request ids a service has fully processed, so replays do no harm.

A key is marked only after the message's outputs were acknowledged by Kafka, so a crash between
the two re-processes the message (at-least-once) rather than losing it. With the mark the store
keeps a digest of the content that was processed, so that a request id reused for other content
is reported (``bus.delivery``) instead of silently skipped. Redis is an accelerator: when it is
down the service keeps working and may process a replay twice (the Redis store lives with the
other Redis adapters, ``autoglm.redis_access``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from autoglm.redis_access.idempotency import RedisIdempotencyStore

__all__ = ["IdempotencyStore", "MemoryIdempotencyStore", "RedisIdempotencyStore"]


class IdempotencyStore(Protocol):
    async def seen(self, key: str) -> bool: ...

    async def mark(self, key: str) -> None: ...

    async def seen_many(self, keys: Sequence[str]) -> list[bool]:
        """``seen`` for each key, in one round trip where the store allows."""
        ...

    async def digests_many(self, keys: Sequence[str]) -> list[str | None]:
        """The content digest stored with each key: ``""`` when it was marked without one,
        None when it was never marked (or the store cannot tell now)."""
        ...

    async def mark_many(self, keys: Sequence[str] | Mapping[str, str]) -> None:
        """Mark ``keys`` done; a mapping gives the content digest of each."""
        ...

    async def close(self) -> None: ...


class MemoryIdempotencyStore:
    """In-process store for unit tests and single-replica runs without Redis."""

    def __init__(self) -> None:
        self._digests: dict[str, str] = {}

    async def seen(self, key: str) -> bool:
        return key in self._digests

    async def mark(self, key: str) -> None:
        await self.mark_many([key])

    async def seen_many(self, keys: Sequence[str]) -> list[bool]:
        return [key in self._digests for key in keys]

    async def digests_many(self, keys: Sequence[str]) -> list[str | None]:
        return [self._digests.get(key) for key in keys]

    async def mark_many(self, keys: Sequence[str] | Mapping[str, str]) -> None:
        self._digests.update(keys if isinstance(keys, Mapping) else dict.fromkeys(keys, ""))

    async def close(self) -> None:
        self._digests.clear()
