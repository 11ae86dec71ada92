"""The evidence of retrieved edges: which sentences of which documents state them.

Graph-builder attaches it to each subgraph it hands to inference (``Subgraph.edge_evidence``), so
inference can put it on the reasoning path (``PathEdge.evidence``) without a store of its own.
Inference does not know in advance which edges its path will use, so every edge of the subgraph
is looked up: one query per batch of questions, an index seek on each node of the subgraphs
and an expansion of its ``SUPPORTS`` relationships (text-derived evidence only, see
``autoglm.graph.writes``); the subgraph's edges are picked out of what comes back. A graph
without any text evidence (a KB alone) is recognised first from Neo4j's count store, with one
small query per batch. Evidence is attached after the subgraph cache, so a cached subgraph
never carries evidence of another graph version's documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autoglm.contracts import EdgeEvidence, Evidence, Subgraph
from autoglm.graph.store import GraphStore

_ANY_EVIDENCE = "RETURN COUNT { ()-[:SUPPORTS]->() } > 0 AS any"

# Every fact stated about the subgraph's nodes as subjects; the subgraph's edges are picked out
# of them in Python (node keys are fewer than edges, and most nodes have no SUPPORTS at all).
_EVIDENCE = """
UNWIND $keys AS key
MATCH (s:Entity {key: key})<-[x:SUPPORTS]-(sentence:Sentence)
RETURN key AS subject, x.type AS predicate, x.object AS object,
       sentence.document_id AS document, sentence.index AS sentence, sentence.text AS text,
       x.start_char AS start, x.end_char AS end, x.extractor_version AS extractor,
       x.confidence AS confidence, sentence.key AS sentence_key
"""


def _evidence(row: dict[str, Any]) -> Evidence:
    return Evidence(
        document_id=row["document"] or "",
        sentence=int(row["sentence"] or 0),
        text=row["text"] or "",
        start_char=int(row["start"] or 0),
        end_char=int(row["end"] or 0),
        extractor_version=row["extractor"] or "",
        confidence=float(row["confidence"] or 0.0),
    )


async def attach_evidence(store: GraphStore, subgraphs: Sequence[Subgraph], per_edge: int) -> None:
    """Fill ``edge_evidence`` of each subgraph with at most ``per_edge`` sentences per edge,
    most confident first."""
    for subgraph in subgraphs:
        del subgraph.edge_evidence[:]
    if per_edge <= 0 or not any(subgraph.edge_source for subgraph in subgraphs):
        return
    (gate,) = await store.run_read(_ANY_EVIDENCE)
    if not gate["any"]:
        return
    edges: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    for number, subgraph in enumerate(subgraphs):
        keys = [node.key for node in subgraph.nodes]
        relations = subgraph.relation_types
        for index, (source, relation, target) in enumerate(
            zip(subgraph.edge_source, subgraph.edge_relation, subgraph.edge_target, strict=True)
        ):
            edge = (keys[source], relations[relation], keys[target])
            edges.setdefault(edge, []).append((number, index))
    subjects = sorted({subject for subject, _, _ in edges})
    found: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in await store.run_read(_EVIDENCE, keys=subjects):
        edge = (row["subject"], row["predicate"], row["object"])
        if edge in edges:
            found.setdefault(edge, []).append(row)
    per_subgraph: list[dict[int, list[Evidence]]] = [{} for _ in subgraphs]
    for edge, rows in found.items():
        rows.sort(key=lambda r: (-(r["confidence"] or 0.0), r["sentence_key"], r["start"] or 0))
        evidence = [_evidence(row) for row in rows[:per_edge]]
        for number, index in edges[edge]:
            per_subgraph[number][index] = evidence
    for subgraph, by_edge in zip(subgraphs, per_subgraph, strict=True):
        subgraph.edge_evidence.extend(
            EdgeEvidence(edge=index, evidence=by_edge[index]) for index in sorted(by_edge)
        )
