"""Question-guided retrieval without servers: the beam's decisions, the path scorer, and the
retriever on an in-memory graph with the semantics of the Neo4j queries."""

from __future__ import annotations

import math

import pytest

from autoglm.graph.path_scoring import (
    RelationPathScorer,
    Step,
    content_words,
    path_phrase,
    scoring_text,
    stem_match,
)
from autoglm.graph.retrieval import (
    Candidate,
    Expansion,
    GuidanceParams,
    RetrievalCaps,
    SubgraphRetriever,
    branching_cost,
    fit_to_budget,
    hop_budget,
    shortlist,
)
from tests.retrieval_toys import FILMS, HUB_FILMS, TOY_KB, InMemoryGraph, bag_of_words_embed

DIRECTED = Step("directed_by", True)
DIRECTED_OF = Step("directed_by", False)
GENRE = Step("has_genre", True)


def _candidate(name: str, score: float, targets: int = 1, edges: int | None = None) -> Candidate:
    return Candidate(0, (Step(name, True),), targets, targets if edges is None else edges, score)


def _edges(subgraph) -> set[tuple[str, str, str]]:
    return {
        (subgraph.nodes[s].key, subgraph.relation_types[r], subgraph.nodes[t].key)
        for s, t, r in zip(
            subgraph.edge_source, subgraph.edge_target, subgraph.edge_relation, strict=True
        )
    }


@pytest.fixture
def toy_graph() -> InMemoryGraph:
    return InMemoryGraph(TOY_KB)


@pytest.fixture
def scorer() -> RelationPathScorer:
    return RelationPathScorer(bag_of_words_embed, name="bag-of-words")


# --- the beam's decisions ----------------------------------------------------------------------


def test_shortlist_keeps_the_margin_at_least_min_keep_and_at_most_the_width():
    candidates = [_candidate(f"r{n}", score) for n, score in enumerate([0.9, 0.85, 0.5, 0.4, 0.3])]
    names = lambda kept: [c.path[0].relation for c in kept]  # noqa: E731
    pruning = {"expand_all_nodes": 0}
    assert names(shortlist(candidates, GuidanceParams(0.1, 1, 10, **pruning))) == ["r0", "r1"]
    # never fewer than min_keep, whatever the margin says
    assert names(shortlist(candidates, GuidanceParams(0.1, 3, 10, **pruning))) == [
        "r0",
        "r1",
        "r2",
    ]
    # the width caps the margin
    assert names(shortlist(candidates, GuidanceParams(1.0, 1, 2, **pruning))) == ["r0", "r1"]
    # a hop that is small as a whole is not pruned at all
    assert len(shortlist(candidates, GuidanceParams(0.1, 1, 2, expand_all_nodes=5))) == 5
    assert len(shortlist(candidates, GuidanceParams(0.1, 1, 2, expand_all_nodes=4))) == 2
    # unguided: everything, smallest first
    sized = [_candidate("big", 0.0, 50), _candidate("small", 0.0, 2)]
    assert names(shortlist(sized, None)) == ["small", "big"]


def test_shortlist_order_has_a_total_tie_break():
    a, b = _candidate("a", 0.5, 3), _candidate("b", 0.5, 3)
    guidance = GuidanceParams(expand_all_nodes=0)
    assert shortlist([b, a], guidance) == shortlist([a, b], guidance) == [a, b]


def test_budget_takes_whole_paths_skips_hubs_and_never_returns_nothing():
    best, hub, small = (
        _candidate("best", 0.9, 10),
        _candidate("hub", 0.8, 500),
        _candidate("small", 0.7, 5),
    )
    expansions, truncated = fit_to_budget([best, hub, small], node_budget=100, edge_budget=1000)
    assert [(e.candidate, e.limit) for e in expansions] == [(best, 10), (small, 5)]
    assert truncated
    # nothing fits whole: the best is taken partially rather than nothing
    expansions, truncated = fit_to_budget([hub, best], node_budget=8, edge_budget=1000)
    assert [(e.candidate, e.limit) for e in expansions] == [(hub, 8)] and truncated
    # edges count too: a dense path does not fit whole in a small edge budget
    dense = _candidate("dense", 1.0, 5, edges=50)
    assert fit_to_budget([dense, small], 100, 20) == ([Expansion(small, 5)], True)
    assert fit_to_budget([best], node_budget=0, edge_budget=10) == ([], True)
    assert fit_to_budget([], 10, 10) == ([], False)


