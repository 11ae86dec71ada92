"""Bounded k-hop subgraph retrieval around anchor entities.

The neighbourhood is expanded hop by hop from the frontier; each hop may add at most the
remaining node and edge budget, so hub entities (years, genres) cannot blow a request up.
The subgraph says when it was truncated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autoglm.contracts import GraphNode, Subgraph
from autoglm.graph.store import GraphStore

_EXPAND = """
UNWIND $frontier AS key
MATCH (a:Entity {key: key})-[r:REL]-(b:Entity)
WITH startNode(r) AS s, r, endNode(r) AS o
RETURN DISTINCT s.key AS source, r.type AS relation, o.key AS target,
       s.name AS source_name, o.name AS target_name, s.label AS source_label,
       o.label AS target_label
LIMIT $limit
"""

_NODES = (
    "MATCH (e:Entity) WHERE e.key IN $keys RETURN e.key AS key, e.name AS name, e.label AS label"
)


@dataclass(frozen=True)
class RetrievalCaps:
    hops: int
    max_nodes: int
    max_edges: int


class SubgraphRetriever:
    def __init__(self, store: GraphStore) -> None:
        self.store = store

    async def retrieve(self, anchors: Sequence[str], caps: RetrievalCaps) -> Subgraph:
        subgraph = Subgraph()
        if not anchors:
            return subgraph
        node_index: dict[str, int] = {}
        for row in await self.store.run_read(_NODES, keys=list(anchors)):
            node_index[row["key"]] = len(subgraph.nodes)
            subgraph.nodes.append(
                GraphNode(key=row["key"], name=row["name"], label=row["label"] or "")
            )
        subgraph.anchor_indices.extend(node_index[a] for a in anchors if a in node_index)
        relation_index: dict[str, int] = {}
        seen_edges: set[tuple[str, str, str]] = set()
        frontier = [a for a in anchors if a in node_index]
        for _ in range(caps.hops):
            if not frontier:
                break
            budget = caps.max_edges - len(seen_edges)
            rows = await self.store.run_read(_EXPAND, frontier=frontier, limit=budget + 1)
            if len(rows) > budget:
                subgraph.truncated = True
                rows = rows[:budget]
            next_frontier: list[str] = []
            for row in rows:
                edge = (row["source"], row["relation"], row["target"])
                if edge in seen_edges:
                    continue
                ends = (
                    (row["source"], row["source_name"], row["source_label"]),
                    (row["target"], row["target_name"], row["target_label"]),
                )
                if any(k not in node_index for k, _, _ in ends) and (
                    len(node_index) + sum(k not in node_index for k, _, _ in ends) > caps.max_nodes
                ):
                    subgraph.truncated = True
                    continue
                for key, name, label in ends:
                    if key not in node_index:
                        node_index[key] = len(subgraph.nodes)
                        subgraph.nodes.append(GraphNode(key=key, name=name, label=label or ""))
                        next_frontier.append(key)
                seen_edges.add(edge)
                relation = relation_index.setdefault(row["relation"], len(relation_index))
                subgraph.edge_source.append(node_index[row["source"]])
                subgraph.edge_target.append(node_index[row["target"]])
                subgraph.edge_relation.append(relation)
            frontier = next_frontier
            if len(seen_edges) >= caps.max_edges:
                break
        subgraph.relation_types.extend(sorted(relation_index, key=relation_index.__getitem__))
        return subgraph
