"""What inference needs from a model, whatever its architecture."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from autoglm.contracts import Answer, PathEdge, ReasoningInput, Subgraph


@dataclass
class Prediction:
    answers: list[Answer]
    confidence: float
    reasoning_path: list[PathEdge] = field(default_factory=list)


class AnswerModel(Protocol):
    """Scores the nodes of each subgraph as answers; one call serves a whole batch."""

    version: str

    def predict(self, inputs: Sequence[ReasoningInput]) -> list[Prediction]: ...


def path_edge(subgraph: Subgraph, edge: int, weight: float) -> PathEdge:
    """Edge ``edge`` of ``subgraph`` as a reasoning-path edge, with the sentences that state it
    when it was read from text (graph-builder attaches them: ``Subgraph.edge_evidence``)."""
    source = subgraph.nodes[subgraph.edge_source[edge]]
    target = subgraph.nodes[subgraph.edge_target[edge]]
    return PathEdge(
        source_key=source.key,
        source_name=source.name,
        relation=subgraph.relation_types[subgraph.edge_relation[edge]],
        target_key=target.key,
        target_name=target.name,
        weight=weight,
        evidence=next((e.evidence for e in subgraph.edge_evidence if e.edge == edge), []),
    )
