"""WebNLG release reading on the real dev data; candidates and references written and read back."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from autoglm.extraction.scoring import normalise_triple, score
from autoglm.extraction.types import ExtractedTriple
from autoglm.extraction.webnlg import (
    WebNLGText,
    entry_texts,
    from_webnlg_entity,
    is_webnlg_literal,
    predicates,
    read_candidates_xml,
    read_entries,
    read_entries_file,
    read_jsonl,
    to_webnlg_entity,
    to_webnlg_literal,
    webnlg_triples,
    write_candidates_xml,
    write_jsonl,
    write_references_xml,
)
from autoglm.settings import PROJECT_ROOT

DEV = PROJECT_ROOT.parent / "shared" / "data" / "webnlg" / "dev"


@pytest.fixture(scope="module")
def dev_entries():
    return read_entries(DEV)


@pytest.fixture(scope="module")
def dev_texts(dev_entries) -> list[WebNLGText]:
    return entry_texts(dev_entries)


def test_dev_counts(dev_entries, dev_texts):
    assert len(dev_entries) == 1667
    assert len(dev_texts) == 4464
    assert sum(len(e.triples) for e in dev_entries) == 4841
    assert len(predicates(dev_entries)) == 290
    assert len({e.category for e in dev_entries}) == 16
    assert len({t.id for t in dev_texts}) == len(dev_texts)
    assert all(t.text and t.triples and len(t.triples) == t.size for t in dev_texts)
    assert Counter(t.size for t in dev_texts).keys() == set(range(1, 8))


def test_texts_are_in_the_challenge_reference_order(dev_texts):
    first = dev_texts[0]
    assert (first.id, first.text) == (
        "1triples/Airport/Id1/Id1",
        "The leader of Aarhus is Jacob Bundsgaard.",
    )
    assert first.triples == (("Aarhus", "leader", "Jacob_Bundsgaard"),)
    sizes = [t.size for t in dev_texts]
    assert sizes == sorted(sizes)
    assert dev_texts[1].triples == (("Aarhus_Airport", "runwayLength", "2702.0"),)
    assert [t.lid for t in dev_texts[1:3]] == ["Id1", "Id2"]


def test_entities_and_literals_as_webnlg_writes_them():
    assert to_webnlg_entity("Jacob  Bundsgaard") == "Jacob_Bundsgaard"
    assert to_webnlg_entity("Harrietstown, New York") == "Harrietstown,_New_York"
    assert to_webnlg_entity("2702.0", literal=True) == "2702.0"
    assert to_webnlg_entity("1913-01-01", literal=True) == "1913-01-01"
    assert to_webnlg_entity("-71.0", literal=True) == "-71.0"
    assert to_webnlg_literal("14L/32R") == '"14L/32R"'
    assert to_webnlg_literal("East Link Bridge") == '"East Link Bridge"'
    assert to_webnlg_literal('"Kelvin Mao"') == '"Kelvin Mao"'
    assert to_webnlg_literal("1.524 metres") == "1.524 (metres)"
    assert to_webnlg_literal("107.43 (square kilometres)") == "107.43 (square kilometres)"
    assert to_webnlg_literal("1.8  g") == "1.8 g"
    assert to_webnlg_literal("101 Ukrop Way") == '"101 Ukrop Way"'
    assert is_webnlg_literal('"Kelvin Mao"')
    assert is_webnlg_literal("-71.0 (degreeCelsius)")
    assert is_webnlg_literal("1998")
    assert not is_webnlg_literal("103_Colmore_Row")
    assert not is_webnlg_literal("1._FC_Magdeburg")
    assert from_webnlg_entity("Jacob_Bundsgaard") == "Jacob Bundsgaard"
    assert from_webnlg_entity('"14L/32R"') == "14L/32R"


def extracted(subject, relation, obj, literal=False):
    return ExtractedTriple(subject, relation, obj, 0, 0, 1, 1.0, object_literal=literal)


def test_gold_triples_survive_extracted_form(dev_texts):
    # Gold written as an extractor would give it (readable names, literal flag) and back.
    lost = []
    for text in dev_texts:
        for s, p, o in text.triples:
            fact = extracted(from_webnlg_entity(s), p, from_webnlg_entity(o), is_webnlg_literal(o))
            (written,) = webnlg_triples([fact])
            if normalise_triple(written) != normalise_triple((s, p, o)):
                lost.append(((s, p, o), written))
    assert lost == []


def test_extracted_triples_become_webnlg_triples_once():
    found = webnlg_triples(
        [
            extracted("Aarhus Airport", "runwayLength", "2702.0", literal=True),
            extracted("Aarhus", "leader", "Jacob Bundsgaard"),
            extracted("Aarhus", "leader", "Jacob Bundsgaard"),
            extracted("Aarhus Airport", "runwayName", "10L/28R", literal=True),
        ]
    )
    assert found == [
        ("Aarhus_Airport", "runwayLength", "2702.0"),
        ("Aarhus", "leader", "Jacob_Bundsgaard"),
        ("Aarhus_Airport", "runwayName", '"10L/28R"'),
    ]


def test_candidates_xml_round_trip(tmp_path: Path, dev_texts):
    texts = dev_texts[:50:7] + dev_texts[-3:]
    candidates = [list(t.triples) for t in texts]
    candidates[0] = [("A & B <C>", "leader", '"quoted"')]
    candidates[1] = []
    path = tmp_path / "candidates.xml"
    write_candidates_xml(path, texts, candidates)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<?xml version='1.0' encoding='utf-8'?>\n<benchmark>")
    assert "<generatedtripleset>" in text
    assert '<gtriple>A &amp; B &lt;C&gt; | leader | "quoted"</gtriple>' in text
    read = read_candidates_xml(path)
    assert [e.id for e in read] == [t.id for t in texts]
    assert [list(e.triples) for e in read] == candidates
    assert [(e.category, e.eid) for e in read] == [(t.category, t.eid) for t in texts]
    with pytest.raises(ValueError, match="triple sets"):
        write_candidates_xml(path, texts, candidates[:-1])


def test_references_xml_pairs_with_candidates_by_position(tmp_path: Path, dev_texts):
    texts = dev_texts[::97]
    path = tmp_path / "references.xml"
    write_references_xml(path, texts)
    entries = read_entries_file(path)
    assert [t.id for t in entry_texts(entries)] == [t.id for t in texts]
    assert [e.triples for e in entries] == [t.triples for t in texts]
    assert [e.lexes[0][1] for e in entries] == [t.text for t in texts]
    write_candidates_xml(tmp_path / "candidates.xml", texts, [t.triples for t in texts])
    read = read_candidates_xml(tmp_path / "candidates.xml")
    report = score([e.triples for e in entries], [e.triples for e in read])
    assert report["overall"]["strict"]["f1"] == 1.0


def test_jsonl_round_trip(tmp_path: Path, dev_texts):
    texts = dev_texts[:5]
    path = tmp_path / "candidates.jsonl"
    write_jsonl(path, [t.id for t in texts], [t.triples for t in texts])
    first = path.read_text(encoding="utf-8").split("\n")[0]
    assert first == (
        '{"id": "1triples/Airport/Id1/Id1", "triples": [["Aarhus", "leader", "Jacob_Bundsgaard"]]}'
    )
    assert read_jsonl(path) == {t.id: list(t.triples) for t in texts}
