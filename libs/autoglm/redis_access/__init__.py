"""Redis access, in one place: one client factory, one circuit breaker, one timeout policy.

Redis is an accelerator here: it remembers which request ids were processed (``idempotency``),
and caches answers, subgraphs and question encodings (``cache``; the encoding cache is
``autoglm.models.encoding_cache`` on the synchronous client). When it is down or does not
answer, every service keeps answering: the idempotency store says "not seen" (the message is
processed, at worst twice), a cache read is a miss and a write is skipped. Only the trainer's
result memory, which feedback needs, turns Redis down into a transient error (its message is
retried, never dead-lettered).

Why one home: before, four folders held five adapters with two copies of one breaker, and the
idempotency store used redis-py's defaults (5 s timeouts and retries, twice per batch: a
blackholed Redis cost every batch tens of seconds). Now every client comes from
:func:`async_client` / :func:`sync_client` with short timeouts and no retries of its own, and
every user goes through the process's :class:`CircuitBreaker` for that server: after one
failure Redis is bypassed for ``redis_breaker_open_s``, then one call probes it, so a dead
Redis costs one timeout per interval, not one per request.
"""

from autoglm.redis_access.breaker import CircuitBreaker
from autoglm.redis_access.cache import CacheStats, ProtoCache
from autoglm.redis_access.client import (
    FAILURES,
    async_client,
    breaker_for,
    client_options,
    sync_client,
)
from autoglm.redis_access.idempotency import RedisIdempotencyStore
from autoglm.redis_access.result_memory import RedisResultMemory

__all__ = [
    "FAILURES",
    "CacheStats",
    "CircuitBreaker",
    "ProtoCache",
    "RedisIdempotencyStore",
    "RedisResultMemory",
    "async_client",
    "breaker_for",
    "client_options",
    "sync_client",
]
