"""Entity linking: question mentions -> graph entities, with nothing guessed silently.

Two modes.

**Bracketed mentions** (``[Ginger Rogers]``) are the user's explicit choice and alone decide the
anchors: the exact spelling wins, a mention that only matches case variants links all of them
(``[clint eastwood]`` is the actor and the tag to a reader), and a bracketed name that is not in
the graph is reported in ``unlinked_mentions`` (never replaced by a near match).

**Questions without brackets** (``link(mentions, text=question.normalized_text)``) are linked by
scoring candidate spans of the text. Why this design:

* *Candidates.* Every word n-gram of the question (up to ``max_span_tokens`` words, with up
  to ``EDGE_PUNCTUATION`` characters of the punctuation glued to its edge words, or all of it,
  and without a possessive ``'s``) plus the parser's NER mentions. MetaQA names a topic
  entity verbatim, while spaCy's small NER model misses most film titles and tags ("Police",
  "Fall", "clint eastwood"), so n-grams find the entity; NER agreement is a bonus, and an NER
  mention that no name matches exactly goes to the full-text index (for names written
  differently from the graph, "Spielberg").
* *Lookup.* All candidate strings are looked up in **one** query on the indexed case-folded
  ``lookup`` property (an index seek per string; ~100-300 strings for a MetaQA question). The
  full-text index is asked only for NER mentions with no exact hit that hold a content word
  (one batched query, Lucene syntax escaped by :func:`lucene_phrase`).
* *Scoring* (:func:`token_weight_sum`, :func:`span_score`). A templated question is template
  words around a name, so a span scores how well it reads as "the name" with the rest as
  template: a content word in the span +1; a template word inside it +0.5 ("Amazon Women on the
  Moon"); at its edge a function word -0.5 and a question word -1 (``the Fury`` and
  ``directed by John Ford`` are names in the KB, but the question means ``Fury`` and
  ``John Ford``); a content word just outside it -0.5 (the name goes on); punctuation, and a
  capitalised first word that is a template word in lower case, +0.5 ("The Blue Dahlia, when
  was it released", "Who directed Jaws"). A template word is a *lower-case* function word
  (spaCy's stop words) or question word (:data:`QUESTION_WORDS`): a capitalised word is content
  (``Fall`` the film against ``fall under``). Bonuses: +0.5 when the span spells an entity key
  exactly, case included, +0.5 when an NER mention agrees. Full-text candidates count their
  words at half weight. A question without any capital letter carries no case information: no
  exact-case bonus, every case variant is linked, and an edge function word costs nothing
  (``the fog`` may be "The Fog" or "Fog").
* *Decision* (:func:`decide`): the best span becomes the anchor only when every rival - an
  overlapping span naming other entities, or a disjoint weak one - scores at least ``margin``
  (0.5) below it, and when it holds more than template words (score > 0: "director" and "film"
  are tags too). Otherwise there is no anchor and the close candidates are listed in
  ``ambiguous_candidates`` (the grounder then answers ``RESULT_STATUS_NO_ENTITY`` and names
  them). Disjoint strong spans (score >= ``secondary_min_score``, 2.0: two content words, or
  one with exact case and NER) are further anchors, after the top one ("films with Tom Hanks
  and Meg Ryan"). NER mentions that nothing matched, and that no decided span covers, are
  listed in ``unlinked_mentions``. Scores in ``LinkedEntity.score`` are these span scores.

:data:`QUESTION_WORDS` holds the 79 words that occur outside the brackets of the MetaQA dev
questions and are not spaCy stop words, kept here verbatim so the list is small and
reviewable. Mined from the deterministic train part of the dev split alone
(``autoglm.training.metaqa.is_validation(question, 0.2)`` false) the list is the same. Without
it (stop words only), top-anchor accuracy on all dev questions drops from 100% to 97.4 / 99.7 /
94.5% (1 / 2 / 3 hops; bench/results/linking.json), mostly reported ambiguous ("actors" and
"writer" are tags too), 0.5 / 0.0 / 0.6% wrong.

Without ``text`` (callers holding only mentions) each mention is linked on its own: exact
lookup, else full-text for non-bracket mentions, as before n-gram linking existed.

**Bounded work.** A question is untrusted input, and linking once tried every combination of
the punctuation around a span's edge words: a 997-character question of brackets and short
words made ~249,000 candidate spans, 12 s of CPU and ~320 MB, on the event loop, longer than a
Kafka heartbeat. Now an edge keeps at most ``EDGE_PUNCTUATION`` (4) characters of its
punctuation or all of it (every MetaQA name is among these; ``"If...."?`` still yields
``If....``), n-grams are enumerated shortest first and stop at ``max_spans`` (1,000; a MetaQA
question has at most a few hundred), and at most ``max_mentions`` parser mentions are used (a
parsed question arrives from a topic anyone may write). Any 1,000-character question then links
in a few milliseconds and well under 10 MB (``tests/unit/test_linking_limits.py``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from spacy.lang.en.stop_words import STOP_WORDS

from autoglm.contracts import LinkedEntity, LinkingReport, Mention
from autoglm.graph.coalesce import Coalescer
from autoglm.nlp.keys import lookup_key, normalize_key
from autoglm.settings import Settings

_LUCENE_SPECIAL = re.compile(r'([+\-!(){}\[\]^"~*?:\\/]|&&|\|\|)')

_EXACT = """
MATCH (e:Entity) WHERE e.lookup IN $lookups
RETURN e.key AS key, e.name AS name, e.lookup AS lookup
"""
_FULLTEXT = """
CALL db.index.fulltext.queryNodes('entity_names', $query, {limit: $limit})
YIELD node, score
RETURN node.key AS key, node.name AS name, score
"""
_FULLTEXT_BATCH = """
UNWIND $queries AS q
CALL (q) {
  CALL db.index.fulltext.queryNodes('entity_names', q.query, {limit: $limit})
  YIELD node, score
  RETURN node.key AS key, node.name AS name, node.lookup AS lookup, score
}
RETURN q.index AS index, key, name, lookup, score
"""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# A full-text candidate must beat the runner-up by this factor to be taken without doubt.
AMBIGUITY_MARGIN = 1.2

# Words that make up question templates rather than names (see the module docstring).
QUESTION_WORDS = _words(
    """
    act acted actor actors appear appeared appears applicable audiences author co-directed
    co-directors co-star co-starred co-stars co-writers co-wrote considered creator date dates
    describe described describing direct directed director directors fall famous film films
    genre genres good kind language languages listed main movie movies opinion people person
    popular popularity primary rate rating release released screenplay screenwriter
    screenwriters script scriptwriter share sort spoken star starred stars story terms think
    topics type types who's words world write writer writers written wrote year years
    """
)
FUNCTION_WORDS = frozenset(STOP_WORDS)

# Token weights and bonuses of span_score.
CONTENT_WEIGHT = 1.0
INNER_TEMPLATE_WEIGHT = 0.5
EDGE_FUNCTION_WEIGHT = -0.5
EDGE_QUESTION_WEIGHT = -1.0
ADJACENT_CONTENT_WEIGHT = -0.5
NEUTRAL_WEIGHT = 0.5
EXACT_CASE_BONUS = 0.5
NER_BONUS = 0.5
FULLTEXT_FACTOR = 0.5
# A span of template words alone ("director", "film" are tags too) is never an anchor.
MIN_ANCHOR_SCORE = 0.0

# Characters of the punctuation glued to a span's edge word that are tried one by one (beyond
# them only "all of it"): the longest such run in a MetaQA name is 4 ("If...."), so "If....?"
# yields If / If. / ... / If.... / If....? without trying every prefix of "((((((((".
EDGE_PUNCTUATION = 4
# Most candidate spans of one question, and most parser mentions considered (see above).
MAX_SPANS = 1_000
MAX_MENTIONS = 32
# Most spans a decision takes as anchors or ambiguity (each is checked against every candidate):
# a question names one to a few entities, a graph that names every n-gram must not cost O(n^2).
MAX_DECIDED_SPANS = 16

_TOKEN = re.compile(r"\S+")
_LEADING = "\"'([{\u201c\u2018\u00ab"
_TRAILING = "\"'.,;:!?)]}\u201d\u2019\u00bb"
_POSSESSIVE = re.compile("(?:'s|\u2019s|')$")
_WORD = re.compile(r"\w")


def lucene_phrase(text: str) -> str:
    """A Lucene phrase query for ``text`` with every special character escaped."""
    return '"' + _LUCENE_SPECIAL.sub(r"\\\1", text) + '"'


# --- Candidate spans and their scores (pure; unit-tested without servers) ----------------------


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    core_start: int  # the token without the punctuation glued to its edges
    core_end: int
    kind: str  # "content", "function", "question" or "neutral"


@dataclass(frozen=True)
class Span:
    """A candidate name: ``text[start:end]``, covering question tokens ``first..last-1``."""

    start: int
    end: int
    first: int
    last: int
    text: str

    def overlaps(self, other: Span) -> bool:
        return self.first < other.last and other.first < self.last


@dataclass
class Candidate:
    """A span and the graph entities it names, with its linking score."""

    span: Span
    entities: list[tuple[str, str]]  # (key, name), exact-case keys only when there are some
    score: float
    via: str = "exact"  # "exact" (lookup key) or "fulltext"
    ner: bool = False

    @cached_property
    def keys(self) -> frozenset[str]:
        return frozenset(key for key, _ in self.entities)


@dataclass
class Decision:
    anchors: list[Candidate] = field(default_factory=list)
    ambiguous: list[Candidate] = field(default_factory=list)


def tokenize(
    text: str,
    function_words: frozenset[str] = FUNCTION_WORDS,
    question_words: frozenset[str] = QUESTION_WORDS,
) -> list[Token]:
    """Whitespace tokens of a question, each classified for :func:`token_weight_sum`.

    Kinds: "function" (a stop word) and "question" (a word of question templates) when written
    in lower case, "neutral" (punctuation alone, or a capitalised first word that is a template
    word in lower case), else "content".
    """
    tokens = []
    for index, match in enumerate(_TOKEN.finditer(text)):
        word = match.group()
        lead = len(word) - len(word.lstrip(_LEADING))
        trail = len(word) - len(word.rstrip(_TRAILING))
        core = word[lead : len(word) - trail] if lead + trail < len(word) else ""
        if not core or not _WORD.search(core):
            kind = "neutral"
        elif core in question_words:
            kind = "question"
        elif core in function_words:
            kind = "function"
        elif index == 0 and (core.lower() in question_words or core.lower() in function_words):
            kind = "neutral"  # "Who directed Jaws", "The Blue Dahlia, when was it released"
        else:
            kind = "content"
        end = match.end()
        core_start = match.start() + lead
        core_end = max(core_start, end - trail)
        tokens.append(Token(match.start(), end, core_start, core_end, kind))
    return tokens


def candidate_spans(
    text: str, tokens: Sequence[Token], max_tokens: int, max_spans: int = MAX_SPANS
) -> list[Span]:
    """The n-grams of up to ``max_tokens`` tokens, shortest first, at most ``max_spans``.

    Each n-gram comes with its edge punctuation kept in every amount up to
    ``EDGE_PUNCTUATION`` characters and in full, and without a possessive ``'s``.
    """
    spans: dict[tuple[int, int], Span] = {}
    starts = [_edge_positions(t.core_start, t.start, -1) for t in tokens]
    ends = [_edge_positions(t.core_end, t.end, 1) for t in tokens]
    owners = [_possessive_cut(text, t) for t in tokens]
    for length in range(1, min(max_tokens, len(tokens)) + 1):
        for first in range(len(tokens) - length + 1):
            last = first + length
            cut = owners[last - 1]
            for start in starts[first]:
                for end in ends[last - 1]:
                    if end > start and (start, end) not in spans:
                        spans[start, end] = Span(start, end, first, last, text[start:end])
                if cut is not None and cut > start and (start, cut) not in spans:
                    spans[start, cut] = Span(start, cut, first, last, text[start:cut])
                if len(spans) >= max_spans:
                    return list(spans.values())[:max_spans]
    return list(spans.values())


def _edge_positions(core: int, outer: int, step: int) -> tuple[int, ...]:
    """Where a span may begin (``step`` -1) or end (+1) in a token: at its core, up to
    ``EDGE_PUNCTUATION`` characters into the glued punctuation, or at the token's edge."""
    inner = range(core, core + step * (EDGE_PUNCTUATION + 1), step)
    kept = [p for p in inner if (p >= outer if step < 0 else p <= outer)]
    return tuple(dict.fromkeys([*kept, outer]))