def test_hop_budget_shares_what_is_left_between_the_hops_to_come():
    assert hop_budget(2000, 1, 3) == 666
    assert hop_budget(2000, 400, 2) == 800
    assert hop_budget(2000, 400, 1) == 1600
    assert hop_budget(10, 12, 1) == 0


def test_branching_cost_charges_hubs_not_people():
    assert branching_cost(targets=30, frontier=3, free_branching=10) == 0.0
    assert branching_cost(targets=4000, frontier=1, free_branching=10) == pytest.approx(
        math.log(400)
    )
    assert branching_cost(targets=0, frontier=0, free_branching=10) == 0.0


# --- the path scorer ---------------------------------------------------------------------------


def test_scoring_text_drops_brackets_and_the_anchor_names():
    text = scoring_text("Who DIRECTED [The Director]  in 1999?", ["The Director"])
    assert text == "who directed in 1999?"
    assert scoring_text("films by [Jaws]", []) == "films by jaws"
    # a short name is removed as a word, not from inside other words
    assert scoring_text("what other films star [Her]", ["Her"]) == "what other films star"


def test_crude_stems_match_paraphrases_of_relation_names():
    assert stem_match("directors", "directed")
    assert stem_match("screenwriters", "written")  # the relation's stem inside the word
    assert not stem_match("write", "wr")  # short relation words need the whole prefix
    assert not stem_match("acted", "actors")
    assert content_words("Who is the writer of the film?") == ["who", "writer", "film"]


def test_scorer_prefers_the_relation_the_question_names(scorer):
    question = scorer.encode_question(scoring_text("which genre is [Jaws]", ["Jaws"]))
    paths = [(DIRECTED,), (GENRE,), (Step("release_year", True),)]
    scores = scorer.score(question, paths)
    assert max(range(3), key=scores.__getitem__) == 1
    assert all(s == round(s, 4) for s in scores)
    # same inputs, same scores, whatever else was scored before
    assert scorer.score(question, list(reversed(paths))) == list(reversed(scores))
    assert path_phrase((DIRECTED, DIRECTED_OF)) == "directed by directed by of"


def test_scorer_fingerprint_changes_with_what_scores_depend_on():
    a = RelationPathScorer(bag_of_words_embed, name="x").fingerprint
    assert a == RelationPathScorer(bag_of_words_embed, name="x").fingerprint
    assert a != RelationPathScorer(bag_of_words_embed, name="y").fingerprint
    assert a != RelationPathScorer(bag_of_words_embed, name="x", lexical_weight=0.1).fingerprint


# --- the retriever on an in-memory graph -------------------------------------------------------


async def test_guided_retrieval_follows_the_question_past_the_hub(toy_graph, scorer):
    retriever = SubgraphRetriever(toy_graph, scorer=scorer)
    caps = RetrievalCaps(hops=2, max_nodes=100, max_edges=400)
    text = scoring_text("which films were directed by the director of [Jaws]", ["Jaws"])
    subgraph = await retriever.retrieve(["Jaws"], caps, text)
    keys = {n.key for n in subgraph.nodes}
    assert "Jurassic Park" in keys
    # the 300 films behind the genre hub did not fit the hop's budget and were left out
    assert not any(k.startswith("Thriller ") for k in keys)
    assert subgraph.truncated
    assert len(subgraph.nodes) < 20
    # one lookup, then one aggregation and one expansion per hop
    assert toy_graph.calls == ["entities", *["relation_counts", "expand"] * 2]


async def test_plain_neighbourhood_is_what_the_hub_would_have_cost(toy_graph):
    caps = RetrievalCaps(hops=2, max_nodes=10_000, max_edges=10_000)
    plain = await SubgraphRetriever(toy_graph).retrieve(["Jaws"], caps)
    assert len(plain.nodes) > HUB_FILMS and not plain.truncated


