"""Reasoning inputs (subgraphs of any size) collated into one disjoint-union graph batch.

Each KB edge s -r-> o becomes two message edges, s -> o with relation (r, forward) and
o -> s with (r, inverse), because reasoning paths run both ways ("films starring X" walks
starred_actors backwards). Every node also gets a self-loop with the "stay" relation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from autoglm.contracts import Subgraph

FORWARD, INVERSE, STAY = 0, 1, 2
STAY_RELATION = "stay"


def relation_text(relation: str) -> str:
    """The words of a relation name ("directed_by" -> "directed by") for the text encoder."""
    return relation.replace("_", " ").strip() or relation


@dataclass
class GraphBatch:
    r"""A batch of subgraphs as one graph (PyG convention: ``batch`` maps nodes to graphs).

    Shapes:
        - **node_graph:** :math:`(N,)`, **is_anchor:** :math:`(N,)` bool
        - **edge_index:** :math:`(2, E)`, **edge_relation:** :math:`(E,)` index into
          ``relations``, **edge_direction:** :math:`(E,)` in {FORWARD, INVERSE, STAY},
          **edge_kb_index:** :math:`(E,)` index of the KB edge in its subgraph, -1 for loops
        - **node_offset:** :math:`(B + 1,)` first node of each graph
    """

    node_graph: Tensor
    is_anchor: Tensor
    edge_index: Tensor
    edge_relation: Tensor
    edge_direction: Tensor
    edge_kb_index: Tensor
    node_offset: Tensor
    relations: list[str]

    @property
    def num_graphs(self) -> int:
        return int(self.node_offset.numel() - 1)

    def to(self, device: torch.device) -> GraphBatch:
        return GraphBatch(
            self.node_graph.to(device),
            self.is_anchor.to(device),
            self.edge_index.to(device),
            self.edge_relation.to(device),
            self.edge_direction.to(device),
            self.edge_kb_index.to(device),
            self.node_offset.to(device),
            self.relations,
        )


def collate_subgraphs(subgraphs: Sequence[Subgraph]) -> GraphBatch:
    relations: dict[str, int] = {STAY_RELATION: 0}
    node_graph: list[int] = []
    anchors: list[int] = []
    sources: list[int] = []
    targets: list[int] = []
    edge_relation: list[int] = []
    direction: list[int] = []
    kb_index: list[int] = []
    offsets = [0]
    for graph, subgraph in enumerate(subgraphs):
        base = offsets[-1]
        count = len(subgraph.nodes)
        node_graph.extend([graph] * count)
        anchors.extend(base + a for a in subgraph.anchor_indices)
        for n, (s, t, r) in enumerate(
            zip(subgraph.edge_source, subgraph.edge_target, subgraph.edge_relation, strict=True)
        ):
            rid = relations.setdefault(subgraph.relation_types[r], len(relations))
            sources += [base + s, base + t]
            targets += [base + t, base + s]
            edge_relation += [rid, rid]
            direction += [FORWARD, INVERSE]
            kb_index += [n, n]
        loops = range(base, base + count)
        sources += loops
        targets += loops
        edge_relation += [0] * count
        direction += [STAY] * count
        kb_index += [-1] * count
        offsets.append(base + count)
    is_anchor = torch.zeros(offsets[-1], dtype=torch.bool)
    is_anchor[anchors] = True
    return GraphBatch(
        node_graph=torch.tensor(node_graph, dtype=torch.long),
        is_anchor=is_anchor,
        edge_index=torch.tensor([sources, targets], dtype=torch.long).view(2, -1),
        edge_relation=torch.tensor(edge_relation, dtype=torch.long),
        edge_direction=torch.tensor(direction, dtype=torch.long),
        edge_kb_index=torch.tensor(kb_index, dtype=torch.long),
        node_offset=torch.tensor(offsets, dtype=torch.long),
        relations=list(relations),
    )