def _possessive_cut(text: str, token: Token) -> int | None:
    """Where the owner ends in a token whose core is a possessive ("Ocean's" -> "Ocean")."""
    owner = _POSSESSIVE.search(text, token.core_start, token.core_end)
    if owner is None or owner.end() != token.core_end:
        return None
    return owner.start()


def span_for_chars(text: str, tokens: Sequence[Token], start: int, end: int) -> Span | None:
    """The span of a mention given by character offsets (e.g. an NER entity)."""
    covered = [i for i, t in enumerate(tokens) if t.start < end and start < t.end]
    if not covered or start < 0 or end > len(text) or end <= start:
        return None
    return Span(start, end, covered[0], covered[-1] + 1, text[start:end])


def token_weight_sum(
    tokens: Sequence[Token], first: int, last: int, *, cased: bool = True
) -> float:
    """How well ``tokens[first:last]`` reads as a name set in template words.

    Content word +1; template or neutral word inside +0.5; at an edge a function word -0.5 and
    a question word -1; a content word just outside either edge -0.5 (a name sits among
    template words, so a content neighbour says the name goes on).
    """
    inside = tokens[first:last]

    def templated(token: Token) -> bool:
        return token.kind in ("function", "question")

    lead = 0
    while lead < len(inside) and templated(inside[lead]):
        lead += 1
    trail = 0
    while trail < len(inside) - lead and templated(inside[len(inside) - 1 - trail]):
        trail += 1
    total = 0.0
    for position, token in enumerate(inside):
        if token.kind == "content":
            total += CONTENT_WEIGHT
        elif token.kind == "neutral":
            total += NEUTRAL_WEIGHT
        elif position < lead or position >= len(inside) - trail:
            if token.kind == "question":
                total += EDGE_QUESTION_WEIGHT
            elif cased:  # "the Fury": lower-case "the" is the template's, "The Fury" a title's
                total += EDGE_FUNCTION_WEIGHT
        else:
            total += INNER_TEMPLATE_WEIGHT
    for outside in (first - 1, last):
        if 0 <= outside < len(tokens) and tokens[outside].kind == "content":
            total += ADJACENT_CONTENT_WEIGHT
    return total


