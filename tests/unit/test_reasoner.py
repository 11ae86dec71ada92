"""The fusion model: shapes, invariance to node order, and that it can learn to follow relations."""

from __future__ import annotations

import pytest
import torch

from autoglm.contracts import GraphNode, Subgraph
from autoglm.models.batching import FORWARD, INVERSE, STAY, collate_subgraphs, relation_text
from autoglm.models.reasoner import (
    GraphTextReasoner,
    ReasonerConfig,
    answer_loss,
    evidence_loss,
    graph_softmax,
    trace_path,
)

FILM_FACTS = [
    ("Jaws", "directed_by", "Steven Spielberg"),
    ("Jaws", "release_year", "1975"),
    ("Jaws", "starred_actors", "Roy Scheider"),
    ("Jurassic Park", "directed_by", "Steven Spielberg"),
    ("Jurassic Park", "release_year", "1993"),
    ("Jurassic Park", "starred_actors", "Sam Neill"),
    ("Duel", "directed_by", "Steven Spielberg"),
    ("Duel", "release_year", "1971"),
]


def subgraph(anchor: str, order: list[str] | None = None) -> Subgraph:
    names = order or sorted({n for s, _, o in FILM_FACTS for n in (s, o)})
    relations = sorted({r for _, r, _ in FILM_FACTS})
    graph = Subgraph(nodes=[GraphNode(key=n, name=n) for n in names], relation_types=relations)
    for s, r, o in FILM_FACTS:
        graph.edge_source.append(names.index(s))
        graph.edge_target.append(names.index(o))
        graph.edge_relation.append(relations.index(r))
    graph.anchor_indices.append(names.index(anchor))
    return graph


@pytest.fixture(scope="module")
def encoded(text_encoder):
    def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return text_encoder.token_states(texts)

    return encode


def relation_states(text_encoder, batch) -> torch.Tensor:
    with torch.no_grad():
        return text_encoder([relation_text(r) for r in batch.relations])


def test_collate_adds_inverse_edges_and_self_loops():
    batch = collate_subgraphs([subgraph("Jaws"), subgraph("Duel")])
    nodes = len(subgraph("Jaws").nodes)
    assert batch.num_graphs == 2 and batch.node_offset.tolist() == [0, nodes, 2 * nodes]
    assert batch.edge_index.shape == (2, 2 * (2 * len(FILM_FACTS) + nodes))
    directions = batch.edge_direction.tolist()
    assert directions.count(FORWARD) == directions.count(INVERSE) == 2 * len(FILM_FACTS)
    assert directions.count(STAY) == 2 * nodes
    assert batch.is_anchor.sum() == 2
    assert batch.relations[0] == "stay"


def test_shapes_and_node_order_invariance(text_encoder, encoded):
    torch.manual_seed(0)
    model = GraphTextReasoner(ReasonerConfig(hops=2)).eval()
    tokens, mask = encoded(["who directed Jaws"])
    graph = subgraph("Jaws")
    shuffled_names = [n.name for n in reversed(graph.nodes)]
    outputs = []
    for g in (graph, subgraph("Jaws", shuffled_names)):
        batch = collate_subgraphs([g])
        out = model(tokens, mask, relation_states(text_encoder, batch), batch)
        assert out.logits.shape == (len(g.nodes),)
        assert len(out.attentions) == 2 and out.attentions[0].shape == (batch.edge_index.shape[1],)
        outputs.append(dict(zip([n.name for n in g.nodes], out.logits.tolist(), strict=True)))
    for name, logit in outputs[0].items():
        assert logit == pytest.approx(outputs[1][name], abs=1e-5)


def test_learns_to_follow_one_and_two_hop_relations(text_encoder, encoded):
    torch.manual_seed(0)
    questions = [
        ("who directed Jaws", "Jaws", {"Steven Spielberg"}),
        ("when was Jurassic Park released", "Jurassic Park", {"1993"}),
        ("who acted in Jaws", "Jaws", {"Roy Scheider"}),
        (
            "which films did Steven Spielberg direct",
            "Steven Spielberg",
            {"Jaws", "Jurassic Park", "Duel"},
        ),
        ("who directed the movies starring Sam Neill", "Sam Neill", {"Steven Spielberg"}),
        ("when were the movies starring Roy Scheider released", "Roy Scheider", {"1975"}),
    ]
    tokens, mask = encoded([q for q, _, _ in questions])
    graphs = [subgraph(anchor) for _, anchor, _ in questions]
    batch = collate_subgraphs(graphs)
    names = [n.name for g in graphs for n in g.nodes]
    targets = torch.tensor(
        [float(names[i] in questions[int(batch.node_graph[i])][2]) for i in range(len(names))]
    )
    relations = relation_states(text_encoder, batch)
    model = GraphTextReasoner(ReasonerConfig(hops=3, dropout=0.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        optimizer.zero_grad()
        out = model(tokens, mask, relations, batch)
        loss = answer_loss(out.logits, targets, batch) + evidence_loss(out.evidence, targets, batch)
        first = first if first is not None else float(loss.detach())
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.2 * first
    model.eval()
    with torch.no_grad():
        out = model(tokens, mask, relations, batch)
    probabilities = graph_softmax(out.logits, batch)
    for graph_index, (_, _, gold) in enumerate(questions):
        start, end = batch.node_offset[graph_index], batch.node_offset[graph_index + 1]
        best = int(probabilities[start:end].argmax()) + int(start)
        assert names[best] in gold, (questions[graph_index][0], names[best])
        assert float(probabilities[start:end].sum()) == pytest.approx(1.0, abs=1e-4)
    # The traced path of "who directed Jaws" is the directed_by edge from the anchor.
    answer = int(probabilities[: batch.node_offset[1]].argmax())
    path = trace_path(answer, batch, out)
    assert path, "a path from the anchor to the answer"
    edges = [edge for edge, _ in path]
    assert int(batch.edge_index[0, edges[0]]) == names.index("Jaws")
    assert batch.relations[int(batch.edge_relation[edges[-1]])] == "directed_by"
    assert all(0.0 < weight <= 1.0 for _, weight in path)
