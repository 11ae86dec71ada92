"""Entity linking without servers: span candidates, scores, the decision rule, the linker."""

from __future__ import annotations

from typing import Any

import pytest

from autoglm.contracts import Mention
from autoglm.graph.linking import (
    AMBIGUITY_MARGIN,
    QUESTION_WORDS,
    Candidate,
    EntityLinker,
    Span,
    candidate_spans,
    decide,
    fulltext_groups,
    lucene_phrase,
    prefer_verbatim,
    span_score,
    token_weight_sum,
    tokenize,
)
from autoglm.nlp.keys import lookup_key, normalize_key
from autoglm.settings import Settings

MARGIN = 0.5
STRONG = 2.0


class FakeStore:
    """Answers the linker's two queries from a list of entity names."""

    def __init__(
        self, names: list[str], fulltext: dict[str, list[tuple[str, float]]] | None = None
    ):
        self.names = [normalize_key(n) for n in names]
        self.fulltext = fulltext or {}
        self.queries: list[str] = []

    async def run_read(self, cypher: str, /, **params: Any) -> list[dict[str, Any]]:
        if "lookups" in params:
            self.queries.append("exact")
            wanted = set(params["lookups"])
            return [
                {"key": n, "name": n, "lookup": lookup_key(n)}
                for n in self.names
                if lookup_key(n) in wanted
            ]
        self.queries.append("fulltext")
        if "queries" in params:
            return [
                {"index": q["index"], "key": n, "name": n, "lookup": lookup_key(n), "score": s}
                for q in params["queries"]
                for n, s in self.fulltext.get(q["query"], [])
            ]
        return [
            {"key": n, "name": n, "score": s} for n, s in self.fulltext.get(params["query"], [])
        ]


def spans_of(text: str, max_tokens: int = 14) -> dict[str, Span]:
    return {s.text: s for s in candidate_spans(text, tokenize(text), max_tokens)}


def score_of(text: str, piece: str, *, exact: bool = True, ner: bool = False) -> float:
    tokens = tokenize(text)
    return span_score(tokens, spans_of(text)[piece], exact_case=exact, ner=ner)


def candidate(text: str, piece: str, keys: list[str], score: float) -> Candidate:
    return Candidate(spans_of(text)[piece], [(k, k) for k in keys], score)


# --- tokens and spans --------------------------------------------------------------------------


def test_token_kinds_are_case_sensitive():
    kinds = [t.kind for t in tokenize("Who directed the Fury , Fall and fall under")]
    assert kinds == [
        "neutral",  # a capitalised first word that is a template word
        "question",
        "function",
        "content",
        "neutral",  # punctuation alone
        "content",  # "Fall" the film
        "function",
        "question",  # "fall under"
        "function",
    ]
    assert "directed" in QUESTION_WORDS and "the" not in QUESTION_WORDS


def test_candidate_spans_strip_edge_punctuation_in_every_amount():
    spans = spans_of("when was C.H.O.M.P.S., released")
    assert {"C.H.O.M.P.S.,", "C.H.O.M.P.S.", "C.H.O.M.P.S"} <= set(spans)
    quoted = spans_of('who wrote "The Matrix"?')
    assert {'"The Matrix"?', '"The Matrix"', "The Matrix", '"The Matrix'} <= set(quoted)
    assert quoted["The Matrix"].first == 2 and quoted["The Matrix"].last == 4


def test_candidate_spans_drop_a_possessive_and_respect_the_length_cap():
    assert "Spielberg" in spans_of("who acted in Spielberg's Jaws")
    assert "Ocean's Eleven" in spans_of("who directed Ocean's Eleven's remake")
    capped = spans_of("a b c d e", max_tokens=2)
    assert "a b" in capped and "a b c" not in capped


# --- scores --------------------------------------------------------------------------------------


def test_template_words_at_the_edge_cost_and_inside_do_not():
    text = "the films directed by John Ford starred which actors"
    assert score_of(text, "John Ford") == 2.5
    assert score_of(text, "directed by John Ford") == 1.0  # -1 "directed", -0.5 "by"
    moon = "who directed Amazon Women on the Moon"
    assert score_of(moon, "Amazon Women on the Moon") == 4.5
    assert score_of(moon, "Amazon") == 1.0  # exact case, a content neighbour


