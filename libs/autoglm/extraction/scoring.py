"""Text-to-triples scoring with the WebNLG+ 2020 Text-to-RDF definitions, written from them.

What is measured (WebNLG+ 2020 overview, Castro Ferreira et al. 2020, §semantic parsing; the
challenge's evaluation README, github.com/WebNLG/WebNLG-Text-to-triples): every candidate triple of
a text is aligned to one reference triple of that text, and the subject, predicate and object of
the pair are compared as named-entity spans are in SemEval-2013 Task 9.1 (Segura-Bedmar et al.;
the scenario table of nervaluate / D. Batista's "Named-Entity evaluation metrics"):

====================================  ======  =====  =======  ====
reference element vs candidate guess  Strict  Exact  Partial  Type
====================================  ======  =====  =======  ====
same string, same role                COR     COR    COR      COR
same string, other role               INC     COR    COR      INC
overlapping string, same role         INC     INC    PAR      COR
overlapping string, other role        INC     INC    PAR      INC
no candidate string overlaps          MIS     MIS    MIS      MIS
candidate string overlapping nothing  SPU     SPU    SPU      SPU
====================================  ======  =====  =======  ====

POS = COR + INC + PAR + MIS, ACT = COR + INC + PAR + SPU; Strict and Exact: P = COR / ACT,
R = COR / POS; Partial and Type: P = (COR + 0.5 PAR) / ACT, R = (COR + 0.5 PAR) / POS; F1 the
harmonic mean (0 when P + R = 0, and P or R 0 when ACT or POS is 0). Type never gives PAR (an
overlap in the right role is COR for it), so its half credit never applies. "Role" is the
element's place in the triple (subject, predicate, object). Whole-triple scores (Liu et al. 2018)
count a candidate triple correct when its subject, predicate and object all equal a reference
triple's.

Normalisation, as the challenge's script applies it before matching (read in its
``Evaluation_script.py``, functions ``getRefs``/``getCands`` and ``evaluaterefcand``; the
script is GPL and none of it is copied here), to candidates and references alike:

1. camelCase is split: a space between a lower-case letter and the upper-case letter after it
   (``leaderName`` -> ``leader Name``; also inside names, ``McDonald`` -> ``Mc Donald``);
2. lower-cased; 3. underscores become spaces; 4. runs of white space become one space;
5. a trailing parenthesised part of the *object* is dropped (``1.524 (metres)`` -> ``1.524``:
   units and DBpedia disambiguations, which texts seldom state);
6. each element is tokenised and tokens made only of punctuation are dropped, so quotes and
   commas do not count (``"14L/32R"`` = ``14l/32r``; ``Harrietstown,_New_York`` = ``harrietstown
   new york``). The script uses NLTK's ``word_tokenize``; we split on white space and strip
   punctuation at token edges (a sign before a digit is kept), which agrees with it on every
   element form WebNLG writes and needs no NLTK.

Strings are compared as these token sequences: "same string" is equal sequences, "overlap" is at
least one shared token.

Matching one element (our reading of the README's "variations of the reference attribute will be
interpreted as a longer string if there are no other non-matching words before or after the
matched reference, or as a separate guess if there are"): shared tokens are found longest common
run first, repeatedly. The candidate's main guess spans its first to its last shared token; its
other tokens before the first shared one join the main guess when that shared token is the
reference's first token (a longer string: "the aarhus airport" for "aarhus airport"), and likewise
after the last shared one when it is the reference's last token; tokens that cannot join become
one spurious guess per contiguous run ("york town" for "new york city": main "york" PAR, "town"
SPU).

Roles: elements are compared in place (subject to subject, ...). When two elements of the pair
share no token in place, the script tries the swaps subject<->object, then subject<->predicate,
then predicate<->object, and keeps the first swap under which a swapped element overlaps; a
swapped element is then matched in the other role (Exact still COR, Strict and Type INC). We do
the same.

Alignment: a text's candidates and references are paired one to one so that the sum over pairs
of the mean of the four F1 scores of a pair is highest (the script enumerates permutations;
we solve the same assignment exactly by dynamic programming over the smaller side, so texts with
many candidates stay fast; between equally good assignments the choice may differ from the
script's). Candidates beyond the references are paired with nothing (all their elements SPU),
references beyond the candidates likewise (all MIS).

Averaging: the script pools the aligned pairs of all texts and reports, per match type, the
counts summed and P, R, F1 as the *mean over the pairs of each pair's P, R, F1* (a text with more
triples weighs more: micro over texts, macro over triple pairs inside that pool). That is the
definition behind the challenge's published tables, and it is ``precision``/``recall``/``f1``
here. A pair with nothing on one side has P = 0 (no ACT) or R = 0 (no POS), as nervaluate sets
them, so this precision also falls with missed triples and this recall with spurious ones.
``micro_precision``/``micro_recall``/``micro_f1`` are the SemEval formulas over the summed counts,
for comparison with span-level NER figures. Whole-triple P/R/F1 are micro: correct triples
summed over texts divided by candidates (references) summed over texts; a duplicate candidate
counts once correct and then spurious. (The script's "full triple" figure is different: a
scikit-learn macro average over every distinct triple string, compared lower-cased but otherwise
raw; we do not reproduce it.) Per category: the same over that category's texts.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

SCHEMES = ("strict", "exact", "partial", "type")
ROLES = ("subject", "predicate", "object")
_SUBJECT, _PREDICATE, _OBJECT = 0, 1, 2

Tokens = tuple[str, ...]
NormalisedTriple = tuple[Tokens, Tokens, Tokens]

_CAMEL = re.compile(r"([a-z])([A-Z])")
_TRAILING_PARENTHESES = re.compile(r"^(.*?)\s\(.*\)$")
_SIGNED_NUMBER = re.compile(r"[+-]\d")


# -- normalisation ------------------------------------------------------------------------------


def _is_punctuation(char: str) -> bool:
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def _strip_token(token: str) -> str:
    start, end = 0, len(token)
    while start < end and _is_punctuation(token[start]):
        if _SIGNED_NUMBER.match(token, start):
            break
        start += 1
    while end > start and _is_punctuation(token[end - 1]):
        end -= 1
    return token[start:end]


@lru_cache(maxsize=1 << 16)
def normalise_element(text: str, is_object: bool = False) -> Tokens:
    """One triple element as the scorer compares it: a tuple of lower-case tokens."""
    text = _CAMEL.sub(r"\1 \2", text).lower().replace("_", " ")
    text = " ".join(text.split())
    if is_object:
        text = _TRAILING_PARENTHESES.sub(r"\1", text)
    return tuple(t for t in (_strip_token(raw) for raw in text.split()) if t)


def normalise_name(text: str) -> str:
    """A name or answer as one comparable string (the object normalisation, tokens joined)."""
    return " ".join(normalise_element(text, is_object=True))


def normalise_triple(triple: Sequence[str]) -> NormalisedTriple:
    if len(triple) != 3:
        raise ValueError(f"a triple has three elements: {triple!r}")
    return (
        normalise_element(triple[0]),
        normalise_element(triple[1]),
        normalise_element(triple[2], is_object=True),
    )


# -- counts and rates -----------------------------------------------------------------------


class Counts(NamedTuple):
    """SemEval-2013 outcome counts for one match type."""

    correct: int = 0
    incorrect: int = 0
    partial: int = 0
    missed: int = 0
    spurious: int = 0

    @property
    def possible(self) -> int:
        return self.correct + self.incorrect + self.partial + self.missed

    @property
    def actual(self) -> int:
        return self.correct + self.incorrect + self.partial + self.spurious

    def rates(self, partial_credit: bool) -> tuple[float, float, float]:
        """Precision, recall, F1; PAR counts half when ``partial_credit`` (Partial, Type)."""
        hits = self.correct + (0.5 * self.partial if partial_credit else 0.0)
        precision = hits / self.actual if self.actual else 0.0
        recall = hits / self.possible if self.possible else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1


def _partial_credit(scheme: str) -> bool:
    return scheme in ("partial", "type")


# -- one element ------------------------------------------------------------------------------


def _shared_tokens(reference: Tokens, candidate: Tokens) -> list[tuple[int, int]]:
    """``(candidate index, reference index)`` of shared tokens, longest common run first."""
    free_ref = [True] * len(reference)
    free_cand = [True] * len(candidate)
    pairs: list[tuple[int, int]] = []
    while True:
        best = (0, 0, 0)  # length, candidate start, reference start
        for c in range(len(candidate)):
            for r in range(len(reference)):
                length = 0
                while (
                    c + length < len(candidate)
                    and r + length < len(reference)
                    and free_cand[c + length]
                    and free_ref[r + length]
                    and candidate[c + length] == reference[r + length]
                ):
                    length += 1
                if length > best[0]:
                    best = (length, c, r)
        length, c, r = best
        if not length:
            return sorted(pairs)
        for k in range(length):
            free_cand[c + k] = free_ref[r + k] = False
            pairs.append((c + k, r + k))


@dataclass(frozen=True)
class ElementMatch:
    """How one candidate element meets one reference element."""

    reference_role: int
    candidate_role: int
    outcome: str
    """``exact`` / ``overlap`` (main guess vs reference), ``missed`` (no shared token, or no
    candidate string), ``none`` (neither side has a string)."""
    spurious: int
    """Candidate guesses overlapping nothing: extra runs, or the whole candidate string when
    nothing is shared."""
    has_reference: bool

    @property
    def found(self) -> bool:
        return self.outcome in ("exact", "overlap")


def match_element(
    reference: Tokens, candidate: Tokens, reference_role: int, candidate_role: int
) -> ElementMatch:
    def result(outcome: str, spurious: int) -> ElementMatch:
        return ElementMatch(reference_role, candidate_role, outcome, spurious, bool(reference))

    if not candidate:
        return result("missed" if reference else "none", 0)
    if candidate == reference:
        return result("exact", 0)
    overlaps = reference and not set(reference).isdisjoint(candidate)
    shared = _shared_tokens(reference, candidate) if overlaps else []
    if not shared:
        return result("missed" if reference else "none", 1)
    first_cand, first_ref = shared[0]
    last_cand, last_ref = shared[-1]
    start = 0 if first_ref == 0 else first_cand
    end = len(candidate) - 1 if last_ref == len(reference) - 1 else last_cand
    runs = (start > 0) + (end < len(candidate) - 1)
    exact = candidate[start : end + 1] == reference
    return result("exact" if exact else "overlap", runs)


# -- one triple pair --------------------------------------------------------------------------

_SWAPS = ((_SUBJECT, _OBJECT), (_SUBJECT, _PREDICATE), (_PREDICATE, _OBJECT))


def match_triples(
    reference: NormalisedTriple | None, candidate: NormalisedTriple | None
) -> list[ElementMatch]:
    """The three element matches of an aligned pair (either side may be absent)."""
    empty: NormalisedTriple = ((), (), ())
    ref = reference or empty
    cand = candidate or empty
    matches = [match_element(ref[i], cand[i], i, i) for i in range(3)]
    for a, b in _SWAPS:
        if matches[a].found or matches[b].found:
            continue
        swapped_a = match_element(ref[a], cand[b], a, b)
        swapped_b = match_element(ref[b], cand[a], b, a)
        if swapped_a.found or swapped_b.found:
            matches[a], matches[b] = swapped_a, swapped_b
            break
    return matches


_COR, _INC, _PAR, _MIS, _SPU = range(5)
_OUTCOMES = {
    # (outcome, same role) -> the count it adds to in strict, exact, partial, type
    ("exact", True): (_COR, _COR, _COR, _COR),
    ("exact", False): (_INC, _COR, _COR, _INC),
    ("overlap", True): (_INC, _INC, _PAR, _COR),
    ("overlap", False): (_INC, _INC, _PAR, _INC),
    ("missed", True): (_MIS,) * 4,
    ("missed", False): (_MIS,) * 4,
}


def _element_counts(match: ElementMatch) -> list[list[int]]:
    """``[scheme][outcome]`` counts one element match adds."""
    counts = [[0] * 5 for _ in SCHEMES]
    if match.has_reference:
        same_role = match.reference_role == match.candidate_role
        for k, outcome in enumerate(_OUTCOMES[(match.outcome, same_role)]):
            counts[k][outcome] += 1
    for row in counts:
        row[_SPU] += match.spurious
    return counts


@dataclass(frozen=True)
class PairScore:
    """One aligned pair: its element matches and SemEval counts per match type."""

    matches: tuple[ElementMatch, ...]
    counts: dict[str, Counts]

    def rates(self, scheme: str) -> tuple[float, float, float]:
        return self.counts[scheme].rates(_partial_credit(scheme))

    @property
    def mean_f1(self) -> float:
        """What alignment maximises: the mean F1 of the four match types."""
        return sum(self.rates(s)[2] for s in SCHEMES) / len(SCHEMES)


def score_pair(reference: NormalisedTriple | None, candidate: NormalisedTriple | None) -> PairScore:
    matches = tuple(match_triples(reference, candidate))
    totals = [[0] * 5 for _ in SCHEMES]
    for match in matches:
        for k, row in enumerate(_element_counts(match)):
            for i, value in enumerate(row):
                totals[k][i] += value
    return PairScore(matches, {s: Counts(*totals[k]) for k, s in enumerate(SCHEMES)})


# -- alignment --------------------------------------------------------------------------------


def best_assignment(weights: Sequence[Sequence[float]]) -> list[tuple[int, int]]:
    """A one-to-one pairing of rows and columns (as many pairs as the smaller side) with the
    highest total weight. Dynamic programming over subsets of the smaller side: exact, and fast
    for WebNLG (at most 7 references a text)."""
    rows = len(weights)
    cols = len(weights[0]) if rows else 0
    if not rows or not cols:
        return []
    transposed = cols > rows
    if transposed:
        weights = [[weights[r][c] for r in range(rows)] for c in range(cols)]
        rows, cols = cols, rows
    if cols > 16:
        raise ValueError(f"{cols} x {rows} is too large to align exactly")
    # rows >= cols: every column gets a row. best[mask] after deciding the first i rows.
    minus_inf = float("-inf")
    best = [minus_inf] * (1 << cols)
    best[0] = 0.0
    choices: list[list[int]] = []
    for r in range(rows):
        nxt = best.copy()  # row r unpaired
        choice = [-1] * (1 << cols)
        for mask, value in enumerate(best):
            if value == minus_inf:
                continue
            for c in range(cols):
                bit = 1 << c
                if mask & bit:
                    continue
                candidate = value + weights[r][c]
                if candidate > nxt[mask | bit]:
                    nxt[mask | bit] = candidate
                    choice[mask | bit] = c
        best = nxt
        choices.append(choice)
    mask = (1 << cols) - 1
    pairs = []
    for r in range(rows - 1, -1, -1):
        c = choices[r][mask]
        if c >= 0:
            pairs.append((r, c))
            mask ^= 1 << c
        # else row r was left unpaired on the best path to ``mask``
    pairs.reverse()
    return [(c, r) for r, c in pairs] if transposed else pairs


@dataclass
class TextScore:
    """The aligned pairs of one text and its whole-triple counts."""

    pairs: list[PairScore]
    alignment: list[tuple[int | None, int | None]]
    """``(reference index, candidate index)`` of every pair; None is the missing side."""
    triples_correct: int
    references: int
    candidates: int


def score_text(
    references: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]]
) -> TextScore:
    refs = [normalise_triple(t) for t in references]
    cands = [normalise_triple(t) for t in candidates]
    table = [[score_pair(r, c) for c in cands] for r in refs]
    chosen = best_assignment([[pair.mean_f1 for pair in row] for row in table])
    pairs = [table[r][c] for r, c in chosen]
    alignment: list[tuple[int | None, int | None]] = [(r, c) for r, c in chosen]
    paired_refs = {r for r, _ in chosen}
    paired_cands = {c for _, c in chosen}
    for r, ref in enumerate(refs):
        if r not in paired_refs:
            pairs.append(score_pair(ref, None))
            alignment.append((r, None))
    for c, cand in enumerate(cands):
        if c not in paired_cands:
            pairs.append(score_pair(None, cand))
            alignment.append((None, c))
    correct = sum((Counter(refs) & Counter(cands)).values())
    return TextScore(pairs, alignment, correct, len(refs), len(cands))


# -- reports ----------------------------------------------------------------------------------


@dataclass
class Aggregate:
    """Pairs and whole-triple counts pooled over a set of texts."""

    with_roles: bool = True
    texts: int = 0
    pairs: int = 0
    counts: dict[str, list[int]] = field(default_factory=lambda: {s: [0] * 5 for s in SCHEMES})
    by_role: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: {r: {s: [0] * 5 for s in SCHEMES} for r in ROLES}
    )
    """Reference-side outcomes under the reference element's role, spurious guesses under the
    candidate element's role."""
    rate_sums: dict[str, list[float]] = field(
        default_factory=lambda: {s: [0.0, 0.0, 0.0] for s in SCHEMES}
    )
    triples_correct: int = 0
    references: int = 0
    candidates: int = 0

    def add(self, text: TextScore) -> None:
        self.texts += 1
        self.triples_correct += text.triples_correct
        self.references += text.references
        self.candidates += text.candidates
        for pair in text.pairs:
            self.pairs += 1
            for scheme in SCHEMES:
                total = self.counts[scheme]
                for i, value in enumerate(pair.counts[scheme]):
                    total[i] += value
                for k, rate in enumerate(pair.rates(scheme)):
                    self.rate_sums[scheme][k] += rate
            if self.with_roles:
                self._add_roles(pair)

    def _add_roles(self, pair: PairScore) -> None:
        for match in pair.matches:
            counts = _element_counts(match)
            for k, scheme in enumerate(SCHEMES):
                if match.has_reference:
                    row = self.by_role[ROLES[match.reference_role]][scheme]
                    for i in range(_SPU):
                        row[i] += counts[k][i]
                if match.spurious:
                    self.by_role[ROLES[match.candidate_role]][scheme][_SPU] += match.spurious

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "texts": self.texts,
            "aligned_pairs": self.pairs,
            "reference_triples": self.references,
            "candidate_triples": self.candidates,
        }
        for scheme in SCHEMES:
            counts = Counts(*self.counts[scheme])
            sums = self.rate_sums[scheme]
            micro = counts.rates(_partial_credit(scheme))
            out[scheme] = {
                "precision": _r(sums[0] / self.pairs if self.pairs else 0.0),
                "recall": _r(sums[1] / self.pairs if self.pairs else 0.0),
                "f1": _r(sums[2] / self.pairs if self.pairs else 0.0),
                "micro_precision": _r(micro[0]),
                "micro_recall": _r(micro[1]),
                "micro_f1": _r(micro[2]),
                "correct": counts.correct,
                "incorrect": counts.incorrect,
                "partial": counts.partial,
                "missed": counts.missed,
                "spurious": counts.spurious,
                "possible": counts.possible,
                "actual": counts.actual,
            }
        p = self.triples_correct / self.candidates if self.candidates else 0.0
        r = self.triples_correct / self.references if self.references else 0.0
        out["whole_triple"] = {
            "precision": _r(p),
            "recall": _r(r),
            "f1": _r(2 * p * r / (p + r) if p + r else 0.0),
            "correct": self.triples_correct,
        }
        if self.with_roles:
            out["by_role_micro_f1"] = {
                role: {
                    s: _r(Counts(*self.by_role[role][s]).rates(_partial_credit(s))[2])
                    for s in SCHEMES
                }
                for role in ROLES
            }
        return out


