"""The evidence of retrieved edges: which sentences of which documents state them.

Graph-builder attaches it to each subgraph it hands to inference (``Subgraph.edge_evidence``), so
inference can put it on the reasoning path (``PathEdge.evidence``) without a store of its own.
Inference does not know in advance which edges its path will use, so every edge of the subgraph
is looked up: one query per batch of questions, an index seek on the edge's subject and an
expansion of its ``SUPPORTS`` relationships (text-derived evidence only, see
``autoglm.graph.writes``). A graph without any text evidence (a KB alone) is recognised from
Neo4j's count store first and costs nothing more. Evidence is attached after the subgraph cache,
so a cached subgraph never carries evidence of another graph version's documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autoglm.contracts import EdgeEvidence, Evidence, Subgraph
from autoglm.graph.store import GraphStore

_EVIDENCE = """
WITH COUNT { ()-[:SUPPORTS]->() } AS supports
UNWIND CASE WHEN supports > 0 THEN $edges ELSE [] END AS e
MATCH (s:Entity {key: e.subject})<-[x:SUPPORTS]-(sentence:Sentence)
WHERE x.type = e.predicate AND x.object = e.object
WITH e, x, sentence
ORDER BY x.confidence DESC, sentence.key, x.start_char
WITH e, collect({
  document: sentence.document_id, sentence: sentence.index, text: sentence.text,
  start: x.start_char, end: x.end_char, extractor: x.extractor_version,
  confidence: x.confidence
})[..$limit] AS evidence
RETURN e.id AS id, evidence
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
    if per_edge <= 0:
        return
    edges: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    for number, subgraph in enumerate(subgraphs):
        del subgraph.edge_evidence[:]
        for index, (source, relation, target) in enumerate(
            zip(
                subgraph.edge_source,
                subgraph.edge_relation,
                subgraph.edge_target,
                strict=True,
            )
        ):
            edge = (
                subgraph.nodes[source].key,
                subgraph.relation_types[relation],
                subgraph.nodes[target].key,
            )
            edges.setdefault(edge, []).append((number, index))
    if not edges:
        return
    ordered = sorted(edges)
    params = [
        {"id": n, "subject": s, "predicate": p, "object": o} for n, (s, p, o) in enumerate(ordered)
    ]
    rows = await store.run_read(_EVIDENCE, edges=params, limit=per_edge)
    per_subgraph: list[dict[int, list[Evidence]]] = [{} for _ in subgraphs]
    for row in rows:
        evidence = [_evidence(item) for item in row["evidence"]]
        for number, index in edges[ordered[row["id"]]]:
            per_subgraph[number][index] = evidence
    for subgraph, by_edge in zip(subgraphs, per_subgraph, strict=True):
        subgraph.edge_evidence.extend(
            EdgeEvidence(edge=index, evidence=by_edge[index]) for index in sorted(by_edge)
        )
