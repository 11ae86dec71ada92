"""Redis cache of retrieved subgraphs (an accelerator: Redis down never fails a request).

Key: ``{namespace}:g{graph version}:{sha256}`` of everything the retrieved subgraph depends on:

- the anchors, sorted (retrieval sorts them too, so their order cannot change the result);
- k and the node and edge caps;
- the graph version, bumped by every write that changes the graph, so a new fact invalidates
  every cached subgraph at once (old entries are never read again and expire with the TTL);
- the retriever's fingerprint: algorithm version, encoder and scoring settings, beam settings;
- the *scoring text*: the question lower-cased with brackets and anchor mentions removed
  (``path_scoring.scoring_text``), which is exactly what the question-guided pruning reads.

Why the scoring text and not the relation plan the beam chose: the plan is only known after the
beam has run (it interleaves scoring with one aggregation query per hop), so a plan-keyed entry
could not be looked up before doing the work it saves. Keying on the text keeps a hit at one
Redis round trip; rephrasings of a question miss, which only costs a normal retrieval.

Value: the serialised ``Subgraph`` message. After an error the cache is bypassed for
``retry_after_s`` so that a dead Redis costs one timeout, not one per request; a warning is
logged when it goes down and an info line when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from redis.exceptions import RedisError

from autoglm.contracts import Subgraph
from autoglm.settings import Settings

log = logging.getLogger(__name__)

_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    errors: int = 0
    bypassed: int = 0


class SubgraphCache:
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
    def connect(cls, settings: Settings) -> SubgraphCache:
        client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.subgraph_cache_timeout_s,
            socket_connect_timeout=settings.subgraph_cache_timeout_s,
        )
        return cls(
            client,
            namespace=f"{settings.topic_prefix}subgraph",
            ttl_s=settings.subgraph_cache_ttl_s,
            retry_after_s=settings.subgraph_cache_retry_after_s,
        )

    def key(
        self,
        anchors: Sequence[str],
        hops: int,
        max_nodes: int,
        max_edges: int,
        graph_version: int,
        fingerprint: str,
        text: str,
    ) -> str:
        parts = {
            "anchors": sorted(anchors),
            "hops": hops,
            "max_nodes": max_nodes,
            "max_edges": max_edges,
            "retriever": fingerprint,
            "text": text,
        }
        digest = hashlib.sha256(
            json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
        return f"{self.namespace}:g{graph_version}:{digest}"

    def _available(self) -> bool:
        if time.monotonic() < self._down_until:
            self.stats.bypassed += 1
            return False
        return True

    def _failed(self, action: str, exc: BaseException) -> None:
        self.stats.errors += 1
        if not self._down_until:
            log.warning(
                "subgraph cache %s failed, retrieving from Neo4j: %s",
                action,
                exc,
                extra={"error": str(exc), "retry_after_s": self.retry_after_s},
            )
        self._down_until = time.monotonic() + self.retry_after_s

    def _succeeded(self) -> None:
        if self._down_until:
            log.info("subgraph cache reachable again")
            self._down_until = 0.0

    async def get(self, key: str) -> Subgraph | None:
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
        subgraph = Subgraph()
        try:
            subgraph.ParseFromString(raw if isinstance(raw, bytes) else raw.encode())
        except DecodeError as exc:
            log.warning("corrupt cached subgraph ignored", extra={"key": key, "error": str(exc)})
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return subgraph

    async def put(self, key: str, subgraph: Subgraph) -> None:
        if not self._available():
            return
        try:
            await self._redis.set(
                key, subgraph.SerializeToString(deterministic=True), ex=self.ttl_s
            )
        except _FAILURES as exc:
            self._failed("write", exc)
            return
        self._succeeded()
        self.stats.writes += 1

    async def close(self) -> None:
        # Closing the client of a dead server must not fail shutdown.
        with contextlib.suppress(*_FAILURES):
            await self._redis.aclose()
