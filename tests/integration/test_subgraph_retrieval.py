"""Question-guided retrieval and its Redis cache against the real Neo4j and Redis."""

from __future__ import annotations

import logging
import socket

import pytest
import redis.asyncio as aioredis

from autoglm.contracts import (
    Mention,
    ParsedDocument,
    ParsedQuestion,
    Question,
    ResultStatus,
    Triple,
)
from autoglm.graph.path_scoring import RelationPathScorer, scoring_text
from autoglm.graph.questions import QuestionGrounder
from autoglm.graph.retrieval import RetrievalCaps, SubgraphRetriever
from autoglm.graph.subgraph_cache import SubgraphCache
from tests.retrieval_toys import FILMS, TOY_KB, InMemoryGraph, bag_of_words_embed

pytestmark = pytest.mark.integration

DIRECTOR_QUESTION = "which films were directed by the director of [Jaws]"


def _document(doc_id: str, triples: list[tuple[str, str, str]]) -> ParsedDocument:
    return ParsedDocument(
        request_id=doc_id,
        document_id=doc_id,
        triples=[Triple(subject=s, predicate=p, object=o, confidence=1.0) for s, p, o in triples],
    )


@pytest.fixture
async def toy_store(graph_store):
    await graph_store.write_document(_document("toy-kb", TOY_KB))
    return graph_store


@pytest.fixture
def scorer() -> RelationPathScorer:
    return RelationPathScorer(bag_of_words_embed, name="bag-of-words")


@pytest.fixture
async def cache(stack_settings, unique):
    client = aioredis.Redis.from_url(stack_settings.redis_url)
    cache = SubgraphCache(client, namespace=f"test-{unique}:subgraph", ttl_s=60)
    yield cache
    await cache.close()


def _edges(subgraph) -> set[tuple[str, str, str]]:
    return {
        (subgraph.nodes[s].key, subgraph.relation_types[r], subgraph.nodes[t].key)
        for s, t, r in zip(
            subgraph.edge_source, subgraph.edge_target, subgraph.edge_relation, strict=True
        )
    }


@pytest.mark.parametrize(
    ("question", "anchors", "hops"),
    [
        (DIRECTOR_QUESTION, ["Jaws"], 2),
        ("what genres are the films that share actors with [Jaws]", ["Jaws"], 3),
        ("who acted in [Jaws] and [Sorcerer]", ["Jaws", "Sorcerer"], 1),
        (None, ["Jaws"], 2),
    ],
)
async def test_neo4j_retrieval_equals_the_reference(toy_store, scorer, question, anchors, hops):
    """The Cypher queries and the in-memory reference make the same decisions, byte for byte."""
    caps = RetrievalCaps(hops=hops, max_nodes=60, max_edges=200)
    text = scoring_text(question, anchors) if question else None
    from_neo4j = await SubgraphRetriever(toy_store, scorer=scorer).retrieve(anchors, caps, text)
    reference = await SubgraphRetriever(InMemoryGraph(TOY_KB), scorer=scorer).retrieve(
        anchors, caps, text
    )
    assert from_neo4j.SerializeToString(deterministic=True) == reference.SerializeToString(
        deterministic=True
    )
    assert len(from_neo4j.nodes) > len(anchors)


async def test_hub_is_pruned_and_edges_keep_their_direction(toy_store, scorer):
    retriever = SubgraphRetriever(toy_store, scorer=scorer)
    caps = RetrievalCaps(hops=2, max_nodes=100, max_edges=400)
    subgraph = await retriever.retrieve(["Jaws"], caps, scoring_text(DIRECTOR_QUESTION, ["Jaws"]))
    keys = {n.key for n in subgraph.nodes}
    assert "Jurassic Park" in keys and len(keys) < 20
    assert not any(k.startswith("Thriller ") for k in keys) and subgraph.truncated
    assert ("Jurassic Park", "directed_by", "Steven Spielberg") in _edges(subgraph)
    assert _edges(subgraph) <= set(FILMS)
    # the same question again: the same message
    again = await retriever.retrieve(["Jaws"], caps, scoring_text(DIRECTOR_QUESTION, ["Jaws"]))
    assert again == subgraph