def _r(value: float) -> float:
    return round(value, 4)


def score(
    references: Sequence[Sequence[Sequence[str]]],
    candidates: Sequence[Sequence[Sequence[str]]],
    categories: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score candidate triple sets against reference sets, text by text (same order).

    Returns ``{"overall": {...}, "per_category": {category: {...}}}`` (the latter only when
    ``categories`` are given); each holds, per match type, ``precision``/``recall``/``f1`` as the
    challenge reports them, ``micro_*`` from the summed counts, the counts, and ``whole_triple``.
    """
    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} reference sets but {len(candidates)} candidate sets")
    if categories is not None and len(categories) != len(references):
        raise ValueError(f"{len(categories)} categories for {len(references)} texts")
    overall = Aggregate()
    per_category: dict[str, Aggregate] = {}
    for i, (refs, cands) in enumerate(zip(references, candidates, strict=True)):
        text = score_text(refs, cands)
        overall.add(text)
        if categories is not None:
            per_category.setdefault(categories[i], Aggregate(with_roles=False)).add(text)
    report: dict[str, Any] = {"overall": overall.report()}
    if categories is not None:
        report["per_category"] = {
            name: per_category[name].report() for name in sorted(per_category)
        }
    return report


def headline(report: dict[str, Any]) -> dict[str, float]:
    """F1 of each match type and of whole triples, for a one-line summary."""
    return {name: report[name]["f1"] for name in (*SCHEMES, "whole_triple")}
