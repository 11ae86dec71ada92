"""The Text-to-RDF scorer on hand-computed cases, and on the real dev set (gold and damaged)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from autoglm.extraction.scoring import (
    best_assignment,
    match_element,
    normalise_element,
    normalise_name,
    score,
    score_text,
)
from autoglm.extraction.webnlg import WebNLGText, read_texts
from autoglm.settings import PROJECT_ROOT

DEV = PROJECT_ROOT.parent / "shared" / "data" / "webnlg" / "dev"

AIRPORT = ("Aarhus_Airport", "cityServed", "Aarhus")
LEADER = ("Aarhus", "leader", "Jacob_Bundsgaard")


def overall(references, candidates):
    return score([references], [candidates])["overall"]


def f1s(report):
    return {s: report[s]["f1"] for s in ("strict", "exact", "partial", "type", "whole_triple")}


# -- normalisation ---------------------------------------------------------------------------


def test_normalisation_follows_the_challenge_script():
    assert normalise_element("leaderName") == ("leader", "name")
    assert normalise_element("Jacob_Bundsgaard") == ("jacob", "bundsgaard")
    assert normalise_element("Harrietstown,_New_York") == ("harrietstown", "new", "york")
    assert normalise_element('"14L/32R"') == ("14l/32r",)
    assert normalise_element("  Aarhus   Airport ") == ("aarhus", "airport")
    # A trailing parenthesis is dropped from objects only.
    assert normalise_element("1.524 (metres)", is_object=True) == ("1.524",)
    assert normalise_element("Lancaster (city)") == ("lancaster", "city")
    # A sign before a digit is kept; punctuation-only tokens go.
    assert normalise_element("-71.0 (degreeCelsius)", is_object=True) == ("-71.0",)
    assert normalise_element("A - B") == ("a", "b")
    assert normalise_name("Jacob Bundsgaard") == normalise_name("Jacob_Bundsgaard")


def test_normalisation_makes_writing_variants_equal():
    references = [("Aarhus_Airport", "runwayLength", "2702.0")]
    candidates = [("aarhus airport", "runway length", '"2702.0"')]
    assert set(f1s(overall(references, candidates)).values()) == {1.0}


# -- one element ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "candidate", "outcome", "spurious"),
    [
        ("aarhus airport", "aarhus airport", "exact", 0),
        ("aarhus airport", "aarhus", "overlap", 0),
        # Words before the reference's first word, or after its last, make a longer string.
        ("aarhus airport", "the aarhus airport", "overlap", 0),
        ("aarhus airport", "aarhus airport denmark", "overlap", 0),
        # Words next to a match that does not reach the reference's edge are a separate guess.
        ("new york city", "york town", "overlap", 1),
        ("new york city", "big york", "overlap", 1),
        ("new york city", "old big york town", "overlap", 2),
        ("aarhus", "copenhagen", "missed", 1),
        ("aarhus", "", "missed", 0),
        ("", "aarhus", "none", 1),
    ],
)
def test_match_element(reference, candidate, outcome, spurious):
    match = match_element(tuple(reference.split()), tuple(candidate.split()), 0, 0)
    assert (match.outcome, match.spurious) == (outcome, spurious)


# -- hand-computed pairs ----------------------------------------------------------------------


def test_exact_triple():
    report = overall([LEADER], [("Aarhus", "leader", "Jacob Bundsgaard")])
    assert f1s(report) == {"strict": 1, "exact": 1, "partial": 1, "type": 1, "whole_triple": 1}
    assert report["strict"]["correct"] == 3
    assert report["strict"]["possible"] == report["strict"]["actual"] == 3


def test_partial_overlap_of_the_subject():
    # Subject "aarhus" for "aarhus airport": strict/exact INC, partial PAR, type COR.
    report = overall([AIRPORT], [("Aarhus", "cityServed", "Aarhus")])
    strict, partial, kind = report["strict"], report["partial"], report["type"]
    assert (strict["correct"], strict["incorrect"], strict["partial"]) == (2, 1, 0)
    assert (partial["correct"], partial["partial"]) == (2, 1)
    assert (kind["correct"], kind["incorrect"]) == (3, 0)
    assert strict["f1"] == report["exact"]["f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert partial["precision"] == partial["recall"] == pytest.approx(2.5 / 3, abs=1e-4)
    assert kind["f1"] == 1.0
    assert report["whole_triple"]["f1"] == 0.0


def test_swapped_subject_and_object():
    # Matched across roles: Exact and Partial COR, Strict and Type INC for the two swapped.
    report = overall([LEADER], [("Jacob_Bundsgaard", "leader", "Aarhus")])
    assert report["strict"]["f1"] == report["type"]["f1"] == pytest.approx(1 / 3, abs=1e-4)
    assert (report["strict"]["correct"], report["strict"]["incorrect"]) == (1, 2)
    assert report["exact"]["f1"] == report["partial"]["f1"] == 1.0
    assert report["whole_triple"]["correct"] == 0


def test_missing_triple():
    report = overall([LEADER, AIRPORT], [LEADER])
    for scheme in ("strict", "exact", "partial", "type"):
        counts = report[scheme]
        assert (counts["correct"], counts["missed"], counts["spurious"]) == (3, 3, 0)
        # Challenge averaging: the pair with no candidate scores P = R = F1 = 0.
        assert counts["precision"] == counts["recall"] == counts["f1"] == 0.5
        assert counts["micro_precision"] == 1.0
        assert counts["micro_recall"] == 0.5
        assert counts["micro_f1"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["aligned_pairs"] == 2
    whole = report["whole_triple"]
    assert (whole["precision"], whole["recall"]) == (1.0, 0.5)


def test_spurious_triple():
    report = overall([LEADER], [LEADER, ("Denmark", "capital", "Copenhagen")])
    strict = report["strict"]
    assert (strict["correct"], strict["spurious"], strict["missed"]) == (3, 3, 0)
    assert strict["precision"] == strict["recall"] == 0.5
    assert strict["micro_precision"] == 0.5
    assert strict["micro_recall"] == 1.0
    assert report["whole_triple"]["precision"] == 0.5


def test_multiple_triples_are_aligned_to_the_best_pairing():
    references = [AIRPORT, LEADER]
    candidates = [("Aarhus", "leaderName", "Jacob_Bundsgaard"), AIRPORT]
    text = score_text(references, candidates)
    assert sorted(text.alignment) == [(0, 1), (1, 0)]
    report = overall(references, candidates)
    # (LEADER, leaderName): predicate "leader name" overlaps "leader"; the other pair is exact.
    assert report["strict"]["f1"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-4)
    assert report["partial"]["f1"] == pytest.approx((1 + 2.5 / 3) / 2, abs=1e-4)
    assert report["type"]["f1"] == 1.0
    assert report["whole_triple"]["correct"] == 1


def test_duplicate_candidates_count_once():
    report = overall([LEADER], [LEADER, LEADER])
    assert report["whole_triple"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "correct": 1}


def test_empty_text_and_per_category():
    report = score(
        [[LEADER], [AIRPORT], []],
        [[LEADER], [], []],
        ["City", "Airport", "Airport"],
    )
    assert report["per_category"]["City"]["strict"]["f1"] == 1.0
    assert report["per_category"]["Airport"]["strict"]["f1"] == 0.0
    assert report["per_category"]["Airport"]["texts"] == 2
    assert report["overall"]["strict"]["f1"] == 0.5
    with pytest.raises(ValueError, match="reference sets"):
        score([[LEADER]], [])


def test_best_assignment_is_not_greedy():
    # Greedy takes 0.9 then 0.0; the best pairing is 0.8 + 0.85.
    assert sorted(best_assignment([[0.9, 0.8], [0.85, 0.0]])) == [(0, 1), (1, 0)]
    # Rectangular both ways: every row of the smaller side is paired.
    assert sorted(best_assignment([[0.1, 0.9, 0.5]])) == [(0, 1)]
    assert sorted(best_assignment([[0.1], [0.9], [0.5]])) == [(1, 0)]
    assert best_assignment([]) == []


# -- the real dev set: gold as candidates, and damaged copies ---------------------------------


@pytest.fixture(scope="module")
def dev_sample() -> list[WebNLGText]:
    texts = read_texts(Path(DEV))
    return texts[::8]  # every size and category, a quarter of a second to score


def score_texts(texts, candidates):
    return score([t.triples for t in texts], candidates, [t.category for t in texts])


def test_gold_as_candidates_scores_one(dev_sample):
    report = score_texts(dev_sample, [list(t.triples) for t in dev_sample])
    assert set(f1s(report["overall"]).values()) == {1.0}
    assert all(c["strict"]["f1"] == 1.0 for c in report["per_category"].values())
    assert len(report["per_category"]) == 16


def test_dropped_triples_cost_exactly_their_recall(dev_sample):
    damaged = [list(t.triples[:-1]) if len(t.triples) > 1 else list(t.triples) for t in dev_sample]
    report = score_texts(dev_sample, damaged)["overall"]
    kept = sum(len(d) for d in damaged)
    total = sum(len(t.triples) for t in dev_sample)
    assert kept < total
    for scheme in ("strict", "exact", "partial", "type"):
        assert report[scheme]["micro_precision"] == 1.0
        assert report[scheme]["micro_recall"] == round(kept / total, 4)
        assert report[scheme]["missed"] == 3 * (total - kept)
    assert report["whole_triple"]["recall"] == round(kept / total, 4)


def test_damaged_elements_lower_the_strict_scores_first(dev_sample):
    rng = random.Random(7)
    swapped, prefixed = [], []
    unchanged = 0
    for text in dev_sample:
        swapped.append([(o, p, s) for s, p, o in text.triples])
        prefixed.append([])
        for s, p, o in text.triples:
            keep = rng.random() < 0.5
            unchanged += keep
            prefixed[-1].append((s if keep else "The " + s, p, o))
    report = score_texts(dev_sample, swapped)["overall"]
    assert report["whole_triple"]["f1"] < 0.01
    assert report["strict"]["f1"] < 0.5 < 0.8 < report["exact"]["f1"]
    report = score_texts(dev_sample, prefixed)["overall"]
    assert report["strict"]["f1"] == report["exact"]["f1"] < report["partial"]["f1"]
    assert report["partial"]["f1"] < report["type"]["f1"] == 1.0
    total = sum(len(t.triples) for t in dev_sample)
    assert report["whole_triple"]["recall"] == round(unchanged / total, 4)