async def test_edges_keep_the_kb_direction(toy_graph, scorer):
    retriever = SubgraphRetriever(toy_graph, scorer=scorer)
    text = scoring_text("which films were directed by the director of [Jaws]", ["Jaws"])
    subgraph = await retriever.retrieve(["Jaws"], RetrievalCaps(2, 100, 400), text)
    edges = _edges(subgraph)
    assert ("Jaws", "directed_by", "Steven Spielberg") in edges
    # walked backwards (director -> film), stored forwards (film -> director)
    assert ("Jurassic Park", "directed_by", "Steven Spielberg") in edges
    assert edges <= set(TOY_KB)
    assert list(subgraph.anchor_indices) == [0] and subgraph.nodes[0].key == "Jaws"


async def test_paths_do_not_return_to_the_anchor(toy_graph, scorer):
    retriever = SubgraphRetriever(toy_graph, scorer=scorer)
    text = scoring_text("what films share actors with [Sorcerer]", ["Sorcerer"])
    subgraph = await retriever.retrieve(["Sorcerer"], RetrievalCaps(2, 100, 400), text)
    anchor = subgraph.anchor_indices[0]
    # the anchor's only edges are its own, from hop 1
    touching = [
        (s, t)
        for s, t in zip(subgraph.edge_source, subgraph.edge_target, strict=True)
        if anchor in (s, t)
    ]
    assert len(touching) == sum(1 for s, _, _ in FILMS if s == "Sorcerer")
    assert {"Jaws", "The French Connection"} <= {n.key for n in subgraph.nodes}


async def test_retrieval_is_deterministic_and_ignores_anchor_order(toy_graph, scorer):
    retriever = SubgraphRetriever(toy_graph, scorer=scorer)
    text = scoring_text("who acted in [Jaws] and [Sorcerer]", ["Jaws", "Sorcerer"])
    caps = RetrievalCaps(2, 60, 200)
    first = await retriever.retrieve(["Sorcerer", "Jaws"], caps, text)
    second = await retriever.retrieve(["Jaws", "Sorcerer", "Jaws"], caps, text)
    fresh = await SubgraphRetriever(
        InMemoryGraph(TOY_KB), scorer=RelationPathScorer(bag_of_words_embed)
    ).retrieve(["Jaws", "Sorcerer"], caps, text)
    assert first.SerializeToString(deterministic=True) == second.SerializeToString(
        deterministic=True
    )
    assert first == fresh
    assert [first.nodes[i].key for i in first.anchor_indices] == ["Jaws", "Sorcerer"]


@pytest.mark.parametrize(("max_nodes", "max_edges"), [(3, 100), (100, 3), (7, 9)])
async def test_caps_are_never_exceeded(toy_graph, scorer, max_nodes, max_edges):
    for guided in (True, False):
        retriever = SubgraphRetriever(toy_graph, scorer=scorer if guided else None)
        subgraph = await retriever.retrieve(
            ["Jaws"], RetrievalCaps(3, max_nodes, max_edges), "what genres did jaws actors star"
        )
        assert len(subgraph.nodes) <= max_nodes and len(subgraph.edge_source) <= max_edges
        assert subgraph.truncated


async def test_unknown_anchors_and_no_anchors(toy_graph, scorer):
    retriever = SubgraphRetriever(toy_graph, scorer=scorer)
    caps = RetrievalCaps(2, 100, 100)
    assert len((await retriever.retrieve([], caps, "anything")).nodes) == 0
    missing = await retriever.retrieve(["No Such Film"], caps, "who directed it")
    assert len(missing.nodes) == 0 and not missing.anchor_indices
    partial = await retriever.retrieve(["No Such Film", "Jaws"], caps, "who directed it")
    assert [partial.nodes[i].key for i in partial.anchor_indices] == ["Jaws"]


async def test_minilm_picks_the_multi_hop_path(toy_graph, text_encoder):
    """The real encoder: "directors of films starring X" is starred_actors then directed_by."""
    retriever = SubgraphRetriever(
        toy_graph,
        scorer=RelationPathScorer(text_encoder),
        guidance=GuidanceParams(margin=0.0, min_keep=1, beam_width=1, expand_all_nodes=0),
    )
    text = scoring_text("who directed the films that [Gene Hackman] starred in", ["Gene Hackman"])
    subgraph = await retriever.retrieve(["Gene Hackman"], RetrievalCaps(2, 100, 100), text)
    assert _edges(subgraph) == {
        ("The French Connection", "starred_actors", "Gene Hackman"),
        ("The French Connection", "directed_by", "William Friedkin"),
    }
