"""WebNLG+ 2020 for text-to-triples: read the release XML, write candidates the scorer reads.

The release (``../shared/data/webnlg/{train,dev}/<n>triples/<Category>.xml``) holds *entries*: a
DBpedia category, an id (``eid``, unique within one file, so within one size and category), the
modified triples (``<mtriple>subject | predicate | object</mtriple>``) and one or more ``<lex>``
texts that each state exactly those triples. For text-to-triples every ``<lex>`` is one input
text whose gold triples are its entry's mtriples (:class:`WebNLGText`).

Texts come in the order of the challenge's reference files: the ``1triples`` folder first, up to
``7triples``, files by name within a folder, entries and texts in file order. A scorer that pairs
references and candidates by position (the challenge's script does) can therefore be given
:func:`write_references_xml` and :func:`write_candidates_xml` of the same texts.

Candidates are written in the format of the WebNLG 2020 Text-to-RDF evaluation
(github.com/WebNLG/WebNLG-Text-to-triples, README "The candidates xml should be formatted as")::

    <benchmark><entries>
      <entry category="Airport" eid="Id19" size="1" lid="Id1">
        <generatedtripleset>
          <gtriple>Aarhus | leader | Jacob_Bundsgaard</gtriple>
        </generatedtripleset>
      </entry>
    </entries></benchmark>

with one entry per text (``size`` and ``lid`` are ours: they name the text, the scorer ignores
them). Elements are written the way WebNLG writes them (:func:`to_webnlg_entity`): entity names
with underscores for spaces; literals bare when numbers or dates, with a unit in parentheses
(``1.524 (metres)``), and in double quotes otherwise (``"14L/32R"``).

The plain form is JSON lines, one text a line: ``{"id": ..., "triples": [[s, r, o], ...]}``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from autoglm.extraction.types import ExtractedTriple

Triple = tuple[str, str, str]
"""``(subject, predicate, object)`` as WebNLG writes them."""

TRIPLE_SEPARATOR = " | "


@dataclass(frozen=True)
class WebNLGEntry:
    """One ``<entry>``: a triple set and the texts that state it."""

    category: str
    eid: str
    size: int
    triples: tuple[Triple, ...]
    lexes: tuple[tuple[str, str], ...]
    """``(lid, text)`` of every ``<lex>``."""


@dataclass(frozen=True)
class WebNLGText:
    """One input text of text-to-triples and the gold triples it states."""

    id: str
    category: str
    eid: str
    lid: str
    size: int
    text: str
    triples: tuple[Triple, ...]


def text_id(size: int, category: str, eid: str, lid: str) -> str:
    """Unique across a split: ``eid`` alone repeats across sizes and categories."""
    return f"{size}triples/{category}/{eid}/{lid}"


def parse_triple(line: str) -> Triple:
    parts = [part.strip() for part in line.split(TRIPLE_SEPARATOR)]
    if len(parts) != 3:
        raise ValueError(f"not 'subject | predicate | object': {line!r}")
    return parts[0], parts[1], parts[2]


def format_triple(triple: Sequence[str]) -> str:
    return TRIPLE_SEPARATOR.join(triple)


def split_files(folder: Path) -> list[Path]:
    """``<n>triples/*.xml`` of a split, in the challenge's reference order."""

    def size_of(path: Path) -> int:
        match = re.match(r"(\d+)triples$", path.name)
        return int(match.group(1)) if match else 0

    folders = sorted((p for p in folder.iterdir() if size_of(p)), key=size_of)
    files = [file for sub in folders for file in sorted(sub.glob("*.xml"))]
    if not files:
        raise FileNotFoundError(f"no <n>triples/*.xml under {folder}")
    return files


def read_entries_file(path: Path) -> list[WebNLGEntry]:
    """Every entry of one release (or references) XML file, in file order."""
    entries = []
    for element in ET.parse(path).getroot().iter("entry"):
        triples = tuple(
            parse_triple(m.text or "") for m in element.iterfind("modifiedtripleset/mtriple")
        )
        lexes = tuple(
            (lex.get("lid", f"Id{i}"), (lex.text or "").strip())
            for i, lex in enumerate(element.iterfind("lex"), start=1)
        )
        entries.append(
            WebNLGEntry(
                category=element.get("category", ""),
                eid=element.get("eid", ""),
                size=int(element.get("size", len(triples))),
                triples=triples,
                lexes=lexes,
            )
        )
    return entries


def read_entries(folder: Path) -> list[WebNLGEntry]:
    """Every entry of a split folder (``train`` or ``dev``)."""
    return [entry for path in split_files(folder) for entry in read_entries_file(path)]


def entry_texts(entries: Iterable[WebNLGEntry]) -> list[WebNLGText]:
    return [
        WebNLGText(
            id=text_id(entry.size, entry.category, entry.eid, lid),
            category=entry.category,
            eid=entry.eid,
            lid=lid,
            size=entry.size,
            text=text,
            triples=entry.triples,
        )
        for entry in entries
        for lid, text in entry.lexes
    ]


def read_texts(folder: Path) -> list[WebNLGText]:
    """Every ``<lex>`` of a split folder as one text with its entry's triples."""
    return entry_texts(read_entries(folder))


def predicates(entries: Iterable[WebNLGEntry]) -> list[str]:
    """Distinct predicate names, sorted (the relation schema of a split)."""
    return sorted({p for entry in entries for _, p, _ in entry.triples})


# -- elements as WebNLG writes them ------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)*(?:[eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2})?)?|--\d{2}-\d{2}")
_NUMBER_WITH_UNIT = re.compile(rf"({_NUMBER.pattern})\s+\(?([a-z][A-Za-z ]*?)\)?")
"""A number and a unit (lower-case first: ``101 Ukrop Way`` is an address, not a quantity)."""


def to_webnlg_literal(value: str) -> str:
    """A literal as WebNLG's modified triples write it.

    Numbers and ISO dates bare (``2702.0``, ``1913-01-01``), a number with a unit name as
    ``1.524 (metres)`` and with a unit symbol as ``1.8 g`` (WebNLG writes DBpedia's unit names
    in parentheses, and the few symbols bare), anything else in double quotes (``"14L/32R"``);
    text already in double quotes is kept as it is.
    """
    value = " ".join(value.split())
    if not value:
        return '""'
    if value.startswith('"') and value.endswith('"') and len(value) > 1:
        return value
    if _NUMBER.fullmatch(value) or _DATE.fullmatch(value):
        return value
    quantity = _NUMBER_WITH_UNIT.fullmatch(value)
    if quantity:
        number, unit = quantity.group(1), quantity.group(2).strip()
        return f"{number} {unit}" if len(unit) <= 2 else f"{number} ({unit})"
    return f'"{value}"'


def is_webnlg_literal(element: str) -> bool:
    """Whether an object as WebNLG writes it is a literal: quoted text, a number or a date
    (with a unit or not). ``103_Colmore_Row`` and ``1._FC_Magdeburg`` are entities."""
    element = element.strip()
    if element.startswith('"'):
        return True
    return bool(
        _NUMBER.fullmatch(element)
        or _DATE.fullmatch(element)
        or _NUMBER_WITH_UNIT.fullmatch(element)
    )


def to_webnlg_entity(name: str, literal: bool = False) -> str:
    """A subject or object as WebNLG writes it: DBpedia-style name (spaces to underscores), or
    a literal (:func:`to_webnlg_literal`)."""
    if literal:
        return to_webnlg_literal(name)
    return "_".join(name.split())


def from_webnlg_entity(element: str) -> str:
    """A readable name: underscores to spaces, literal quotes removed (``"14L/32R"`` -> 14L/32R)."""
    text = " ".join(element.replace("_", " ").split())
    if len(text) > 1 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1].strip()
    return text


def webnlg_triples(extracted: Iterable[ExtractedTriple]) -> list[Triple]:
    """An extractor's triples for one text, as WebNLG writes them, duplicates dropped (a graph
    holds each fact once, whatever number of sentences state it)."""
    seen: dict[Triple, None] = {}
    for fact in extracted:
        triple = (
            to_webnlg_entity(fact.subject),
            fact.relation.strip(),
            to_webnlg_entity(fact.object, literal=fact.object_literal),
        )
        seen.setdefault(triple, None)
    return list(seen)


# -- candidates and references ------------------------------------------------------------------


def _benchmark_xml(
    texts: Sequence[WebNLGText],
    triples: Sequence[Sequence[Triple]],
    set_tag: str,
    triple_tag: str,
    with_lex: bool,
) -> ET.Element:
    if len(texts) != len(triples):
        raise ValueError(f"{len(texts)} texts but {len(triples)} triple sets")
    benchmark = ET.Element("benchmark")
    entries = ET.SubElement(benchmark, "entries")
    for text, found in zip(texts, triples, strict=True):
        entry = ET.SubElement(
            entries,
            "entry",
            {"category": text.category, "eid": text.eid, "size": str(text.size), "lid": text.lid},
        )
        triple_set = ET.SubElement(entry, set_tag)
        for triple in found:
            ET.SubElement(triple_set, triple_tag).text = format_triple(triple)
        if with_lex:
            ET.SubElement(entry, "lex", {"comment": "good", "lid": text.lid}).text = text.text
    ET.indent(benchmark, space="  ")
    return benchmark


def write_candidates_xml(
    path: Path, texts: Sequence[WebNLGText], candidates: Sequence[Sequence[Triple]]
) -> None:
    """Candidate triples, one ``<entry>`` a text, in the WebNLG 2020 Text-to-RDF format."""
    root = _benchmark_xml(texts, candidates, "generatedtripleset", "gtriple", with_lex=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def candidates_xml(texts: Sequence[WebNLGText], candidates: Sequence[Sequence[Triple]]) -> str:
    """:func:`write_candidates_xml` as a string (for standard output)."""
    root = _benchmark_xml(texts, candidates, "generatedtripleset", "gtriple", with_lex=False)
    body = ET.tostring(root, encoding="unicode")
    return f"<?xml version='1.0' encoding='utf-8'?>\n{body}\n"


def write_references_xml(path: Path, texts: Sequence[WebNLGText]) -> None:
    """The gold triples, one ``<entry>`` a text, in the same order as the candidates: the
    reference file the challenge's script pairs with them by position."""
    root = _benchmark_xml(
        texts, [t.triples for t in texts], "modifiedtripleset", "mtriple", with_lex=True
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


@dataclass(frozen=True)
class CandidateEntry:
    category: str
    eid: str
    size: int | None
    lid: str | None
    triples: tuple[Triple, ...]

    @property
    def id(self) -> str | None:
        """The text's id when the entry names its text (ours do), else None."""
        if self.size is None or self.lid is None:
            return None
        return text_id(self.size, self.category, self.eid, self.lid)


def read_candidates_xml(path: Path) -> list[CandidateEntry]:
    """Entries of a candidates file, in file order."""
    found = []
    for element in ET.parse(path).getroot().iter("entry"):
        size = element.get("size")
        found.append(
            CandidateEntry(
                category=element.get("category", ""),
                eid=element.get("eid", ""),
                size=int(size) if size else None,
                lid=element.get("lid"),
                triples=tuple(
                    parse_triple(g.text or "")
                    for g in element.iterfind("generatedtripleset/gtriple")
                ),
            )
        )
    return found


def write_jsonl(path: Path, ids: Sequence[str], triples: Sequence[Sequence[Triple]]) -> None:
    """``{"id": ..., "triples": [[s, r, o], ...]}`` a line."""
    if len(ids) != len(triples):
        raise ValueError(f"{len(ids)} ids but {len(triples)} triple sets")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for one_id, found in zip(ids, triples, strict=True):
            record = {"id": one_id, "triples": [list(t) for t in found]}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> dict[str, list[Triple]]:
    found: dict[str, list[Triple]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            triples = []
            for triple in record["triples"]:
                if len(triple) != 3:
                    raise ValueError(f"{path}:{number}: a triple is [subject, relation, object]")
                triples.append((str(triple[0]), str(triple[1]), str(triple[2])))
            found[str(record["id"])] = triples
    return found
