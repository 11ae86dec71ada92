"""The answer cache key holds everything an answer depends on, the subgraph included, so a
forged reasoning input cannot set the answer that others get."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autoglm.contracts import GraphNode, ParsedQuestion, Question, ReasoningInput, Subgraph
from autoglm.models.result_cache import ResultCache
from autoglm.settings import Settings


def genuine() -> ReasoningInput:
    return ReasoningInput(
        request_id="r1",
        question=ParsedQuestion(
            normalized_text="who directed Jaws", question=Question(text="who directed [Jaws]")
        ),
        subgraph=Subgraph(
            nodes=[GraphNode(key="Jaws", name="Jaws"), GraphNode(key="SS", name="SS")],
            edge_source=[0],
            edge_target=[1],
            edge_relation=[0],
            relation_types=["directed_by"],
            anchor_indices=[0],
        ),
        graph_version=7,
        hops=1,
        top_k=5,
    )


@pytest.fixture(scope="module")
def cache() -> ResultCache:
    return ResultCache.connect(Settings())  # the key needs no server


def renamed_answer(item: ReasoningInput) -> None:
    item.subgraph.nodes[1].key = "Forged"


def extra_edge(item: ReasoningInput) -> None:
    item.subgraph.edge_source.append(1)
    item.subgraph.edge_target.append(0)
    item.subgraph.edge_relation.append(0)


def other_relation(item: ReasoningInput) -> None:
    item.subgraph.relation_types[0] = "written_by"


def other_anchor(item: ReasoningInput) -> None:
    item.subgraph.anchor_indices[:] = [0, 1]


def reversed_edge(item: ReasoningInput) -> None:
    item.subgraph.edge_source[0], item.subgraph.edge_target[0] = 1, 0


def extra_node(item: ReasoningInput) -> None:
    item.subgraph.nodes.add(key="Other", name="Other")


@pytest.mark.parametrize(
    "forge",
    [renamed_answer, extra_edge, other_relation, other_anchor, reversed_edge, extra_node],
)
def test_a_different_subgraph_is_a_different_key(
    cache: ResultCache, forge: Callable[[ReasoningInput], None]
) -> None:
    """Same question, anchors, k, top-k, model and graph version: only the subgraph differs."""
    forged = genuine()
    forge(forged)
    assert cache.key("v1", forged) != cache.key("v1", genuine())


def test_the_same_input_is_the_same_key_whoever_asks(cache: ResultCache) -> None:
    other = genuine()
    other.request_id = "r2"
    other.timings.add(service="parser", milliseconds=3.0)
    assert cache.key("v1", other) == cache.key("v1", genuine())
    assert cache.key("v2", genuine()) != cache.key("v1", genuine())
    newer = genuine()
    newer.graph_version = 8
    assert cache.key("v1", newer) != cache.key("v1", genuine())