def test_lower_case_article_is_template_and_capitalised_one_is_name():
    fury = "what genres are the movies directed by the Fury director"
    assert score_of(fury, "Fury") > score_of(fury, "the Fury", exact=False) + MARGIN
    fog = "what genres do the films that share actors with The Fog fall under"
    assert score_of(fog, "The Fog") > score_of(fog, "Fog") + MARGIN


def test_exact_case_and_ner_bonuses():
    text = "which movies are about Clint Eastwood"
    base = score_of(text, "Clint Eastwood", exact=False)
    assert score_of(text, "Clint Eastwood") == base + 0.5
    assert score_of(text, "Clint Eastwood", ner=True) == base + 1.0


def test_uncased_text_does_not_charge_an_edge_article():
    tokens = tokenize("what is the genre of the fog")
    span = spans_of("what is the genre of the fog")["the fog"]
    assert token_weight_sum(tokens, span.first, span.last, cased=True) == 0.5
    assert token_weight_sum(tokens, span.first, span.last, cased=False) == 1.0


def test_fulltext_candidates_count_half():
    text = "movies directed by Spielberg"
    tokens = tokenize(text)
    span = spans_of(text)["Spielberg"]
    assert span_score(tokens, span, exact_case=False, ner=True, fulltext=True) == 1.0


# --- the decision rule ---------------------------------------------------------------------------


def test_clear_winner_is_the_anchor():
    text = "the films directed by John Ford starred which actors"
    decision = decide(
        [
            candidate(text, "John Ford", ["John Ford"], 2.5),
            candidate(text, "directed by John Ford", ["directed by John Ford"], 0.5),
            candidate(text, "actors", ["actors"], -0.5),
        ],
        MARGIN,
        STRONG,
    )
    assert [c.span.text for c in decision.anchors] == ["John Ford"] and not decision.ambiguous


def test_overlapping_near_tie_is_ambiguous_not_guessed():
    text = "who directed Hitchcock Psycho"
    decision = decide(
        [
            candidate(text, "Hitchcock Psycho", ["Hitchcock Psycho"], 1.4),
            candidate(text, "Psycho", ["Psycho"], 1.0),
        ],
        MARGIN,
        STRONG,
    )
    assert not decision.anchors
    assert [c.span.text for c in decision.ambiguous] == ["Hitchcock Psycho", "Psycho"]


def test_margin_is_inclusive():
    text = "The Descent, when was it released"
    decision = decide(
        [
            candidate(text, "The Descent,", ["The Descent"], 2.0),
            candidate(text, "Descent,", ["Descent"], 1.5),
        ],
        MARGIN,
        STRONG,
    )
    assert [c.keys for c in decision.anchors] == [frozenset({"The Descent"})]


def test_two_weak_disjoint_names_are_ambiguous():
    text = "the movies that share writers with the movie fall"
    decision = decide(
        [
            candidate(text, "writers", ["writers"], 1.0),
            candidate(text, "fall", ["Fall"], 1.0),
        ],
        MARGIN,
        STRONG,
    )
    assert not decision.anchors and len(decision.ambiguous) == 2


def test_strong_disjoint_names_are_all_anchors_best_first():
    text = "Which movies star Tom Hanks and Meg Ryan"
    decision = decide(
        [
            candidate(text, "Meg Ryan", ["Meg Ryan"], 3.0),
            candidate(text, "Tom Hanks", ["Tom Hanks"], 3.0),
            candidate(text, "Ryan", ["Ryan"], 1.0),
        ],
        MARGIN,
        STRONG,
    )
    assert [c.span.text for c in decision.anchors] == ["Tom Hanks", "Meg Ryan"]


