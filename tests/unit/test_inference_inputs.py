"""Inference refuses what it cannot answer safely, and starts even when its checkpoint is bad."""

from __future__ import annotations

import torch

from autoglm.contracts import GraphNode, ReasoningInput, Subgraph
from autoglm.models.fusion_model import FusionModule, config_meta, weights_of
from autoglm.models.reasoner import ReasonerConfig
from autoglm.models.serving import load_serving_model
from autoglm.registry import BUILTIN_VERSION, WEIGHTS_FILE, ModelRegistry
from autoglm.settings import Settings
from services.inference.app import _within_caps


def graph(nodes: int, edges: list[tuple[int, int, int]], relations: int = 1) -> Subgraph:
    return Subgraph(
        nodes=[GraphNode(key=f"n{i}", name=f"n{i}") for i in range(nodes)],
        edge_source=[s for s, _, _ in edges],
        edge_relation=[r for _, r, _ in edges],
        edge_target=[t for _, _, t in edges],
        relation_types=[f"r{i}" for i in range(relations)],
        anchor_indices=[0],
    )


def test_subgraphs_over_the_caps_or_malformed_are_refused_with_a_reason():
    settings = Settings(subgraph_max_nodes=10, subgraph_max_edges=3)
    assert _within_caps(ReasoningInput(subgraph=graph(3, [(0, 0, 1), (1, 0, 2)])), settings) is None
    too_big = _within_caps(ReasoningInput(subgraph=graph(11, [])), settings)
    assert too_big is not None and too_big.error_type == "subgraph_over_caps"
    assert "11 nodes" in too_big.reason
    many_edges = _within_caps(ReasoningInput(subgraph=graph(3, [(0, 0, 1)] * 4)), settings)
    assert many_edges is not None and many_edges.error_type == "subgraph_over_caps"
    dangling = _within_caps(ReasoningInput(subgraph=graph(2, [(0, 0, 5)])), settings)
    assert dangling is not None and dangling.error_type == "invalid_subgraph"
    unknown_relation = _within_caps(ReasoningInput(subgraph=graph(2, [(0, 3, 1)])), settings)
    assert unknown_relation is not None and unknown_relation.error_type == "invalid_subgraph"


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
