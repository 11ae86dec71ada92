"""spaCy-based parsing of questions and documents, and the structured-triple fast path."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from autoglm.contracts import LineError, Mention, Sentence, Triple
from autoglm.nlp.keys import normalize_key

# A marked topic entity, as in MetaQA: "what films did [Ginger Rogers] star in".
BRACKET_PATTERN = re.compile(r"\[([^\[\]]+)\]")

# Entity labels that name things a knowledge graph holds; numbers and ordinals are left out.
ENTITY_LABELS = frozenset(
    {
        "PERSON",
        "ORG",
        "GPE",
        "LOC",
        "NORP",
        "WORK_OF_ART",
        "EVENT",
        "FAC",
        "PRODUCT",
        "LANGUAGE",
        "DATE",
        "LAW",
    }
)
_SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
_OBJECT_DEPS = frozenset({"dobj", "attr", "oprd"})


def strip_brackets(text: str) -> str:
    return BRACKET_PATTERN.sub(lambda m: m.group(1), text)


@dataclass
class ParsedQuestionText:
    normalized_text: str
    mentions: list[Mention]


@dataclass
class ParsedText:
    sentences: list[Sentence]
    entities: list[Mention]
    triples: list[Triple]


class TextParser:
    """A loaded spaCy pipeline; ``nlp.pipe`` batches across messages."""

    def __init__(self, model: str, batch_size: int = 64) -> None:
        self.nlp: Language = spacy.load(model)
        self.batch_size = batch_size

    def parse_questions(self, texts: Sequence[str]) -> list[ParsedQuestionText]:
        plain = [strip_brackets(t) for t in texts]
        docs = self.nlp.pipe(plain, batch_size=self.batch_size)
        return [_question_mentions(text, doc) for text, doc in zip(texts, docs, strict=True)]

    def tokenize(self, text: str) -> Doc:
        """The tokenizer alone: cheap, so a document's size in tokens is known before the
        tagger, parser and NER are run on it."""
        return self.nlp.make_doc(text)

    def parse_documents(
        self, texts: Sequence[str | Doc], *, with_triples: bool = True
    ) -> list[ParsedText]:
        """Texts, or documents from ``tokenize`` (not tokenized twice), through ``nlp.pipe``;
        ``with_triples``: also subject-verb-object triples (when no schema extractor runs)."""
        docs = self.nlp.pipe(texts, batch_size=self.batch_size)
        return [_document_structure(doc, with_triples) for doc in docs]


def _question_mentions(original: str, doc: Doc) -> ParsedQuestionText:
    mentions: list[Mention] = []
    # Bracketed mentions are the user's own marking: they come first and are trusted most.
    # Offsets refer to the question with the brackets removed.
    removed = 0
    for match in BRACKET_PATTERN.finditer(original):
        start = match.start() - removed
        text = match.group(1)
        mentions.append(
            Mention(
                text=text,
                label="BRACKET",
                start_char=start,
                end_char=start + len(text),
                key=normalize_key(text),
                source="bracket",
            )
        )
        removed += 2
    seen = {m.key for m in mentions}
    for ent in doc.ents:
        key = normalize_key(ent.text)
        if ent.label_ in ENTITY_LABELS and key not in seen:
            mentions.append(_mention(ent, "ner"))
            seen.add(key)
    return ParsedQuestionText(normalized_text=doc.text, mentions=mentions)


def _mention(span: Span, source: str) -> Mention:
    return Mention(
        text=span.text,
        label=span.label_,
        start_char=span.start_char,
        end_char=span.end_char,
        key=normalize_key(span.text),
        source=source,
    )


def _document_structure(doc: Doc, with_triples: bool = True) -> ParsedText:
    sentences = [
        Sentence(text=s.text, start_char=s.start_char, end_char=s.end_char) for s in doc.sents
    ]
    entities = [_mention(e, "ner") for e in doc.ents if e.label_ in ENTITY_LABELS]
    triples: list[Triple] = []
    for index, sent in enumerate(doc.sents if with_triples else ()):
        triples.extend(_sentence_triples(sent, index))
    return ParsedText(sentences=sentences, entities=entities, triples=triples)


def _phrase(token: Token) -> str:
    """The entity span a token belongs to, else its compound/modifier phrase."""
    if token.ent_type_:
        for ent in token.doc.ents:
            if ent.start <= token.i < ent.end:
                return ent.text
    parts = [t for t in token.subtree if t.dep_ in ("compound", "amod", "nummod") or t == token]
    return " ".join(t.text for t in sorted(parts, key=lambda t: t.i))


def _sentence_triples(sent: Span, index: int) -> Iterable[Triple]:
    """Subject-verb-object triples from the dependency parse.

    ``X directed Y`` gives (X, direct, Y); ``X was born in Y`` gives (X, bear_in, Y). Triples whose
    both ends are named entities are more reliable than those with a plain noun, hence the
    confidence.
    """
    for verb in (t for t in sent if t.pos_ in ("VERB", "AUX")):
        subjects = [c for c in verb.children if c.dep_ in _SUBJECT_DEPS]
        objects: list[tuple[Token, str]] = [
            (c, verb.lemma_) for c in verb.children if c.dep_ in _OBJECT_DEPS
        ]
        for prep in (c for c in verb.children if c.dep_ in ("prep", "agent")):
            objects.extend(
                (p, f"{verb.lemma_}_{prep.lemma_}") for p in prep.children if p.dep_ == "pobj"
            )
        for subject in subjects:
            for obj, predicate in objects:
                named = sum(1 for t in (subject, obj) if t.ent_type_)
                yield Triple(
                    subject=_phrase(subject),
                    predicate=predicate.lower(),
                    object=_phrase(obj),
                    sentence=index,
                    confidence=(0.5, 0.75, 0.9)[named],
                )


def parse_kb_lines(
    text: str, first_line: int = 1, max_field_chars: int | None = None
) -> tuple[list[Triple], list[LineError]]:
    """Structured input, one ``subject|relation|object`` per line; no NLP.

    A bad line is reported with its number and does not spoil the others.
    """
    triples: list[Triple] = []
    errors: list[LineError] = []
    for offset, line in enumerate(text.split("\n")):
        number = first_line + offset
        stripped = line.strip()
        if not stripped:
            continue
        fields = stripped.split("|")
        if len(fields) != 3:
            errors.append(
                LineError(
                    line=number,
                    content=line[:500],
                    reason=f"expected 3 fields separated by '|', got {len(fields)}",
                )
            )
            continue
        subject, relation, obj = (f.strip() for f in fields)
        if not subject or not relation or not obj:
            errors.append(LineError(line=number, content=line[:500], reason="empty field"))
            continue
        if (
            max_field_chars is not None
            and max(map(len, (subject, relation, obj))) > max_field_chars
        ):
            errors.append(
                LineError(
                    line=number,
                    content=line[:500],
                    reason=f"field longer than {max_field_chars} characters",
                )
            )
            continue
        triples.append(
            Triple(subject=subject, predicate=relation, object=obj, sentence=-1, confidence=1.0)
        )
    return triples, errors