async def test_tight_caps_are_respected_and_reported(toy_store, scorer):
    retriever = SubgraphRetriever(toy_store, scorer=scorer)
    for max_nodes, max_edges in ((4, 100), (100, 4)):
        subgraph = await retriever.retrieve(
            ["Jaws"], RetrievalCaps(3, max_nodes, max_edges), "what genres did jaws actors star"
        )
        assert len(subgraph.nodes) <= max_nodes and len(subgraph.edge_source) <= max_edges
        assert subgraph.truncated


async def test_cache_hits_and_graph_version_invalidates(toy_store, scorer, cache):
    retriever = SubgraphRetriever(toy_store, scorer=scorer, cache=cache)
    caps = RetrievalCaps(hops=2, max_nodes=100, max_edges=400)
    text = scoring_text(DIRECTOR_QUESTION, ["Jaws"])
    cold = await retriever.retrieve(["Jaws"], caps, text)
    assert (cache.stats.misses, cache.stats.hits, cache.stats.writes) == (1, 0, 1)
    warm = await retriever.retrieve(["Jaws"], caps, text)
    assert warm == cold and cache.stats.hits == 1
    # Another question, other caps or other k: other entries.
    await retriever.retrieve(["Jaws"], caps, scoring_text("who starred in [Jaws]", ["Jaws"]))
    await retriever.retrieve(["Jaws"], RetrievalCaps(2, 99, 400), text)
    await retriever.retrieve(["Jaws"], RetrievalCaps(1, 100, 400), text)
    assert cache.stats.misses == 4 and cache.stats.hits == 1
    # A write bumps the graph version: the cached subgraph is not served any more.
    version = await toy_store.graph_version()
    await toy_store.write_document(
        _document("new-film", [("Munich", "directed_by", "Steven Spielberg")])
    )
    assert await toy_store.graph_version() > version
    fresh = await retriever.retrieve(["Jaws"], caps, text)
    assert cache.stats.misses == 5
    assert "Munich" in {n.key for n in fresh.nodes} - {n.key for n in cold.nodes}
    # What is stored is the serialised message, under the namespace and graph version.
    keys = [k async for k in cache._redis.scan_iter(match=f"{cache.namespace}:*")]
    assert len(keys) == 5
    assert sum(k.decode().startswith(f"{cache.namespace}:g{version}:") for k in keys) == 4


async def test_redis_down_falls_back_to_neo4j(toy_store, scorer, caplog):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    dead = SubgraphCache(client, namespace="down", ttl_s=60, retry_after_s=60)
    retriever = SubgraphRetriever(toy_store, scorer=scorer, cache=dead)
    caps = RetrievalCaps(hops=2, max_nodes=100, max_edges=400)
    text = scoring_text(DIRECTOR_QUESTION, ["Jaws"])
    with caplog.at_level(logging.WARNING, logger="autoglm.graph.subgraph_cache"):
        first = await retriever.retrieve(["Jaws"], caps, text)
        second = await retriever.retrieve(["Jaws"], caps, text)
    assert "Jurassic Park" in {n.key for n in first.nodes} and second == first
    assert dead.stats.errors == 1 and dead.stats.bypassed >= 2  # one timeout, then bypassed
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    await dead.close()


async def test_grounder_retrieves_with_the_encoder_and_the_cache(
    toy_store, stack_settings, text_encoder, unique
):
    settings = stack_settings.model_copy(update={"topic_prefix": f"test-{unique}."})
    grounder = QuestionGrounder(toy_store, settings, scorer=RelationPathScorer(text_encoder))
    await grounder.start()
    try:
        assert grounder.retriever.cache is not None
        text = "who directed the films that [Gene Hackman] starred in"
        question = ParsedQuestion(
            request_id=unique,
            question=Question(request_id=unique, text=text, hops=2),
            normalized_text=text.replace("[", "").replace("]", ""),
            mentions=[Mention(text="Gene Hackman", key="Gene Hackman", source="bracket")],
        )
        first = await grounder.ground(question)
        assert first.status == ResultStatus.RESULT_STATUS_OK, first.error
        assert ("The French Connection", "directed_by", "William Friedkin") in _edges(
            first.subgraph
        )
        second = await grounder.ground(question)
        assert second.subgraph == first.subgraph
        assert grounder.retriever.cache.stats.hits == 1
    finally:
        await grounder.close()
    assert grounder.retriever.cache is None
