"""MetaQA data: the KB in memory, question types as relation chains, and training questions.

The original MetaQA train questions are not available, so training data comes from two places:
a deterministic part of the dev splits, and questions synthesized from the KB with the
templates of that part (MetaQA itself was generated from templates the same way). The question
type of a question (``movie_to_actor_to_movie_to_year``) is a chain of KB relations; following
it from the topic entity gives the answers, with MetaQA's rule that paths never return to the
topic entity (it is removed after the second hop).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# MetaQA's entity types and the KB relation that links a film to each.
TYPE_RELATION = {
    "director": "directed_by",
    "writer": "written_by",
    "actor": "starred_actors",
    "tag": "has_tags",
    "tags": "has_tags",
    "year": "release_year",
    "language": "in_language",
    "genre": "has_genre",
    "imdbvotes": "has_imdb_votes",
    "imdbrating": "has_imdb_rating",
}
BRACKETED = re.compile(r"\[([^\]]+)\]")


@dataclass(frozen=True)
class Step:
    relation: str
    forward: bool  # film -> attribute (subject to object) when True


@dataclass(frozen=True)
class QAExample:
    question: str
    topic: str
    answers: tuple[str, ...]
    qtype: str
    hops: int


def parse_qtype(qtype: str) -> list[Step]:
    """``movie_to_actor_to_movie`` -> [starred_actors forward, starred_actors inverse]."""
    kinds = qtype.split("_to_")
    steps = []
    for here, there in itertools.pairwise(kinds):
        if here == "movie" and there != "movie":
            steps.append(Step(TYPE_RELATION[there], forward=True))
        elif there == "movie" and here != "movie":
            steps.append(Step(TYPE_RELATION[here], forward=False))
        else:
            raise ValueError(f"question type {qtype!r}: no relation between {here} and {there}")
    return steps


@dataclass
class KnowledgeBase:
    """Adjacency of the KB in both directions: ``edges[(relation, forward)][entity]``."""

    edges: dict[tuple[str, bool], dict[str, set[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set))
    )
    triples: int = 0

    @classmethod
    def from_file(cls, path: Path) -> KnowledgeBase:
        kb = cls()
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                parts = line.rstrip("\n").split("|")
                if len(parts) == 3:
                    kb.add(*parts)
        return kb

    def add(self, subject: str, relation: str, obj: str) -> None:
        self.edges[(relation, True)][subject].add(obj)
        self.edges[(relation, False)][obj].add(subject)
        self.triples += 1

    def follow(self, topic: str, steps: Sequence[Step]) -> set[str]:
        """Entities reached from ``topic`` along ``steps`` (MetaQA's answer rule)."""
        frontier = {topic}
        for hop, step in enumerate(steps, start=1):
            table = self.edges.get((step.relation, step.forward), {})
            frontier = set().union(*(table.get(e, set()) for e in frontier))
            if hop >= 2:
                frontier.discard(topic)
        return frontier

    def starts(self, steps: Sequence[Step]) -> list[str]:
        """Entities from which the first step can be taken, sorted (deterministic sampling)."""
        first = steps[0]
        return sorted(self.edges.get((first.relation, first.forward), {}))


def read_qa(path: Path, qtype_path: Path | None, hops: int) -> list[QAExample]:
    """A MetaQA QA file (``question with [topic]\tanswer|answer``); question types from
    ``qtype_path`` when given."""
    examples = []
    lines = path.read_text(encoding="utf-8").splitlines()
    qtypes = (
        qtype_path.read_text(encoding="utf-8").splitlines() if qtype_path else [""] * len(lines)
    )
    if len(qtypes) != len(lines):
        raise ValueError(f"{qtype_path} has {len(qtypes)} lines, {path} has {len(lines)}")
    for line, qtype in zip(lines, qtypes, strict=True):
        if not line.strip():
            continue
        question, _, answers = line.partition("\t")
        match = BRACKETED.search(question)
        if match is None:
            raise ValueError(f"{path}: question without a [topic entity]: {question!r}")
        examples.append(
            QAExample(question, match.group(1), tuple(answers.split("|")), qtype.strip(), hops)
        )
    return examples


def is_validation(question: str, fraction: float) -> bool:
    """Deterministic split by a hash of the question text (stable across runs and machines)."""
    digest = int(hashlib.sha256(question.encode("utf-8")).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < fraction


def split_dev(
    examples: Iterable[QAExample], validation_fraction: float
) -> tuple[list[QAExample], list[QAExample]]:
    train: list[QAExample] = []
    validation: list[QAExample] = []
    for example in examples:
        (validation if is_validation(example.question, validation_fraction) else train).append(
            example
        )
    return train, validation


def labelled_part(
    examples: Sequence[QAExample], fraction: float
) -> tuple[list[QAExample], list[QAExample]]:
    """(a deterministic ``fraction`` of ``examples``, the rest): the self-training experiment's
    labelled slice. Hashed with a salt, so it is independent of the validation split."""
    chosen: list[QAExample] = []
    rest: list[QAExample] = []
    for example in examples:
        (chosen if is_validation("labelled:" + example.question, fraction) else rest).append(
            example
        )
    return chosen, rest


def mine_templates(examples: Iterable[QAExample]) -> dict[str, list[str]]:
    """Question templates per type: the question with its topic entity replaced by ``{}``."""
    templates: dict[str, set[str]] = defaultdict(set)
    for example in examples:
        escaped = example.question.replace("{", "{{").replace("}", "}}")
        templates[example.qtype].add(BRACKETED.sub("[{}]", escaped, count=1))
    return {qtype: sorted(found) for qtype, found in templates.items()}


def synthesize(
    kb: KnowledgeBase,
    templates: dict[str, list[str]],
    type_weights: dict[str, float],
    count: int,
    hops: int,
    seed: int,
    max_answers: int = 100,
) -> list[QAExample]:
    """``count`` new questions: a type drawn by ``type_weights`` (e.g. the train split's type
    frequencies), a template of that type, a topic entity the chain can start from, and the
    answers the KB gives. Questions with no answer or more than ``max_answers`` are skipped."""
    rng = random.Random(seed)
    qtypes = [q for q in sorted(type_weights) if q in templates]
    weights = [type_weights[q] for q in qtypes]
    starts = {q: kb.starts(parse_qtype(q)) for q in qtypes}
    examples: list[QAExample] = []
    attempts = 0
    while len(examples) < count and attempts < count * 20:
        attempts += 1
        qtype = rng.choices(qtypes, weights)[0]
        if not starts[qtype]:
            continue
        topic = rng.choice(starts[qtype])
        answers = kb.follow(topic, parse_qtype(qtype))
        if not answers or len(answers) > max_answers:
            continue
        question = rng.choice(templates[qtype]).format(topic)
        examples.append(QAExample(question, topic, tuple(sorted(answers)), qtype, hops))
    return examples


def type_frequencies(qtype_path: Path) -> dict[str, float]:
    counts: dict[str, int] = defaultdict(int)
    with qtype_path.open(encoding="utf-8") as handle:
        for line in handle:
            counts[line.strip()] += 1
    total = sum(counts.values())
    return {qtype: n / total for qtype, n in counts.items()}
