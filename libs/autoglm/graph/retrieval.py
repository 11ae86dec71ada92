"""Question-guided, bounded k-hop subgraph retrieval around anchor entities.

Why not a breadth-first neighbourhood: hub entities (years, genres, languages, popular tags, with
degrees up to ~4,000 in MetaQA) make the plain 3-hop neighbourhood of a film ~9,600 nodes at the
median, and any cap applied blindly then cuts the answers out at random. The answers of a
multi-hop question lie at the end of one *relation path* ("films that share directors with [X]
were in which genres" = ``directed_by → directed_by⁻¹ → has_genre``), and the question says
which. So retrieval is a beam search over relation paths, hop by hop:

1. **Aggregate** (one Cypher query per hop): for every path kept so far, the (relation type,
   direction) pairs leaving its frontier, with how many distinct nodes and edges each would add.
   Nothing is materialised yet, so looking into a hub costs a count, not 4,000 rows.
2. **Score** each one-step extension of each path against the question
   (``autoglm.graph.path_scoring``: sentence-encoder similarity of the verbalised path plus a
   word-level match of its relation names). Paths, not single relations, are scored, so the
   hop-2 choice after ``directed_by`` differs from the one after ``has_genre``. A path that
   walks *through* a hub pays ``fanout_penalty`` per nat of branching beyond
   ``free_branching`` at each intermediate step (``branching_cost``: the log-probability of a
   random walk reaching one given node), so "films of the same year" ranks below "films of the
   same director" even when the question names both the year and the director.
3. **Shortlist**: unless the whole hop is small (``expand_all_nodes``), keep the extensions
   within ``margin`` of the best score, always at least ``min_keep`` and at most
   ``beam_width``. The encoder is small: on MetaQA dev questions the right extension scores
   best only 70-90% of the time (depending on the hop), though nearly always within the top
   six; a dropped path loses its answers for good, while the wrong paths kept are cheap (a
   person's films) unless they go through a hub, which the walk cost and the budget handle.
4. **Budget**: each hop may spend at most an equal share of the node and edge caps left for the
   hops still to come (so a hub at hop 1 cannot starve hops 2 and 3). Shortlisted extensions are
   taken in score order when they fit *whole*; one that does not fit (a hub) is dropped and the
   subgraph marked ``truncated``. A partial path is worse than none: its arbitrary slice of the
   hub would be expanded further at the next hop. Only when nothing fits is the best extension
   taken partially, keeping the targets reached from the most frontier nodes (a one-step
   personalised-PageRank ranking), so retrieval never comes back empty.
5. **Expand** (one Cypher query per hop): the edges of the accepted extensions, which become the
   frontiers of the next hop.

MetaQA's paths never return to the topic entity, so from hop 2 on the anchors are not targets.
Without a question (or without a scorer) every extension scores the same: retrieval is then a
bounded breadth-first expansion, smallest fan-out first.

Edges keep the KB direction (``edge_source → edge_target`` is subject → object), whatever the
direction they were walked in. Retrieval is deterministic: anchors are de-duplicated and sorted,
scores are rounded, every ordering has a total tie-break, and Neo4j rows are sorted.

Results are cached in Redis (``autoglm.graph.subgraph_cache``) keyed by what they depend on:
anchors, k, caps, graph version, the scorer and shortlist settings, and the scoring text.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from autoglm.contracts import GraphNode, Subgraph
from autoglm.graph.path_scoring import (
    SCORE_DECIMALS,
    QuestionEncoding,
    RelationPath,
    RelationPathScorer,
    Step,
    path_phrase,
)
from autoglm.graph.store import GraphStore
from autoglm.graph.subgraph_cache import SubgraphCache

log = logging.getLogger(__name__)

# Bump when the retrieval algorithm changes what it returns: cached subgraphs then miss.
ALGORITHM_VERSION = "beam-v1"


@dataclass(frozen=True)
class RetrievalCaps:
    hops: int
    max_nodes: int
    max_edges: int


@dataclass(frozen=True)
class GuidanceParams:
    """How many relation paths the beam keeps per hop (see the module docstring)."""

    margin: float = 0.3
    min_keep: int = 6
    beam_width: int = 12
    fanout_penalty: float = 0.2
    free_branching: float = 10.0
    expand_all_nodes: int = 50

    @property
    def fingerprint(self) -> str:
        return (
            f"m={self.margin}|k={self.min_keep}|w={self.beam_width}"
            f"|f={self.fanout_penalty}|b={self.free_branching}|a={self.expand_all_nodes}"
        )


# --- Graph access: Neo4j in production, an in-memory graph in unit tests -----------------------


@dataclass(frozen=True)
class EntityRow:
    key: str
    name: str
    label: str


@dataclass(frozen=True)
class RelationCount:
    """Extensions available from one beam item's frontier: ``targets`` distinct nodes over
    ``edges`` edges of ``relation`` walked ``forward`` (frontier = subject) or backward."""

    item: int
    relation: str
    forward: bool
    targets: int
    edges: int


@dataclass(frozen=True)
class FrontierRequest:
    """Which extensions leave ``frontier``, ignoring edges into ``exclude`` (the anchors, from
    hop 2 on)."""

    frontier: tuple[str, ...]
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExpandRequest:
    frontier: tuple[str, ...]
    step: Step
    limit: int
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetRow:
    """A node reached by an expansion, and the frontier nodes it was reached from."""

    key: str
    name: str
    label: str
    sources: tuple[str, ...]


class GraphAccess(Protocol):
    async def graph_version(self) -> int: ...

    async def entities(self, keys: Sequence[str]) -> list[EntityRow]: ...

    async def relation_counts(self, requests: Sequence[FrontierRequest]) -> list[RelationCount]:
        """The extensions of every request, ``item`` being the request's index."""
        ...

    async def expand(self, requests: Sequence[ExpandRequest]) -> list[list[TargetRow]]:
        """Per request, its targets ordered by (number of sources desc, key), at most
        ``limit`` of them; each target's sources sorted."""
        ...


