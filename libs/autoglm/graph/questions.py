"""Graph-builder core for questions: link the mentions, retrieve the subgraph, hand it on."""

from __future__ import annotations

import asyncio
import time

from autoglm.contracts import (
    SCHEMA_VERSION,
    HopTiming,
    ParsedQuestion,
    ReasoningInput,
    ResultStatus,
)
from autoglm.graph.linking import EntityLinker
from autoglm.graph.path_scoring import RelationPathScorer, load_path_scorer, scoring_text
from autoglm.graph.retrieval import GuidanceParams, RetrievalCaps, SubgraphRetriever
from autoglm.graph.store import GraphStore
from autoglm.graph.subgraph_cache import SubgraphCache
from autoglm.settings import Settings


def guidance_params(settings: Settings) -> GuidanceParams:
    return GuidanceParams(
        margin=settings.retrieval_margin,
        min_keep=settings.retrieval_min_keep,
        beam_width=settings.retrieval_beam_width,
        fanout_penalty=settings.retrieval_fanout_penalty,
        free_branching=settings.retrieval_free_branching,
        expand_all_nodes=settings.retrieval_expand_all_nodes,
    )


class QuestionGrounder:
    """Links a parsed question to the graph and retrieves its subgraph (graph-builder core).

    ``start`` loads the relation-path scorer (the text encoder, on CPU by default) when
    retrieval is question-guided, and connects the Redis subgraph cache when enabled; a scorer
    or cache passed in (tests, benchmarks) is used as is and not closed.
    """

    def __init__(
        self,
        store: GraphStore,
        settings: Settings,
        *,
        scorer: RelationPathScorer | None = None,
        cache: SubgraphCache | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.linker = EntityLinker(store)
        self.retriever = SubgraphRetriever(
            store, scorer=scorer, cache=cache, guidance=guidance_params(settings)
        )
        self._own_cache: SubgraphCache | None = None

    async def start(self) -> None:
        """Load what grounding needs (called once at service start-up)."""
        if self.settings.retrieval_guided and self.retriever.scorer is None:
            self.retriever.scorer = await asyncio.to_thread(load_path_scorer, self.settings)
        if self.settings.subgraph_cache_enabled and self.retriever.cache is None:
            self._own_cache = self.retriever.cache = SubgraphCache.connect(self.settings)

    async def close(self) -> None:
        """Release what ``start`` acquired."""
        if self._own_cache is not None:
            await self._own_cache.close()
            self.retriever.cache = self._own_cache = None

    async def ground(self, question: ParsedQuestion) -> ReasoningInput:
        return await prepare_reasoning_input(
            question, self.store, self.linker, self.retriever, self.settings
        )


async def prepare_reasoning_input(
    question: ParsedQuestion,
    store: GraphStore,
    linker: EntityLinker,
    retriever: SubgraphRetriever,
    settings: Settings,
) -> ReasoningInput:
    started = time.perf_counter()
    hops = question.question.hops or settings.default_hops
    top_k = question.question.top_k or settings.default_top_k
    output = ReasoningInput(
        request_id=question.request_id,
        schema_version=SCHEMA_VERSION,
        question=question,
        hops=hops,
        top_k=top_k,
        status=ResultStatus.RESULT_STATUS_OK,
    )
    output.timings.extend(question.timings)
    output.graph_version = await store.graph_version()
    linking = await linker.link(question.mentions)
    output.linking.CopyFrom(linking)
    if not linking.anchors:
        if linking.unlinked_mentions and any(m.source == "bracket" for m in question.mentions):
            output.status = ResultStatus.RESULT_STATUS_ENTITY_NOT_IN_GRAPH
            output.error = "marked entity not in the graph: " + ", ".join(linking.unlinked_mentions)
        else:
            output.status = ResultStatus.RESULT_STATUS_NO_ENTITY
            ambiguous = sorted({c.mention for c in linking.ambiguous_candidates})
            output.error = "no mention could be linked unambiguously" + (
                f" (ambiguous: {', '.join(ambiguous)})" if ambiguous else ""
            )
    else:
        caps = RetrievalCaps(
            hops=hops, max_nodes=settings.subgraph_max_nodes, max_edges=settings.subgraph_max_edges
        )
        anchors = list(dict.fromkeys(a.key for a in linking.anchors))
        # The anchors' own names must not vote for a relation ("The Director", "Written").
        text = scoring_text(
            question.normalized_text or question.question.text,
            [a.mention for a in linking.anchors] + [a.name for a in linking.anchors],
        )
        subgraph = await retriever.retrieve(anchors, caps, text, graph_version=output.graph_version)
        output.subgraph.CopyFrom(subgraph)
        if len(subgraph.nodes) <= len(subgraph.anchor_indices):
            output.status = ResultStatus.RESULT_STATUS_EMPTY_SUBGRAPH
            output.error = "the anchor entities have no neighbours in the graph"
    output.timings.append(
        HopTiming(service="graph-builder", milliseconds=(time.perf_counter() - started) * 1000.0)
    )
    return output