def span_score(
    tokens: Sequence[Token],
    span: Span,
    *,
    exact_case: bool,
    ner: bool,
    fulltext: bool = False,
    cased: bool = True,
) -> float:
    words = token_weight_sum(tokens, span.first, span.last, cased=cased)
    if fulltext:
        words *= FULLTEXT_FACTOR
    return words + (EXACT_CASE_BONUS if exact_case else 0.0) + (NER_BONUS if ner else 0.0)


def decide(candidates: Sequence[Candidate], margin: float, secondary_min_score: float) -> Decision:
    """Anchors where the best candidate is clear of its rivals by ``margin``; else ambiguity.

    1. Of candidates on the same words, only the most verbatim count (:func:`prefer_verbatim`).
    2. The top candidate (highest score; then more words; then earlier) is the first anchor if
       its score is above ``MIN_ANCHOR_SCORE`` and every *rival* scores at least ``margin``
       below it. A rival names other entities and either overlaps the top span (another reading
       of the same words) or lies elsewhere but is weak (below ``secondary_min_score``): two
       weak names in one question cannot both be the topic, and nothing tells which one is.
       Otherwise there is no anchor and the top candidate and its close rivals are ambiguous.
    3. Every other candidate scoring at least ``secondary_min_score``, disjoint from the spans
       already taken and naming new entities, is a further anchor if it is clear (by
       ``margin``) of the candidates overlapping it; if not, it and they are reported ambiguous
       next to the anchors. At most ``MAX_DECIDED_SPANS`` spans are taken.
    """
    decision = Decision()
    ranked = sorted(
        prefer_verbatim(candidates),
        key=lambda c: (-c.score, -(c.span.last - c.span.first), c.span.start),
    )
    if not ranked:
        return decision

    def close_rivals(of: Candidate, *, disjoint_weak: bool) -> list[Candidate]:
        return [
            c
            for c in ranked
            if c is not of
            and c.keys != of.keys
            and of.score - c.score < margin
            and (c.span.overlaps(of.span) or (disjoint_weak and c.score < secondary_min_score))
        ]

    top = ranked[0]
    close = close_rivals(top, disjoint_weak=True)
    if close or top.score <= MIN_ANCHOR_SCORE:
        decision.ambiguous = _distinct([top, *close])
        return decision
    decision.anchors.append(top)
    taken = [top.span]
    linked = set(top.keys)
    for candidate in ranked[1:]:
        if candidate.score < secondary_min_score or len(taken) >= MAX_DECIDED_SPANS:
            break
        if candidate.keys <= linked or any(candidate.span.overlaps(s) for s in taken):
            continue
        taken.append(candidate.span)
        contenders = close_rivals(candidate, disjoint_weak=False)
        if contenders:
            decision.ambiguous.extend(_distinct([candidate, *contenders]))
        else:
            decision.anchors.append(candidate)
            linked.update(candidate.keys)
    return decision