_ENTITIES = (
    "MATCH (e:Entity) WHERE e.key IN $keys RETURN e.key AS key, e.name AS name, e.label AS label"
)

# ``%(rel)s`` is one of two constants (``REL``, or ``REL|OPEN_REL`` when open relations are asked
# for), never data: relationship types cannot be parameters.
_RELATION_COUNTS = """
UNWIND range(0, size($requests) - 1) AS item
WITH item, $requests[item] AS q
UNWIND q.frontier AS key
MATCH (a:Entity {key: key})-[r:%(rel)s]-(b:Entity)
WHERE NOT b.key IN q.exclude
RETURN item, r.type AS relation, startNode(r) = a AS forward,
       count(DISTINCT b) AS targets, count(r) AS edges
"""

_EXPAND = """
UNWIND range(0, size($requests) - 1) AS item
WITH item, $requests[item] AS q
CALL (q) {
  UNWIND q.frontier AS key
  MATCH (a:Entity {key: key})-[r:%(rel)s]-(b:Entity)
  WHERE r.type = q.relation AND (startNode(r) = a) = q.forward AND NOT b.key IN q.exclude
  WITH b, collect(DISTINCT a.key) AS sources
  ORDER BY size(sources) DESC, b.key
  WITH collect({key: b.key, name: b.name, label: b.label, sources: sources}) AS rows
  RETURN rows[..q.limit] AS rows
}
RETURN item, rows
"""


class Neo4jGraphAccess:
    """The three retrieval queries, fully parameterised (relation types are data, not text).

    Open relations (read from text, outside the schema: ``OPEN_REL`` edges) are walked only
    with ``include_open``."""

    def __init__(self, store: GraphStore, *, include_open: bool = False) -> None:
        self.store = store
        rel = "REL|OPEN_REL" if include_open else "REL"
        self._relation_counts = _RELATION_COUNTS % {"rel": rel}
        self._expand = _EXPAND % {"rel": rel}

    async def graph_version(self) -> int:
        return await self.store.graph_version()

    async def entities(self, keys: Sequence[str]) -> list[EntityRow]:
        rows = await self.store.run_read(_ENTITIES, keys=list(keys))
        return [EntityRow(r["key"], r["name"] or r["key"], r["label"] or "") for r in rows]

    async def relation_counts(self, requests: Sequence[FrontierRequest]) -> list[RelationCount]:
        params = [{"frontier": list(r.frontier), "exclude": list(r.exclude)} for r in requests]
        rows = await self.store.run_read(self._relation_counts, requests=params)
        return [
            RelationCount(r["item"], r["relation"], r["forward"], r["targets"], r["edges"])
            for r in rows
        ]

    async def expand(self, requests: Sequence[ExpandRequest]) -> list[list[TargetRow]]:
        params = [
            {
                "frontier": list(r.frontier),
                "relation": r.step.relation,
                "forward": r.step.forward,
                "limit": r.limit,
                "exclude": list(r.exclude),
            }
            for r in requests
        ]
        out: list[list[TargetRow]] = [[] for _ in requests]
        for row in await self.store.run_read(self._expand, requests=params):
            out[row["item"]] = [
                TargetRow(
                    t["key"], t["name"] or t["key"], t["label"] or "", tuple(sorted(t["sources"]))
                )
                for t in row["rows"]
            ]
        return out


