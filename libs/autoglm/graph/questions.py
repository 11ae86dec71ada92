"""Graph-builder core for questions: link the mentions, retrieve the subgraph, attach the
evidence of its text-derived edges, hand it on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from autoglm.contracts import (
    SCHEMA_VERSION,
    HopTiming,
    LinkedEntity,
    LinkingReport,
    ParsedQuestion,
    ReasoningInput,
    ResultStatus,
)
from autoglm.contracts.bounds import check_hops, check_top_k
from autoglm.errors import BadInputError
from autoglm.graph.coalesce import CoalescingGraphAccess
from autoglm.graph.evidence import attach_evidence
from autoglm.graph.linking import EntityLinker
from autoglm.graph.path_scoring import (
    QuestionEncoding,
    RelationPathScorer,
    load_path_scorer,
    scoring_text,
)
from autoglm.graph.retrieval import (
    GuidanceParams,
    Neo4jGraphAccess,
    RetrievalCaps,
    SubgraphRetriever,
)
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
        self.linker = EntityLinker.from_settings(store, settings)
        # Questions of a batch are grounded concurrently: their Neo4j queries are merged.
        self.retriever = SubgraphRetriever(
            CoalescingGraphAccess(
                Neo4jGraphAccess(store, include_open=settings.retrieval_include_open)
            ),
            scorer=scorer,
            cache=cache,
            guidance=guidance_params(settings),
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
        return (await self.ground_many([question]))[0]

    async def ground_many(self, questions: Sequence[ParsedQuestion]) -> list[ReasoningInput]:
        """A batch of questions: linked concurrently, their scoring texts encoded with one
        encoder call, their subgraphs retrieved concurrently (Neo4j serves them in parallel).

        A question out of bounds (:func:`check_parsed_question`) raises ``BadInputError``
        before any work is done; the service runtime then grounds the batch's questions one by
        one, and dead-letters that one with the reason."""
        for question in questions:
            check_parsed_question(question, self.settings)
        started = time.perf_counter()
        graph_version = await self.store.graph_version()
        # With the text, questions without [brackets] are linked by n-grams too.
        links = await asyncio.gather(
            *(self.linker.link(q.mentions, text=q.normalized_text) for q in questions)
        )
        texts = [
            _scoring_text(q, linking) if linking.anchors else None
            for q, linking in zip(questions, links, strict=True)
        ]
        encodings: dict[str, QuestionEncoding] = {}
        scorer = self.retriever.scorer
        wanted = sorted({t for t in texts if t})
        if scorer is not None and len(wanted) > 1:
            encoded = await asyncio.to_thread(scorer.encode_questions, wanted)
            encodings = dict(zip(wanted, encoded, strict=True))
        linked_ms = (time.perf_counter() - started) * 1000.0
        outputs = list(
            await asyncio.gather(
                *(
                    self._ground_linked(q, linking, graph_version, text, encodings, linked_ms)
                    for q, linking, text in zip(questions, links, texts, strict=True)
                )
            )
        )
        # Which sentences state the edges read from text: one query for the whole batch.
        with_edges = [o.subgraph for o in outputs if o.subgraph.edge_source]
        if with_edges:
            await attach_evidence(self.store, with_edges, self.settings.evidence_per_edge)
        return outputs

    async def _ground_linked(
        self,
        question: ParsedQuestion,
        linking: LinkingReport,
        graph_version: int,
        text: str | None,
        encodings: dict[str, QuestionEncoding],
        linked_ms: float,
    ) -> ReasoningInput:
        started = time.perf_counter()
        output = _reasoning_input(question, self.settings, graph_version, linking)
        if linking.anchors:
            caps = RetrievalCaps(
                hops=output.hops,
                max_nodes=self.settings.subgraph_max_nodes,
                max_edges=self.settings.subgraph_max_edges,
            )
            anchors = list(dict.fromkeys(a.key for a in linking.anchors))
            subgraph = await self.retriever.retrieve(
                anchors,
                caps,
                text,
                graph_version=graph_version,
                encoding=encodings.get(text or ""),
            )
            output.subgraph.CopyFrom(subgraph)
            if len(subgraph.nodes) <= len(subgraph.anchor_indices):
                output.status = ResultStatus.RESULT_STATUS_EMPTY_SUBGRAPH
                output.error = "the anchor entities have no neighbours in the graph"
        milliseconds = linked_ms + (time.perf_counter() - started) * 1000.0
        output.timings.append(HopTiming(service="graph-builder", milliseconds=milliseconds))
        return output


def check_parsed_question(question: ParsedQuestion, settings: Settings) -> None:
    """Raise ``BadInputError`` for a parsed question that asks for more work than a question
    may (parsed-questions is an internal topic, but anyone who reaches Kafka can write it):
    hops and top_k beyond the bounds drive retrieval and reasoning, long texts drive linking."""
    check_hops(question.question.hops, settings, zero_is_default=True)
    check_top_k(question.question.top_k, settings, zero_is_default=True)
    texts = [question.normalized_text, question.question.text, *(m.text for m in question.mentions)]
    longest = max(len(text) for text in texts)
    if longest > settings.max_question_chars:
        raise BadInputError(
            f"parsed question holds a text of {longest} characters, over the limit of "
            f"{settings.max_question_chars}",
            error_type="too_large",
        )


def _scoring_text(question: ParsedQuestion, linking: LinkingReport) -> str:
    return linked_scoring_text(question.normalized_text or question.question.text, linking.anchors)


def linked_scoring_text(text: str, anchors: Sequence[LinkedEntity]) -> str:
    """What retrieval scores relation paths against for a question linked to ``anchors``."""
    # The anchors' own names must not vote for a relation ("The Director", "Written").
    return scoring_text(text, [a.mention for a in anchors] + [a.name for a in anchors])


def _reasoning_input(
    question: ParsedQuestion, settings: Settings, graph_version: int, linking: LinkingReport
) -> ReasoningInput:
    """The reasoning input of a linked question, before retrieval; an error status when the
    question could not be linked (reported, never guessed)."""
    output = ReasoningInput(
        request_id=question.request_id,
        schema_version=SCHEMA_VERSION,
        question=question,
        hops=question.question.hops or settings.default_hops,
        top_k=question.question.top_k or settings.default_top_k,
        status=ResultStatus.RESULT_STATUS_OK,
        graph_version=graph_version,
    )
    output.timings.extend(question.timings)
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
    return output