def prefer_verbatim(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Of candidates on the same words, those that read the most of the typed characters.

    "Moulin Rouge!" and "Moulin Rouge" are both films; a question that says "Moulin Rouge!"
    means the first, so a name that drops punctuation the user typed is no rival to one that
    keeps it. Full-text candidates are left alone.
    """
    widest: dict[tuple[int, int], int] = {}
    for c in candidates:
        if c.via == "exact":
            words = (c.span.first, c.span.last)
            widest[words] = max(widest.get(words, 0), c.span.end - c.span.start)
    return [
        c
        for c in candidates
        if c.via != "exact" or c.span.end - c.span.start == widest[(c.span.first, c.span.last)]
    ]


def _distinct(candidates: Iterable[Candidate]) -> list[Candidate]:
    seen: set[frozenset[str]] = set()
    kept = []
    for candidate in candidates:
        if candidate.keys not in seen:
            seen.add(candidate.keys)
            kept.append(candidate)
    return kept


def fulltext_groups(
    rows: Sequence[dict[str, object]],
) -> list[tuple[float, list[tuple[str, str]]]]:
    """Full-text hits grouped by lookup key (case variants are one name), best first."""
    groups: dict[str, tuple[float, list[tuple[str, str]]]] = {}
    for row in rows:
        lookup = str(row.get("lookup") or lookup_key(str(row["name"])))
        score = float(row["score"])  # type: ignore[arg-type]
        best, members = groups.get(lookup, (score, []))
        members.append((str(row["key"]), str(row["name"])))
        groups[lookup] = (max(best, score), members)
    return sorted(groups.values(), key=lambda g: -g[0])


# --- The linker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """What n-gram linking of one question looks up: its tokens, its spans with their lookup
    keys, the parser's mentions placed on the tokens."""

    tokens: list[Token]
    spans: list[tuple[Span, str]]
    mention_spans: list[tuple[Mention, Span]]
    ner_lookups: set[str]
    cased: bool

    @property
    def lookups(self) -> set[str]:
        return {lookup for _, lookup in self.spans}


class ReadStore(Protocol):
    """What linking needs of ``GraphStore`` (a fake with this method serves unit tests)."""

    async def run_read(self, cypher: str, /, **params: Any) -> list[dict[str, Any]]: ...


class EntityLinker:
    def __init__(
        self,
        store: ReadStore,
        fulltext_candidates: int = 5,
        *,
        max_span_tokens: int = 14,
        margin: float = 0.5,
        secondary_min_score: float = 2.0,
        max_spans: int = MAX_SPANS,
        max_mentions: int = MAX_MENTIONS,
        function_words: frozenset[str] = FUNCTION_WORDS,
        question_words: frozenset[str] = QUESTION_WORDS,
    ) -> None:
        self.store = store
        self.fulltext_candidates = fulltext_candidates
        self.max_span_tokens = max_span_tokens
        self.margin = margin
        self.secondary_min_score = secondary_min_score
        self.max_spans = max_spans
        self.max_mentions = max_mentions
        self.function_words = function_words
        self.question_words = question_words
        self._lookups: Coalescer[str, list[tuple[str, str]]] = Coalescer(self._fetch_exact)

    @classmethod
    def from_settings(cls, store: ReadStore, settings: Settings) -> EntityLinker:
        return cls(
            store,
            settings.linking_fulltext_candidates,
            max_span_tokens=settings.linking_max_span_tokens,
            margin=settings.linking_ambiguity_margin,
            secondary_min_score=settings.linking_secondary_min_score,
            max_spans=settings.linking_max_spans,
            max_mentions=settings.linking_max_mentions,
        )

    async def link(self, mentions: Sequence[Mention], text: str | None = None) -> LinkingReport:
        """Link a question's mentions; ``text`` (brackets removed) enables n-gram linking."""
        brackets = [m for m in mentions if m.source == "bracket"][: self.max_mentions]
        # A bracketed mention is the user's explicit choice: it alone decides the anchors.
        if brackets or not (text and text.strip()):
            return await self._link_mentions(brackets or list(mentions)[: self.max_mentions])
        return await self._link_text(text, list(mentions)[: self.max_mentions])

    # -- mentions one by one (brackets; callers without text) --

    async def _link_mentions(self, mentions: Sequence[Mention]) -> LinkingReport:
        report = LinkingReport()
        mentions = [m for m in mentions if m.text.strip()]
        if not mentions:
            return report
        by_lookup = await self._exact({lookup_key(m.text) for m in mentions})
        for mention in mentions:
            matches = by_lookup.get(lookup_key(mention.text), [])
            exact = [m for m in matches if m[0] == mention.key]
            # The exact spelling wins; otherwise every case variant is the same name to a reader
            # ("Clint Eastwood" the actor, "clint eastwood" the tag) and all become anchors.
            for key, name in exact or matches:
                report.anchors.append(
                    LinkedEntity(mention=mention.text, key=key, name=name, score=1.0)
                )
            if matches:
                continue
            if mention.source == "bracket":
                report.unlinked_mentions.append(mention.text)
            else:
                await self._link_fulltext(mention, report)
        return report

    async def _link_fulltext(self, mention: Mention, report: LinkingReport) -> None:
        rows = await self.store.run_read(
            _FULLTEXT, query=lucene_phrase(mention.text), limit=self.fulltext_candidates
        )
        groups = fulltext_groups(rows)
        if not groups:
            report.unlinked_mentions.append(mention.text)
            return
        best, members = groups[0]
        runner_up = groups[1][0] if len(groups) > 1 else 0.0
        if best >= AMBIGUITY_MARGIN * runner_up:
            report.anchors.extend(
                LinkedEntity(
                    mention=mention.text, key=key, name=name, score=best / (best + runner_up)
                )
                for key, name in members
            )
        else:
            report.ambiguous_candidates.extend(
                LinkedEntity(mention=mention.text, key=key, name=name, score=score)
                for score, group in groups
                for key, name in group
            )

    # -- n-gram linking of a question text --

    async def _link_text(self, text: str, mentions: Sequence[Mention]) -> LinkingReport:
        # The pure parts (spans, scores, the decision) are CPU work of up to a few milliseconds
        # for a long question: they run in a worker thread, off the event loop that keeps the
        # Kafka heartbeats and the other questions of the batch going.
        prepared = await asyncio.to_thread(self._prepare, text, mentions)
        by_lookup = await self._exact(prepared.lookups)
        candidates, unmatched = await asyncio.to_thread(self._exact_candidates, prepared, by_lookup)
        unlinked: list[tuple[Mention, Span]] = []
        if unmatched:
            found, unlinked = await self._fulltext_candidates(
                prepared.tokens, unmatched, prepared.cased
            )
            candidates.extend(found)
        return await asyncio.to_thread(self._report, candidates, unlinked)

    def _prepare(self, text: str, mentions: Sequence[Mention]) -> _Prepared:
        tokens = tokenize(text, self.function_words, self.question_words)
        spans = candidate_spans(text, tokens, self.max_span_tokens, self.max_spans)
        ner_mentions = [m for m in mentions if m.text.strip()]
        mention_spans: list[tuple[Mention, Span]] = []
        for mention in ner_mentions:
            span = span_for_chars(text, tokens, mention.start_char, mention.end_char)
            if span is None or lookup_key(span.text) != lookup_key(mention.text):
                span = _find_span(text, tokens, mention.text)
            if span is not None:
                mention_spans.append((mention, span))
        known = {(s.start, s.end) for s in spans}
        spans.extend(s for _, s in mention_spans if (s.start, s.end) not in known)
        return _Prepared(
            tokens=tokens,
            spans=[(s, lookup_key(s.text)) for s in spans],
            mention_spans=mention_spans,
            ner_lookups={lookup_key(m.text) for m in ner_mentions if m.source == "ner"},
            # A question without a capital letter says nothing about case: no exact-case reading.
            cased=any(ch.isupper() for ch in text),
        )

    def _exact_candidates(
        self, prepared: _Prepared, by_lookup: dict[str, list[tuple[str, str]]]
    ) -> tuple[list[Candidate], list[tuple[Mention, Span]]]:
        """Candidates of the spans that name entities, and the NER mentions left for the
        full-text index."""
        tokens, cased = prepared.tokens, prepared.cased
        candidates: list[Candidate] = []
        for span, lookup in prepared.spans:
            matches = by_lookup.get(lookup, [])
            if not matches:
                continue
            spelled = normalize_key(span.text)
            exact = [m for m in matches if m[0] == spelled] if cased else []
            ner = lookup in prepared.ner_lookups
            score = span_score(tokens, span, exact_case=bool(exact), ner=ner, cased=cased)
            candidates.append(Candidate(span, exact or matches, score, "exact", ner))

        # NER mentions that no exact name explains go to the full-text index, unless they are
        # template words alone (spaCy tags "the release years" as a DATE).
        unmatched = [
            (m, s)
            for m, s in prepared.mention_spans
            if not by_lookup.get(lookup_key(s.text))
            and any(t.kind == "content" for t in tokens[s.first : s.last])
            and not any(c.score > MIN_ANCHOR_SCORE and c.span.overlaps(s) for c in candidates)
        ]
        return candidates, unmatched

    def _report(
        self, candidates: Sequence[Candidate], unlinked: Sequence[tuple[Mention, Span]]
    ) -> LinkingReport:
        decision = decide(candidates, self.margin, self.secondary_min_score)
        report = LinkingReport()
        for candidate in decision.anchors:
            report.anchors.extend(_linked(candidate))
        for candidate in decision.ambiguous:
            report.ambiguous_candidates.extend(_linked(candidate))
        decided = [c.span for c in (*decision.anchors, *decision.ambiguous)]
        report.unlinked_mentions.extend(
            m.text for m, s in unlinked if not any(s.overlaps(d) for d in decided)
        )
        return report

    async def _fulltext_candidates(
        self, tokens: Sequence[Token], unmatched: Sequence[tuple[Mention, Span]], cased: bool
    ) -> tuple[list[Candidate], list[tuple[Mention, Span]]]:
        """Candidates from the full-text index, and the mentions it found nothing for."""
        queries = [
            {"index": i, "query": lucene_phrase(m.text)} for i, (m, _) in enumerate(unmatched)
        ]
        rows = await self.store.run_read(
            _FULLTEXT_BATCH, queries=queries, limit=self.fulltext_candidates
        )
        per_query: dict[int, list[dict[str, object]]] = {}
        for row in rows:
            per_query.setdefault(int(row["index"]), []).append(row)
        candidates: list[Candidate] = []
        unlinked: list[tuple[Mention, Span]] = []
        for index, (mention, span) in enumerate(unmatched):
            groups = fulltext_groups(per_query.get(index, []))
            if not groups:
                unlinked.append((mention, span))
                continue
            ner = mention.source == "ner"
            score = span_score(tokens, span, exact_case=False, ner=ner, fulltext=True, cased=cased)
            best = groups[0][0]
            # Lucene's near-ties (within AMBIGUITY_MARGIN) are candidates of equal standing,
            # which decide() reports as ambiguous; a clear Lucene winner stands alone.
            candidates.extend(
                Candidate(span, members, score, "fulltext", ner)
                for lucene, members in groups
                if lucene * AMBIGUITY_MARGIN >= best
            )
        return candidates, unlinked

    async def _exact(self, lookups: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        """The entities of each lookup key that has any; concurrent questions share a query."""
        wanted = sorted({lookup for lookup in lookups if lookup})
        found = await self._lookups.load_many(wanted)
        return {lookup: matches for lookup, matches in zip(wanted, found, strict=True) if matches}

    async def _fetch_exact(self, lookups: list[str]) -> list[list[tuple[str, str]]]:
        by_lookup: dict[str, list[tuple[str, str]]] = {}
        for row in await self.store.run_read(_EXACT, lookups=sorted(set(lookups))):
            by_lookup.setdefault(row["lookup"], []).append((row["key"], row["name"]))
        return [sorted(by_lookup.get(lookup, [])) for lookup in lookups]


def _find_span(text: str, tokens: Sequence[Token], mention: str) -> Span | None:
    """A mention without usable offsets, found in the text (case-insensitively)."""
    at = text.casefold().find(mention.casefold())
    if at < 0:
        return None
    return span_for_chars(text, tokens, at, at + len(mention))


def _linked(candidate: Candidate) -> list[LinkedEntity]:
    return [
        LinkedEntity(mention=candidate.span.text, key=key, name=name, score=candidate.score)
        for key, name in candidate.entities
    ]
