"""Merged lookups: concurrent callers share fetches and each still gets exactly its answers."""

from __future__ import annotations

import asyncio

import pytest

from autoglm.graph.coalesce import Coalescer, CoalescingGraphAccess
from autoglm.graph.retrieval import RetrievalCaps, SubgraphRetriever
from tests.retrieval_toys import TOY_KB, InMemoryGraph


class Recorder:
    """A fetch that squares numbers and remembers the batches it was given."""

    def __init__(self, *, fail_on: int | None = None, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.delay_s = delay_s

    async def __call__(self, requests: list[int]) -> list[int]:
        self.batches.append(list(requests))
        await asyncio.sleep(self.delay_s)
        if self.fail_on is not None and self.fail_on in requests:
            raise ValueError(f"bad request {self.fail_on}")
        return [r * r for r in requests]


async def test_concurrent_callers_share_one_fetch_and_get_their_own_results() -> None:
    fetch = Recorder()
    coalescer = Coalescer(fetch)
    results = await asyncio.gather(*(coalescer.load_many([n, n + 100]) for n in range(10)))
    assert results == [[n * n, (n + 100) ** 2] for n in range(10)]
    assert len(fetch.batches) == 1 and len(fetch.batches[0]) == 20


async def test_requests_arriving_during_a_fetch_go_together_in_the_next_one() -> None:
    fetch = Recorder(delay_s=0.02)
    coalescer = Coalescer(fetch, max_in_flight=1)
    first = asyncio.ensure_future(coalescer.load_many([1]))
    await asyncio.sleep(0.005)  # the first fetch is running now
    later = [asyncio.ensure_future(coalescer.load_many([n])) for n in range(2, 7)]
    assert await first == [1]
    assert [await f for f in later] == [[n * n] for n in range(2, 7)]
    assert fetch.batches == [[1], [2, 3, 4, 5, 6]]


async def test_max_batch_splits_large_demand() -> None:
    fetch = Recorder()
    coalescer = Coalescer(fetch, max_batch=4, max_in_flight=2)
    assert await coalescer.load_many(list(range(10))) == [n * n for n in range(10)]
    assert [len(b) for b in fetch.batches] == [4, 4, 2]


async def test_a_failing_fetch_fails_its_callers_and_later_fetches_still_run() -> None:
    coalescer = Coalescer(Recorder(fail_on=3))
    outcomes = await asyncio.gather(
        coalescer.load_many([3]), coalescer.load_many([4]), return_exceptions=True
    )
    assert all(isinstance(o, ValueError) for o in outcomes)  # they shared the failed fetch
    assert await coalescer.load_many([5]) == [25]


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    fetch = Recorder(delay_s=0.02)
    coalescer = Coalescer(fetch)
    doomed = asyncio.ensure_future(coalescer.load_many([1]))
    survivor = asyncio.ensure_future(coalescer.load_many([2]))
    await asyncio.sleep(0.005)
    doomed.cancel()
    assert await survivor == [4]
    with pytest.raises(asyncio.CancelledError):
        await doomed


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        Coalescer(Recorder(), max_batch=0)


async def test_coalesced_retrieval_equals_plain_retrieval_with_far_fewer_queries() -> None:
    """Twelve questions retrieved concurrently: the same subgraphs as one by one, while the
    graph is asked once per step of the beam instead of once per question and step."""
    anchors = [["Jaws"], ["Sorcerer"], ["Jurassic Park"], ["The French Connection"]] * 3
    caps = [RetrievalCaps(hops=1 + n % 3, max_nodes=200, max_edges=400) for n in range(12)]
    plain_graph = InMemoryGraph(TOY_KB)
    plain = SubgraphRetriever(plain_graph)
    expected = [await plain.retrieve(a, c) for a, c in zip(anchors, caps, strict=True)]

    merged_graph = InMemoryGraph(TOY_KB)
    merged = SubgraphRetriever(CoalescingGraphAccess(merged_graph))
    got = await asyncio.gather(*(merged.retrieve(a, c) for a, c in zip(anchors, caps, strict=True)))
    assert [g.SerializeToString(deterministic=True) for g in got] == [
        e.SerializeToString(deterministic=True) for e in expected
    ]
    assert len(plain_graph.calls) == sum(1 + 2 * c.hops for c in caps)  # 60
    assert len(merged_graph.calls) == 1 + 2 * max(c.hops for c in caps)  # 7