# --- The beam's decisions, pure functions of the candidates ------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A one-step extension of beam item ``item``: its whole relation path and its cost."""

    item: int
    path: RelationPath
    targets: int
    edges: int
    score: float = 0.0
    walk_cost: float = 0.0  # branching cost of the path's intermediate steps (hubs)

    @property
    def sort_key(self) -> tuple[float, int, str, int]:
        return (-self.score, self.targets, path_phrase(self.path), self.item)


@dataclass(frozen=True)
class Expansion:
    candidate: Candidate
    limit: int  # targets taken; < candidate.targets only for the never-empty fallback


def shortlist(candidates: Sequence[Candidate], guidance: GuidanceParams | None) -> list[Candidate]:
    """Best first; with guidance, those within ``margin`` of the best, at least ``min_keep``,
    at most ``beam_width``. Without guidance (no question), or when all of them together add
    at most ``expand_all_nodes`` nodes (a film's own neighbourhood: nothing worth pruning, and
    a small encoder misreads "which words describe [X]" as anything but ``has_tags``), all of
    them, best (or smallest) first."""
    ordered = sorted(candidates, key=lambda c: c.sort_key)
    if guidance is None or sum(c.targets for c in ordered) <= guidance.expand_all_nodes:
        return ordered
    floor = ordered[0].score - guidance.margin
    kept = [c for n, c in enumerate(ordered) if n < guidance.min_keep or c.score >= floor]
    return kept[: max(guidance.beam_width, guidance.min_keep)]


def fit_to_budget(
    candidates: Sequence[Candidate], node_budget: int, edge_budget: int
) -> tuple[list[Expansion], bool]:
    """(expansions, truncated): whole extensions in the given order while they fit; if none
    fits, the first one partially (never empty while there is any budget)."""
    accepted: list[Expansion] = []
    nodes = edges = 0
    for candidate in candidates:
        if nodes + candidate.targets <= node_budget and edges + candidate.edges <= edge_budget:
            accepted.append(Expansion(candidate, candidate.targets))
            nodes += candidate.targets
            edges += candidate.edges
    truncated = len(accepted) < len(candidates)
    if not accepted and candidates:
        limit = min(node_budget, edge_budget, candidates[0].targets)
        if limit > 0:
            accepted.append(Expansion(candidates[0], limit))
    return accepted, truncated


def branching_cost(targets: int, frontier: int, free_branching: float) -> float:
    """Walk cost of a step: the log of its mean branching factor beyond ``free_branching``.

    A random walk along a relation path reaches one given node with probability ~1/branching
    per step (personalised PageRank without restarts), so a path through a hub (a year, a
    genre: hundreds or thousands of films per node) is a poor way to reach anything specific,
    while a path through people (tens of films each) is how multi-hop questions go. Branching
    up to ``free_branching`` costs nothing, so the penalty separates hubs from ordinary nodes
    without preferring one ordinary relation over another (actors branch more than directors).
    """
    branching = targets / max(1, frontier)
    return math.log(max(1.0, branching / max(1.0, free_branching)))


def hop_budget(cap: int, used: int, hops_left: int) -> int:
    """An equal share of what is left of a cap for each hop still to come."""
    return max(0, cap - used) // max(1, hops_left)


# --- Assembling the Subgraph message -----------------------------------------------------------