def test_unclear_secondary_is_reported_next_to_the_anchor():
    text = "Which movies star Tom Hanks and Meg Ryan Smith"
    decision = decide(
        [
            candidate(text, "Tom Hanks", ["Tom Hanks"], 3.5),
            candidate(text, "Meg Ryan", ["Meg Ryan"], 2.5),
            candidate(text, "Ryan Smith", ["Ryan Smith"], 2.5),
        ],
        MARGIN,
        STRONG,
    )
    assert [c.span.text for c in decision.anchors] == ["Tom Hanks"]
    assert {c.span.text for c in decision.ambiguous} == {"Meg Ryan", "Ryan Smith"}


def test_the_same_entity_twice_is_one_anchor():
    text = "Jaws and Jaws"
    spans = candidate_spans(text, tokenize(text), 3)
    first, second = (s for s in spans if s.text == "Jaws")
    decision = decide(
        [Candidate(first, [("Jaws", "Jaws")], 2.5), Candidate(second, [("Jaws", "Jaws")], 2.5)],
        MARGIN,
        STRONG,
    )
    assert len(decision.anchors) == 1


def test_template_words_alone_never_anchor():
    text = "who is the director"
    decision = decide([candidate(text, "director", ["director"], -0.5)], MARGIN, STRONG)
    assert not decision.anchors and [c.span.text for c in decision.ambiguous] == ["director"]


def test_verbatim_reading_of_the_same_words_wins():
    text = "who acted in Moulin Rouge!"
    shorter = candidate(text, "Moulin Rouge", ["Moulin Rouge"], 2.5)
    verbatim = candidate(text, "Moulin Rouge!", ["Moulin Rouge!"], 2.5)
    assert prefer_verbatim([shorter, verbatim]) == [verbatim]
    decision = decide([shorter, verbatim], MARGIN, STRONG)
    assert [c.span.text for c in decision.anchors] == ["Moulin Rouge!"]


def test_no_candidates_no_decision():
    decision = decide([], MARGIN, STRONG)
    assert not decision.anchors and not decision.ambiguous


# --- helpers ---------------------------------------------------------------------------------


def test_lucene_phrase_escapes_everything_special():
    assert lucene_phrase('AC/DC: "Live"') == r'"AC\/DC\: \"Live\""'
    assert lucene_phrase("M*A*S*H (1970)?") == r'"M\*A\*S\*H \(1970\)\?"'
    assert lucene_phrase("a && b || !c") == r'"a \&& b \|| \!c"'


def test_fulltext_hits_group_case_variants():
    rows = [
        {"key": "Steven Spielberg", "name": "Steven Spielberg", "score": 2.0},
        {"key": "steven spielberg", "name": "steven spielberg", "score": 1.9},
        {"key": "Spielberg Jr", "name": "Spielberg Jr", "score": 1.0},
    ]
    groups = fulltext_groups(rows)
    assert groups[0][0] == 2.0 and len(groups[0][1]) == 2 and groups[1][0] == 1.0
    assert groups[0][0] >= AMBIGUITY_MARGIN * groups[1][0]


# --- the linker over a fake store ------------------------------------------------------------

NAMES = [
    "Jaws",
    "The Fury",
    "Fury",
    "Clint Eastwood",
    "clint eastwood",
    "actors",
    "director",
    "Steven Spielberg",
    "Fall",
    "writers",
]


def ner(text: str, piece: str) -> Mention:
    start = text.index(piece)
    return Mention(
        text=piece,
        label="PERSON",
        start_char=start,
        end_char=start + len(piece),
        key=normalize_key(piece),
        source="ner",
    )


async def test_brackets_keep_priority_over_the_text():
    linker = EntityLinker(FakeStore(NAMES))
    bracket = Mention(text="jaws", key="jaws", source="bracket")
    report = await linker.link([bracket], text="who directed jaws and the Fury")
    assert [a.key for a in report.anchors] == ["Jaws"]
    missing = Mention(text="Alien", key="Alien", source="bracket")
    report = await linker.link([missing], text="who directed Alien")
    assert not report.anchors and list(report.unlinked_mentions) == ["Alien"]


async def test_ngram_linking_without_ner():
    linker = EntityLinker(FakeStore(NAMES))
    report = await linker.link([], text="what genres are the movies directed by the Fury director")
    assert [(a.mention, a.key) for a in report.anchors] == [("Fury", "Fury")]
    assert report.anchors[0].score > 0 and not report.ambiguous_candidates


