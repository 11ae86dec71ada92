"""Training samples from the real MetaQA KB, through the graph-builder's retrieval code."""

from __future__ import annotations

import pytest

from autoglm.graph.memory import InMemoryGraph
from autoglm.graph.path_scoring import RelationPathScorer
from autoglm.graph.retrieval import SubgraphRetriever
from autoglm.training.metaqa import KnowledgeBase, parse_qtype, read_qa
from autoglm.training.samples import (
    SampleCache,
    SampleCaps,
    answer_recall,
    cached_samples,
    model_question,
    retrieve_samples,
)
from tests.unit.test_metaqa_data import DATA

CAPS = SampleCaps(max_nodes=2000, max_edges=8000)


@pytest.fixture(scope="module")
def kb_graph() -> InMemoryGraph:
    return InMemoryGraph.from_kb_file(DATA / "kb.txt")


@pytest.fixture(scope="module")
def retriever(kb_graph: InMemoryGraph, text_encoder) -> SubgraphRetriever:
    return SubgraphRetriever(kb_graph, scorer=RelationPathScorer(text_encoder))


def test_kb_in_memory_has_every_entity_and_triple(kb_graph: InMemoryGraph):
    lines = {line for line in (DATA / "kb.txt").read_text().splitlines() if line.strip()}
    names = {part for line in lines for part in (line.split("|")[0], line.split("|")[2])}
    assert kb_graph.triple_count == len(lines) == 133_582
    assert len(kb_graph.names) == len(names)


def test_one_hop_neighbourhood_matches_the_file(kb_graph: InMemoryGraph):
    film = "Cast Away"
    expected = {
        (r, o)
        for s, r, o in (ln.split("|") for ln in (DATA / "kb.txt").read_text().splitlines())
        if s == film
    }
    found = {(r, o) for r, forward, o in kb_graph.incident[film] if forward}
    assert found == expected and expected


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_samples_hold_the_gold_answers_and_use_the_text_inference_sees(
    retriever: SubgraphRetriever, hops: int, tmp_path
):
    kb = KnowledgeBase.from_file(DATA / "kb.txt")
    examples = read_qa(DATA / f"{hops}hop_dev.txt", DATA / f"{hops}hop_dev_qtype.txt", hops)[:12]
    samples = retrieve_samples(retriever, examples, CAPS, "test", progress=False)
    assert answer_recall(samples) == 1.0
    for example, sample in zip(examples, samples, strict=True):
        assert "[" not in sample.question and sample.question == model_question(example)
        assert sample.hops == hops
        anchor = sample.subgraph.nodes[sample.subgraph.anchor_indices[0]]
        assert anchor.key == example.topic
        # The gold answers are what the question type's relation chain gives in the KB.
        assert kb.follow(example.topic, parse_qtype(example.qtype)) == set(example.answers)
        assert len(sample.subgraph.nodes) <= CAPS.max_nodes

    # Cached on disk: the second call reads the file instead of retrieving again.
    cache = SampleCache(tmp_path, f"test-{hops}")
    first = cached_samples(cache, "train", retriever, examples, CAPS, progress=False)
    assert cache.path("train").is_file()
    again = cached_samples(cache, "train", None, examples, CAPS, progress=False)  # type: ignore[arg-type]
    assert [s.subgraph for s in again] == [s.subgraph for s in first]
    assert [s.answer_keys for s in again] == [s.answer_keys for s in first]