@dataclass
class _SubgraphBuilder:
    caps: RetrievalCaps
    subgraph: Subgraph = field(default_factory=Subgraph)
    node_index: dict[str, int] = field(default_factory=dict)
    relation_index: dict[str, int] = field(default_factory=dict)
    edges: set[tuple[int, int, int]] = field(default_factory=set)

    @property
    def node_count(self) -> int:
        return len(self.node_index)

    @property
    def edge_count(self) -> int:
        return len(self.edges)

    def add_node(self, key: str, name: str, label: str) -> bool:
        if key in self.node_index:
            return True
        if len(self.node_index) >= self.caps.max_nodes:
            self.subgraph.truncated = True
            return False
        self.node_index[key] = len(self.subgraph.nodes)
        self.subgraph.nodes.append(GraphNode(key=key, name=name, label=label))
        return True

    def add_edge(self, source: str, relation: str, target: str) -> bool:
        rel = self.relation_index.setdefault(relation, len(self.relation_index))
        edge = (self.node_index[source], rel, self.node_index[target])
        if edge in self.edges:
            return True
        if len(self.edges) >= self.caps.max_edges:
            self.subgraph.truncated = True
            return False
        self.edges.add(edge)
        self.subgraph.edge_source.append(edge[0])
        self.subgraph.edge_relation.append(rel)
        self.subgraph.edge_target.append(edge[2])
        return True

    def add_expansion(self, step: Step, targets: Sequence[TargetRow]) -> list[str]:
        """Adds the targets and their edges within the caps; returns the targets reached."""
        reached = []
        for target in targets:
            if not self.add_node(target.key, target.name, target.label):
                continue
            linked = False
            for source in target.sources:
                subject, obj = (source, target.key) if step.forward else (target.key, source)
                linked = self.add_edge(subject, step.relation, obj) or linked
            if linked:
                reached.append(target.key)
        return reached

    def build(self) -> Subgraph:
        self.subgraph.relation_types.extend(
            sorted(self.relation_index, key=self.relation_index.__getitem__)
        )
        return self.subgraph


@dataclass(frozen=True)
class _BeamItem:
    path: RelationPath
    frontier: tuple[str, ...]
    walk_cost: float = 0.0  # sum of log branching factors of its intermediate steps