async def test_case_variants_exact_spelling_wins_and_uncased_links_all():
    linker = EntityLinker(FakeStore(NAMES))
    report = await linker.link([], text="which films did Clint Eastwood direct")
    assert [a.key for a in report.anchors] == ["Clint Eastwood"]
    report = await linker.link([], text="which films did Clint  Eastwood direct")
    assert [a.key for a in report.anchors] == ["Clint Eastwood"]  # spacing is not spelling
    report = await linker.link([], text="Which movies are about clint eastwood")
    assert [a.key for a in report.anchors] == ["clint eastwood"]
    # a question without capitals says nothing about case: both readings are anchors
    report = await linker.link([], text="what movies are about clint eastwood")
    assert sorted(a.key for a in report.anchors) == ["Clint Eastwood", "clint eastwood"]


async def test_ambiguity_is_reported_with_the_candidates():
    linker = EntityLinker(FakeStore(NAMES))
    report = await linker.link([], text="the movies that share writers with the movie fall")
    assert not report.anchors
    assert {a.key for a in report.ambiguous_candidates} == {"writers", "Fall"}


async def test_fulltext_for_ner_mentions_without_exact_name():
    text = "movies directed by Spielberg"
    store = FakeStore(NAMES, fulltext={'"Spielberg"': [("Steven Spielberg", 3.0)]})
    report = await EntityLinker(store).link([ner(text, "Spielberg")], text=text)
    assert [a.key for a in report.anchors] == ["Steven Spielberg"]
    assert store.queries == ["exact", "fulltext"]


async def test_unmatched_ner_mentions_are_reported():
    text = "who directed Zorblax Quux"
    store = FakeStore(NAMES)
    report = await EntityLinker(store).link([ner(text, "Zorblax Quux")], text=text)
    assert not report.anchors and list(report.unlinked_mentions) == ["Zorblax Quux"]


async def test_template_only_ner_mentions_skip_the_fulltext_index():
    text = "what were the release years of Jaws"
    store = FakeStore(NAMES)
    report = await EntityLinker(store).link([ner(text, "the release years")], text=text)
    assert [a.key for a in report.anchors] == ["Jaws"] and store.queries == ["exact"]


async def test_mentions_without_text_link_one_by_one():
    store = FakeStore(NAMES, fulltext={'"Spielberg"': [("Steven Spielberg", 3.0)]})
    report = await EntityLinker(store).link(
        [Mention(text="Spielberg", key="Spielberg", source="ner")]
    )
    assert [a.key for a in report.anchors] == ["Steven Spielberg"]


async def test_empty_question_links_nothing():
    store = FakeStore(NAMES)
    report = await EntityLinker(store).link([], text="   ")
    assert not report.anchors and not report.unlinked_mentions and store.queries == []


def test_linker_from_settings():
    settings = Settings(linking_ambiguity_margin=0.75, linking_max_span_tokens=6)
    linker = EntityLinker.from_settings(FakeStore([]), settings)
    assert (linker.margin, linker.max_span_tokens, linker.secondary_min_score) == (0.75, 6, 2.0)


@pytest.mark.parametrize(
    ("text", "gold"),
    [
        ("Manhunter, when was it released", "Manhunter"),
        ("the films directed by John Ford starred which actors", "John Ford"),
        ("who acted in the movie Moulin Rouge!", "Moulin Rouge!"),
        ("what are the genres of the movies whose actors also appear in Darkness", "Darkness"),
        ("The Blue Dahlia, when was it released", "The Blue Dahlia"),
    ],
)
async def test_metaqa_patterns(text, gold):
    names = [
        "Manhunter",
        "John Ford",
        "directed by John Ford",
        "actors",
        "Moulin Rouge",
        "Moulin Rouge!",
        "Darkness",
        "In Darkness",
        "The Blue Dahlia",
        "Blue",
    ]
    report = await EntityLinker(FakeStore(names)).link([], text=text)
    assert [a.key for a in report.anchors] == [gold]
