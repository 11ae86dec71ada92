"""Reasoning inputs (subgraphs of any size) collated into one disjoint-union graph batch.

Each KB edge s -r-> o becomes two message edges, s -> o with relation (r, forward) and
o -> s with (r, inverse), because reasoning paths run both ways ("films starring X" walks
starred_actors backwards). Every node also gets a self-loop with the "stay" relation.

Node indices of each subgraph are shifted by its offset in the batch, so an index outside its
own subgraph would land on another one's nodes: :func:`collate_subgraphs` refuses such a
subgraph (``BadInputError``) rather than let one request change another's answer. Inference
checks its inputs before batching (``autoglm.models.serving.check_input``); this is the last
line of defence for every other caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from autoglm.contracts import Subgraph
from autoglm.errors import BadInputError

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
        _check_indices(subgraph, graph)
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


def _check_indices(subgraph: Subgraph, graph: int) -> None:
    """Every index of ``subgraph`` points inside it (see the module docstring)."""
    nodes, edges = len(subgraph.nodes), len(subgraph.edge_source)
    if len(subgraph.edge_target) != edges or len(subgraph.edge_relation) != edges:
        raise BadInputError(
            f"subgraph {graph} of the batch has edge arrays of different lengths",
            error_type="invalid_subgraph",
        )
    for what, indices, size in (
        ("node", [*subgraph.edge_source, *subgraph.edge_target, *subgraph.anchor_indices], nodes),
        ("relation", subgraph.edge_relation, len(subgraph.relation_types)),
    ):
        if indices and (min(indices) < 0 or max(indices) >= size):
            raise BadInputError(
                f"subgraph {graph} of the batch has a {what} index outside 0..{size - 1}",
                error_type="invalid_subgraph",
            )
