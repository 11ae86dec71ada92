"""An in-memory ``GraphAccess`` with the semantics of the Neo4j retrieval queries.

Training retrieves tens of thousands of subgraphs; doing it from a KB file in memory, through
the same ``SubgraphRetriever``, gives the subgraphs the services would get from Neo4j (same keys,
same beam, same caps) without a database round trip per hop. Unit tests use it too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from autoglm.graph.retrieval import (
    EntityRow,
    ExpandRequest,
    FrontierRequest,
    RelationCount,
    TargetRow,
)
from autoglm.nlp.keys import normalize_key
from autoglm.nlp.parsing import parse_kb_lines


class InMemoryGraph:
    """``GraphAccess`` over (subject, relation, object) names, keyed like the graph store."""

    def __init__(self, triples: Iterable[tuple[str, str, str]], version: int = 1) -> None:
        self.version = version
        self.names: dict[str, str] = {}
        # node key -> [(relation, forward, other end's key)]
        self.incident: dict[str, list[tuple[str, bool, str]]] = defaultdict(list)
        self.calls: list[str] = []  # which query kinds were asked, in order (tests read it)
        seen: set[tuple[str, str, str]] = set()
        for subject, relation, obj in triples:
            s, o = normalize_key(subject), normalize_key(obj)
            if not s or not o or (s, relation, o) in seen:
                continue
            seen.add((s, relation, o))
            self.names.setdefault(s, subject)
            self.names.setdefault(o, obj)
            self.incident[s].append((relation, True, o))
            self.incident[o].append((relation, False, s))
        for edges in self.incident.values():
            edges.sort()

    @classmethod
    def from_kb_file(cls, path: Path) -> InMemoryGraph:
        """The triples of a ``subject|relation|object`` file, parsed as the parser service does
        (bad lines are skipped here; ingest reports them)."""
        triples, _ = parse_kb_lines(path.read_text(encoding="utf-8"))
        return cls((t.subject, t.predicate, t.object) for t in triples)

    @property
    def triple_count(self) -> int:
        return sum(1 for edges in self.incident.values() for _, forward, _ in edges if forward)

    def __contains__(self, key: str) -> bool:
        return key in self.names

    async def graph_version(self) -> int:
        return self.version

    async def entities(self, keys: Sequence[str]) -> list[EntityRow]:
        self.calls.append("entities")
        return [EntityRow(k, self.names[k], "") for k in keys if k in self.names]

    async def relation_counts(self, requests: Sequence[FrontierRequest]) -> list[RelationCount]:
        self.calls.append("relation_counts")
        out: list[RelationCount] = []
        for item, request in enumerate(requests):
            skip = set(request.exclude)
            targets: dict[tuple[str, bool], set[str]] = defaultdict(set)
            edges: dict[tuple[str, bool], int] = defaultdict(int)
            for key in request.frontier:
                for relation, forward, other in self.incident.get(key, ()):
                    if other not in skip:
                        targets[relation, forward].add(other)
                        edges[relation, forward] += 1
            out.extend(
                RelationCount(item, r, f, len(targets[r, f]), edges[r, f]) for r, f in targets
            )
        return out

    async def expand(self, requests: Sequence[ExpandRequest]) -> list[list[TargetRow]]:
        self.calls.append("expand")
        out = []
        for request in requests:
            skip = set(request.exclude)
            sources: dict[str, set[str]] = defaultdict(set)
            wanted = (request.step.relation, request.step.forward)
            for key in request.frontier:
                for relation, forward, other in self.incident.get(key, ()):
                    if (relation, forward) == wanted and other not in skip:
                        sources[other].add(key)
            ranked = sorted(sources, key=lambda k: (-len(sources[k]), k))[: request.limit]
            out.append([TargetRow(k, self.names[k], "", tuple(sorted(sources[k]))) for k in ranked])
        return out
