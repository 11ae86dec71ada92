"""MetaQA data code on the real files: question types follow the KB to the gold answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoglm.settings import PROJECT_ROOT
from autoglm.training.metaqa import (
    KnowledgeBase,
    Step,
    mine_templates,
    parse_qtype,
    read_qa,
    split_dev,
    synthesize,
    type_frequencies,
)

DATA = PROJECT_ROOT.parent / "shared" / "data" / "metaqa"


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.from_file(DATA / "kb.txt")


def dev(hops: int):
    return read_qa(DATA / f"{hops}hop_dev.txt", DATA / f"{hops}hop_dev_qtype.txt", hops)


def test_qtype_to_relation_chain():
    assert parse_qtype("movie_to_actor_to_movie_to_year") == [
        Step("starred_actors", True),
        Step("starred_actors", False),
        Step("release_year", True),
    ]
    assert parse_qtype("tag_to_movie") == [Step("has_tags", False)]
    with pytest.raises(ValueError, match="no relation"):
        parse_qtype("movie_to_movie")


def test_kb_is_complete(kb):
    assert kb.triples == 133_582


@pytest.mark.parametrize("hops", [2, 3])
def test_following_the_type_reproduces_dev_answers(kb, hops):
    # SOURCE.md: with kb.txt, 2- and 3-hop dev answers are reproduced exactly.
    examples = dev(hops)[:2000]
    exact = sum(kb.follow(e.topic, parse_qtype(e.qtype)) == set(e.answers) for e in examples)
    assert exact == len(examples)


def test_one_hop_answers_are_reached(kb):
    examples = dev(1)[:2000]
    reached = sum(set(e.answers) <= kb.follow(e.topic, parse_qtype(e.qtype)) for e in examples)
    assert reached / len(examples) > 0.99  # the rest: titles with a comma, split by MetaQA


def test_split_is_deterministic_and_disjoint():
    examples = dev(1)
    train, validation = split_dev(examples, 0.2)
    again_train, again_validation = split_dev(examples, 0.2)
    assert train == again_train and validation == again_validation
    assert not {e.question for e in train} & {e.question for e in validation}
    assert 0.15 < len(validation) / len(examples) < 0.25


def test_synthesized_questions_have_kb_answers(kb):
    train, _ = split_dev(dev(2), 0.2)
    templates = mine_templates(train)
    assert all("[{}]" in t for ts in templates.values() for t in ts)
    weights = type_frequencies(DATA / "2hop_train_qtype.txt")
    made = synthesize(kb, templates, weights, count=300, hops=2, seed=7)
    assert len(made) == 300
    assert made == synthesize(kb, templates, weights, count=300, hops=2, seed=7)
    for example in made[:50]:
        assert f"[{example.topic}]" in example.question
        assert set(example.answers) == kb.follow(example.topic, parse_qtype(example.qtype))
        assert example.topic not in example.answers
    assert len({e.qtype for e in made}) > 10


def test_dev_file_must_mark_topic(tmp_path: Path):
    (tmp_path / "qa.txt").write_text("who directed Jaws\tSteven Spielberg\n")
    (tmp_path / "types.txt").write_text("movie_to_director\n")
    with pytest.raises(ValueError, match="topic entity"):
        read_qa(tmp_path / "qa.txt", tmp_path / "types.txt", 1)
