"""Inference refuses what it cannot answer safely, and starts even when its checkpoint is bad."""

from __future__ import annotations

import pytest
import torch

from autoglm.contracts import GraphNode, ParsedQuestion, Question, ReasoningInput, Subgraph
from autoglm.errors import BadInputError
from autoglm.models.batching import collate_subgraphs
from autoglm.models.fusion_model import FusionModule, config_meta, weights_of
from autoglm.models.reasoner import ReasonerConfig
from autoglm.models.serving import check_input, load_serving_model
from autoglm.registry import BUILTIN_VERSION, WEIGHTS_FILE, ModelRegistry
from autoglm.settings import Settings

UINT32_MAX = 2**32 - 1
INT32_MIN = -(2**31)


def graph(nodes: int, edges: list[tuple[int, int, int]], relations: int = 1) -> Subgraph:
    return Subgraph(
        nodes=[GraphNode(key=f"n{i}", name=f"n{i}") for i in range(nodes)],
        edge_source=[s for s, _, _ in edges],
        edge_relation=[r for _, r, _ in edges],
        edge_target=[t for _, _, t in edges],
        relation_types=[f"r{i}" for i in range(relations)],
        anchor_indices=[0],
    )


def item(subgraph: Subgraph | None = None, **fields: object) -> ReasoningInput:
    values: dict[str, object] = {"hops": 1, "top_k": 5, **fields}
    return ReasoningInput(subgraph=subgraph or graph(3, [(0, 0, 1), (1, 0, 2)]), **values)


def refusal(message: ReasoningInput, settings: Settings | None = None) -> BadInputError:
    with pytest.raises(BadInputError) as caught:
        check_input(message, settings or Settings())
    return caught.value


def test_a_well_formed_input_passes():
    check_input(item(), Settings())
    check_input(item(hops=3, top_k=100), Settings())
    check_input(item(graph(1, [])), Settings())


def test_subgraphs_over_the_caps_are_refused_with_a_reason():
    settings = Settings(subgraph_max_nodes=10, subgraph_max_edges=3)
    too_big = refusal(item(graph(11, [])), settings)
    assert too_big.error_type == "subgraph_over_caps" and "11 nodes" in too_big.reason
    many_edges = refusal(item(graph(3, [(0, 0, 1)] * 4)), settings)
    assert many_edges.error_type == "subgraph_over_caps"
    many_relations = refusal(item(graph(3, [(0, 0, 1)], relations=4)), settings)
    assert many_relations.error_type == "subgraph_over_caps"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"hops": 0}, "hops must be 1 to 3; got 0"),
        ({"hops": 4}, "hops must be 1 to 3; got 4"),
        ({"hops": UINT32_MAX}, f"got {UINT32_MAX}"),
        ({"top_k": 0}, "top_k must be 1 to 100; got 0"),
        ({"top_k": 101}, "got 101"),
        ({"top_k": UINT32_MAX}, f"got {UINT32_MAX}"),
    ],
)
def test_hops_and_top_k_are_bounded(fields, words):
    error = refusal(item(**fields))
    assert error.error_type == "invalid_field" and words in error.reason


def test_the_bounds_are_settings():
    check_input(item(hops=5, top_k=500), Settings(max_hops=5, max_top_k=500))
    assert "1 to 2" in refusal(item(hops=3), Settings(max_hops=2)).reason


@pytest.mark.parametrize(
    ("subgraph", "words"),
    [
        (graph(2, [(0, 0, 5)]), "edge target index 5"),
        (graph(2, [(-1, 0, 1)]), "edge source index -1"),
        (graph(2, [(0, 3, 1)]), "edge relation index 3"),
        (graph(2, [(0, -1, 1)]), "edge relation index -1"),
        (Subgraph(nodes=[GraphNode(key="a")], anchor_indices=[1]), "anchor index 1"),
        (Subgraph(nodes=[GraphNode(key="a")], anchor_indices=[-1]), "anchor index -1"),
        (Subgraph(nodes=[GraphNode(key="a")], anchor_indices=[INT32_MIN]), "anchor index"),
        (
            Subgraph(
                nodes=[GraphNode(key="a"), GraphNode(key="b")],
                edge_source=[0, 1],
                edge_target=[1],
                edge_relation=[0, 0],
                relation_types=["r"],
            ),
            "edge arrays differ in length",
        ),
    ],
)
def test_indices_outside_the_subgraph_are_refused(subgraph, words):
    error = refusal(item(subgraph))
    assert error.error_type == "invalid_subgraph" and words in error.reason


def test_oversize_texts_and_names_are_refused():
    long_question = ParsedQuestion(normalized_text="x" * 1_001, question=Question(text="q"))
    assert refusal(item(question=long_question)).error_type == "too_large"
    long_name = graph(2, [(0, 0, 1)])
    long_name.nodes[1].name = "n" * 1_001
    assert refusal(item(long_name)).error_type == "too_large"
    long_relation = graph(2, [(0, 0, 1)])
    long_relation.relation_types[0] = "r" * 1_001
    assert refusal(item(long_relation)).error_type == "too_large"


def test_collation_refuses_an_index_that_would_reach_another_subgraph():
    """Offsets shift each subgraph's indices: anchor 3 of a 3-node subgraph would be node 0 of
    the next one. Collation refuses it, whoever calls it."""
    good = graph(3, [(0, 0, 1)])
    spill = graph(3, [(0, 0, 1)])
    spill.anchor_indices[:] = [3]
    assert collate_subgraphs([good, good]).is_anchor.tolist() == [1, 0, 0, 1, 0, 0]
    for bad in (spill, graph(3, [(0, 0, 3)]), graph(3, [(0, 1, 1)]), graph(3, [(-1, 0, 1)])):
        with pytest.raises(BadInputError):
            collate_subgraphs([bad, good])


def test_a_corrupt_serving_checkpoint_falls_back_to_the_builtin_model(text_encoder, tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    config = ReasonerConfig(hidden_dim=16, heads=8, fusion_heads=4)
    module = FusionModule(text_encoder, config)
    torch.manual_seed(0)
    version = registry.register(
        weights_of(module, include_encoder=False), {"reasoner_config": config_meta(config)}
    ).version
    registry.set_serving(version)
    settings = Settings(model_registry_dir=tmp_path / "models", device="cpu")
    assert load_serving_model(settings).version == version
    (registry.get(version).path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    assert load_serving_model(settings).version == BUILTIN_VERSION
