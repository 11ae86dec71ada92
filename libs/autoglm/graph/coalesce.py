"""Merging concurrent lookups into one round trip (the DataLoader pattern).

The graph-builder grounds a batch of questions concurrently, and every question asks Neo4j the
same kinds of thing (its n-grams' entities, its anchors, its frontiers' relation counts, the
chosen expansions) at the same moments. One query per question per step made Neo4j, and the
driver's per-query cost in Python, the pipeline's largest CPU consumers; one query per batch
and step costs about the same as one query per question did.

A :class:`Coalescer` wraps a ``fetch(requests) -> results`` function (one result per request,
in order). The first request starts a fetch on the next event-loop turn (so everything asked in
the same turn goes together); requests arriving while ``max_in_flight`` fetches run wait and go
together in the next one. Under load batches grow to whatever arrives during one round trip,
and a lone caller waits for nothing but its own query.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Generic, TypeVar

from autoglm.graph.retrieval import (
    EntityRow,
    ExpandRequest,
    FrontierRequest,
    GraphAccess,
    RelationCount,
    TargetRow,
)

Req = TypeVar("Req")
Res = TypeVar("Res")


class Coalescer(Generic[Req, Res]):
    """Runs the requests of concurrent callers through ``fetch`` in merged batches.

    ``fetch`` must return one result per request, in order. A failing fetch fails every
    caller whose requests were in it (the graph-builder then retries those messages).
    """

    def __init__(
        self,
        fetch: Callable[[list[Req]], Awaitable[Sequence[Res]]],
        *,
        max_batch: int = 2048,
        max_in_flight: int = 1,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self.fetch = fetch
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.fetches = 0  # how many fetches ran (tests and benchmarks read it)
        self._queue: list[tuple[Req, asyncio.Future[Res]]] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def load_many(self, requests: Sequence[Req]) -> list[Res]:
        """The results of ``requests``, fetched together with other callers' requests."""
        if not requests:
            return []
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Res]] = [loop.create_future() for _ in requests]
        self._queue.extend(zip(requests, futures, strict=True))
        self._schedule(loop)
        return list(await asyncio.gather(*futures))

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._queue and not self._scheduled and self._in_flight < self.max_in_flight:
            self._scheduled = True
            loop.call_soon(self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        while self._queue and self._in_flight < self.max_in_flight:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            batch = [(request, future) for request, future in batch if not future.done()]
            if not batch:
                continue
            self._in_flight += 1
            task = loop.create_task(self._run(batch, loop))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(
        self, batch: list[tuple[Req, asyncio.Future[Res]]], loop: asyncio.AbstractEventLoop
    ) -> None:
        try:
            self.fetches += 1
            results = list(await self.fetch([request for request, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"fetch returned {len(results)} results for {len(batch)}")
        except Exception as exc:  # handed to every caller of the batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            self._schedule(loop)


class CoalescingGraphAccess:
    """A ``GraphAccess`` whose concurrent callers share queries (see the module docstring)."""

    def __init__(self, inner: GraphAccess, *, max_batch: int = 2048) -> None:
        self.inner = inner
        self._entities: Coalescer[str, EntityRow | None] = Coalescer(
            self._fetch_entities, max_batch=max_batch
        )
        self._counts: Coalescer[FrontierRequest, list[RelationCount]] = Coalescer(
            self._fetch_counts, max_batch=max_batch
        )
        self._expand: Coalescer[ExpandRequest, list[TargetRow]] = Coalescer(
            self.inner.expand, max_batch=max_batch
        )

    @property
    def fetches(self) -> int:
        return self._entities.fetches + self._counts.fetches + self._expand.fetches

    async def graph_version(self) -> int:
        return await self.inner.graph_version()

    async def entities(self, keys: Sequence[str]) -> list[EntityRow]:
        return [row for row in await self._entities.load_many(list(keys)) if row is not None]

    async def relation_counts(self, requests: Sequence[FrontierRequest]) -> list[RelationCount]:
        per_request = await self._counts.load_many(list(requests))
        return [replace(c, item=i) for i, counts in enumerate(per_request) for c in counts]

    async def expand(self, requests: Sequence[ExpandRequest]) -> list[list[TargetRow]]:
        return await self._expand.load_many(list(requests))

    async def _fetch_entities(self, keys: list[str]) -> list[EntityRow | None]:
        rows = {row.key: row for row in await self.inner.entities(sorted(set(keys)))}
        return [rows.get(key) for key in keys]

    async def _fetch_counts(self, requests: list[FrontierRequest]) -> list[list[RelationCount]]:
        out: list[list[RelationCount]] = [[] for _ in requests]
        for count in await self.inner.relation_counts(requests):
            out[count.item].append(replace(count, item=0))
        return out