class SubgraphRetriever:
    """Retrieves the question-guided k-hop subgraph of anchor entities (see module docstring).

    ``scorer`` is optional: without one (or without a question) retrieval is a bounded
    breadth-first expansion. ``cache`` is optional too; it never fails a request.
    """

    def __init__(
        self,
        store: GraphStore | GraphAccess,
        scorer: RelationPathScorer | None = None,
        cache: SubgraphCache | None = None,
        guidance: GuidanceParams | None = None,
    ) -> None:
        self.graph: GraphAccess = (
            Neo4jGraphAccess(store) if isinstance(store, GraphStore) else store
        )
        self.scorer = scorer
        self.cache = cache
        self.guidance = guidance or GuidanceParams()

    def fingerprint(self, guided: bool) -> str:
        """What, besides anchors, caps, graph version and text, the result depends on."""
        if not guided or self.scorer is None:
            return f"{ALGORITHM_VERSION}|unguided"
        return f"{ALGORITHM_VERSION}|{self.scorer.fingerprint}|{self.guidance.fingerprint}"

    async def retrieve(
        self,
        anchors: Sequence[str],
        caps: RetrievalCaps,
        question: str | None = None,
        *,
        graph_version: int | None = None,
        encoding: QuestionEncoding | None = None,
    ) -> Subgraph:
        """The subgraph around ``anchors`` (entity keys), guided by ``question`` (the text
        from ``path_scoring.scoring_text``) when given. ``graph_version`` (read from the store
        when not given) keys the cache; ``encoding`` is the question's, when the caller has
        encoded a batch of questions at once."""
        keys = sorted(set(anchors))
        if not keys:
            return Subgraph()
        text = question.strip() if question and self.scorer is not None else None
        cache_key = None
        if self.cache is not None:
            if graph_version is None:
                graph_version = await self.graph.graph_version()
            cache_key = self.cache.key(
                keys,
                caps.hops,
                caps.max_nodes,
                caps.max_edges,
                graph_version,
                self.fingerprint(text is not None),
                text or "",
            )
            cached = await self.cache.get(cache_key)
            if cached is not None:
                return cached
        if encoding is not None and encoding.text != text:
            encoding = None  # not this question's: encode it here
        subgraph = await self._retrieve(keys, caps, text, encoding)
        if cache_key is not None and self.cache is not None:
            await self.cache.put(cache_key, subgraph)
        return subgraph

    async def _retrieve(
        self,
        anchors: list[str],
        caps: RetrievalCaps,
        text: str | None,
        encoding: QuestionEncoding | None = None,
    ) -> Subgraph:
        builder = _SubgraphBuilder(caps)
        scorer = self.scorer if text is not None else None

        async def encode() -> QuestionEncoding | None:
            if scorer is None or text is None:
                return None
            if encoding is not None:
                return encoding
            return await asyncio.to_thread(scorer.encode_question, text)

        # The encoder (CPU) runs while Neo4j looks the anchors up.
        question, entity_rows = await asyncio.gather(encode(), self.graph.entities(anchors))
        rows = {row.key: row for row in entity_rows}
        for key in anchors:
            if key in rows:
                builder.add_node(key, rows[key].name, rows[key].label)
        found = [key for key in anchors if key in builder.node_index]
        builder.subgraph.anchor_indices.extend(builder.node_index[key] for key in found)
        if not found:
            return builder.build()
        items = [_BeamItem((), tuple(found))]
        for hop in range(1, caps.hops + 1):
            hops_left = caps.hops - hop + 1
            exclude = tuple(found) if hop > 1 else ()
            candidates = await self._candidates(items, exclude, hops_left, question)
            expansions, truncated = fit_to_budget(
                shortlist(candidates, self.guidance if question is not None else None),
                hop_budget(caps.max_nodes, builder.node_count, hops_left),
                hop_budget(caps.max_edges, builder.edge_count, hops_left),
            )
            builder.subgraph.truncated |= truncated
            if log.isEnabledFor(logging.DEBUG):
                chosen = [(path_phrase(e.candidate.path), e.candidate.score) for e in expansions]
                log.debug("hop %d of %d candidates: %s", hop, len(candidates), chosen)
            items = await self._expand(builder, items, expansions, exclude)
            if not items:
                break
        return builder.build()

    async def _candidates(
        self,
        items: Sequence[_BeamItem],
        exclude: tuple[str, ...],
        hops_left: int,
        question: QuestionEncoding | None,
    ) -> list[Candidate]:
        """Every one-step extension of the beam, scored (when there is a question)."""
        counts = await self.graph.relation_counts(
            [FrontierRequest(i.frontier, exclude) for i in items]
        )
        free = self.guidance.free_branching
        candidates = []
        for count in counts:
            item = items[count.item]
            cost = item.walk_cost
            if hops_left > 1:  # the targets will be walked through at the next hop
                cost += branching_cost(count.targets, len(item.frontier), free)
            step = Step(count.relation, count.forward)
            candidates.append(
                Candidate(count.item, (*item.path, step), count.targets, count.edges, 0.0, cost)
            )
        if question is None or self.scorer is None or not candidates:
            return candidates
        scores = await asyncio.to_thread(self.scorer.score, question, [c.path for c in candidates])
        beta = self.guidance.fanout_penalty
        return [
            replace(c, score=round(s - beta * c.walk_cost, SCORE_DECIMALS))
            for c, s in zip(candidates, scores, strict=True)
        ]

    async def _expand(
        self,
        builder: _SubgraphBuilder,
        items: Sequence[_BeamItem],
        expansions: Sequence[Expansion],
        exclude: tuple[str, ...],
    ) -> list[_BeamItem]:
        """Adds the accepted extensions to the subgraph; returns the next hop's beam."""
        if not expansions:
            return []
        requests = [
            ExpandRequest(items[e.candidate.item].frontier, e.candidate.path[-1], e.limit, exclude)
            for e in expansions
        ]
        beam = []
        for expansion, targets in zip(expansions, await self.graph.expand(requests), strict=True):
            chosen = expansion.candidate
            reached = builder.add_expansion(chosen.path[-1], targets)
            if reached:
                beam.append(_BeamItem(chosen.path, tuple(reached), chosen.walk_cost))
        return beam
