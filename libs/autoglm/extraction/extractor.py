"""Schema-guided extraction of facts from free text, without an LLM.

A document is cut into windows of whole sentences that fit the encoder (so a pronoun or "the
film" in one sentence and the name it stands for in an earlier one are read together: the
pair scorer learnt to link them, which is how within-document coreference is resolved). For
each window the frozen encoder's token states go through the trained heads
(``model.SpanRelationExtractor``): span tags give the entity and value mentions, and every
ordered pair of mentions is scored against every relation of the schema. A relation whose
logit clears the adaptive threshold (the "no relation" logit, 0, plus a bias chosen on held-out
training texts) is a fact; its confidence is the sigmoid of the margin. Names are written as
the text gives them (whole spans, not a head word), dates in ISO form and numbers without
separators (``literals``); the evidence of a fact is the character range from the first to the
last character of its two mentions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from autoglm.extraction.features import Featurizer, Tokenized
from autoglm.extraction.literals import normalise_literal
from autoglm.extraction.model import SpanRelationExtractor
from autoglm.extraction.schema import Schema
from autoglm.extraction.types import ExtractedTriple

CharSpan = tuple[int, int]

# Sentence ends: ., ! or ? followed by space and an upper-case letter, digit or quote; not
# after a single capital ("J. R. R. Tolkien") or a common abbreviation.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = re.compile(r"(?:\b[A-Z]|\bMr|\bMrs|\bMs|\bDr|\bSt|\bJr|\bSr|\bNo|\bvs|\bU\.S)\.$")
_PRONOUNS = frozenset(
    [
        "it",
        "he",
        "she",
        "they",
        "its",
        "his",
        "her",
        "their",
        "him",
        "them",
        "this",
        "that",
        "these",
        "those",
        "who",
        "which",
    ]
)
_LEADING = frozenset({"the", "a", "an"})


def split_sentences(text: str) -> list[CharSpan]:
    """Character spans of the sentences of ``text`` (a light rule splitter for texts that come
    without the parser's sentences)."""
    spans: list[CharSpan] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if _ABBREVIATIONS.search(text[start : match.start()]):
            continue
        spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return [(a, b) for a, b in spans if b > a] or [(0, len(text))]


@dataclass(frozen=True)
class Window:
    text_index: int
    start: int
    """Character offset of the window in its text."""
    text: str
    sentences: tuple[CharSpan, ...]
    """Sentence spans of the whole text, and the index of the window's first one."""
    first_sentence: int


def _strip_span(text: str, start: int, end: int) -> CharSpan:
    """A mention without surrounding punctuation and a lower-case leading article ("the Aarhus
    airport" names Aarhus airport; "The Glass Orchard" is a title and keeps its article)."""
    while start < end and not text[start].isalnum() and text[start] not in "\"'(+-$":
        start += 1
    while end > start and not text[end - 1].isalnum() and text[end - 1] not in '")%.':
        end -= 1
    if (
        end > start
        and text[end - 1] == "."
        and not re.search(r"\b[A-Z]\.$|\.\w+\.$", text[start:end])
    ):
        end -= 1
    words = text[start:end].split(" ", 1)
    if len(words) == 2 and words[0] in _LEADING:
        start += len(words[0]) + 1
    return start, end


def _word_bounds(text: str, start: int, end: int) -> CharSpan:
    """Widen a span to whole words (a tagger may stop inside a word piece)."""
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end - 1].isalnum() and text[end].isalnum():
        end += 1
    return start, end


def decode_spans(tags: Sequence[int], tokens: Tokenized) -> list[tuple[int, int]]:
    """Inclusive word-piece ranges tagged B (I ...); an I without a B starts a span too."""
    spans: list[tuple[int, int]] = []
    current: list[int] | None = None
    for index, tag in enumerate(tags):
        a, b = tokens.offsets[index]
        if b <= a:  # special token
            tag = 0
        if tag == 1 or (tag == 2 and current is None):
            if current is not None:
                spans.append((current[0], current[1]))
            current = [index, index]
        elif tag == 2 and current is not None:
            current[1] = index
        else:
            if current is not None:
                spans.append((current[0], current[1]))
            current = None
    if current is not None:
        spans.append((current[0], current[1]))
    return spans


def _paragraph_break(gap: str) -> bool:
    """Whether a sentence and what follows it up to the next sentence end a paragraph: a blank
    line, or a line break right after the sentence (spaCy keeps that white space in the
    sentence, a rule splitter between the two)."""
    return bool(re.search(r"\n\s*\n", gap)) or gap.rstrip(" \t").endswith("\n")


def _join_articles(
    text: str, pieces: list[tuple[int, int]], mentions: list[CharSpan]
) -> tuple[list[tuple[int, int]], list[CharSpan]]:
    """A mention that is only an article ("The") followed by a mention one space later is the
    start of that mention (a title the tagger cut in two: "The | Copper Lantern")."""
    out_pieces: list[tuple[int, int]] = []
    out_mentions: list[CharSpan] = []
    index = 0
    while index < len(mentions):
        start, end = mentions[index]
        if (
            index + 1 < len(mentions)
            and text[start:end] in ("The", "A", "An")
            and mentions[index + 1][0] == end + 1
        ):
            out_pieces.append((pieces[index][0], pieces[index + 1][1]))
            out_mentions.append((start, mentions[index + 1][1]))
            index += 2
            continue
        out_pieces.append(pieces[index])
        out_mentions.append((start, end))
        index += 1
    return out_pieces, out_mentions


class NeuralExtractor:
    """A trained ``SpanRelationExtractor`` applied with a schema."""

    def __init__(
        self,
        model: SpanRelationExtractor,
        featurizer: Featurizer,
        schema: Schema,
        *,
        version: str,
        bias: float = 0.0,
        max_mentions: int = 24,
        max_relations_per_pair: int = 1,
        batch_size: int = 32,
    ) -> None:
        self.model = model.eval()
        self.featurizer = featurizer
        self.schema = schema
        self.version = version
        self.bias = bias
        self.max_mentions = max_mentions
        self.max_relations_per_pair = max_relations_per_pair
        self.batch_size = batch_size
        with torch.no_grad():
            self.relations = model.relations.prepare(featurizer.relation_embeddings(schema))

    # --- windows ----------------------------------------------------------------------------

    def _windows(
        self, texts: Sequence[str], sentences: Sequence[Sequence[CharSpan]] | None
    ) -> list[Window]:
        windows: list[Window] = []
        budget = self.featurizer.max_tokens - 2
        for index, text in enumerate(texts):
            spans = list(sentences[index]) if sentences is not None else split_sentences(text)
            spans = [s for s in spans if text[s[0] : s[1]].strip()] or [(0, len(text))]
            lengths = [len(t) - 2 for t in self.featurizer.tokenize([text[a:b] for a, b in spans])]
            first = 0
            while first < len(spans):
                last, used = first, lengths[first]
                while (
                    last + 1 < len(spans)
                    and used + lengths[last + 1] <= budget
                    # A window never crosses a paragraph break: a paragraph is what a pronoun
                    # can refer back into.
                    and not _paragraph_break(text[spans[last][0] : spans[last + 1][0]])
                ):
                    last += 1
                    used += lengths[last]
                start, end = spans[first][0], spans[last][1]
                windows.append(Window(index, start, text[start:end], tuple(spans), first))
                first = last + 1
        return windows

    # --- extraction -------------------------------------------------------------------------

    @torch.inference_mode()
    def extract(
        self, texts: Sequence[str], sentences: Sequence[Sequence[CharSpan]] | None = None
    ) -> list[list[ExtractedTriple]]:
        """Facts per text. ``sentences``: the sentence spans of each text when known (the
        parser's); otherwise a rule splitter finds them."""
        windows = self._windows(texts, sentences)
        found: list[dict[tuple[str, str, str], ExtractedTriple]] = [{} for _ in texts]
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].text))
        for begin in range(0, len(order), self.batch_size):
            batch = [windows[i] for i in order[begin : begin + self.batch_size]]
            tokenized = self.featurizer.tokenize([w.text for w in batch])
            states, mask = self.featurizer.states(tokenized)
            tokens, tag_logits = self.model.encode(states.float(), mask)
            tags = tag_logits.argmax(-1).tolist()
            for row, window in enumerate(batch):
                length = len(tokenized[row])
                facts = self._window_facts(
                    window, tokenized[row], tokens[row, :length], tags[row][:length]
                )
                into = found[window.text_index]
                for fact in facts:
                    key = (fact.subject.lower(), fact.relation, fact.object.lower())
                    if key not in into or into[key].confidence < fact.confidence:
                        into[key] = fact
        return [sorted(f.values(), key=lambda t: (t.start_char, -t.confidence)) for f in found]

    @staticmethod
    def _mentions(
        window: Window, tokens: Tokenized, pieces: Sequence[tuple[int, int]]
    ) -> list[CharSpan]:
        """The character span of each tagged word-piece range, as a clean name."""
        spans: list[CharSpan] = []
        for first, last in pieces:
            start, end = _word_bounds(
                window.text, tokens.offsets[first][0], tokens.offsets[last][1]
            )
            spans.append(_strip_span(window.text, start, end))
        return spans

    def _window_facts(
        self, window: Window, tokenized: Tokenized, tokens: Tensor, tags: Sequence[int]
    ) -> list[ExtractedTriple]:
        piece_spans = decode_spans(tags, tokenized)
        mentions = self._mentions(window, tokenized, piece_spans)
        piece_spans, mentions = _join_articles(window.text, piece_spans, mentions)
        piece_spans, mentions = piece_spans[: self.max_mentions], mentions[: self.max_mentions]
        if len(piece_spans) < 2:
            return []
        keep = [
            i
            for i, (a, b) in enumerate(mentions)
            if b > a and window.text[a:b].lower() not in _PRONOUNS
        ]
        if len(keep) < 2:
            return []
        spans = torch.tensor([(0, *piece_spans[i]) for i in keep], device=tokens.device)
        pairs = torch.tensor(
            [(h, t) for h in range(len(keep)) for t in range(len(keep)) if h != t],
            device=tokens.device,
        )
        logits = self.model.relation_logits(tokens[None], spans, pairs, self.relations)
        logits = logits - self.bias
        top = logits.topk(min(self.max_relations_per_pair, logits.size(1)), dim=1)
        facts: list[ExtractedTriple] = []
        for p, (values, indices) in enumerate(
            zip(top.values.tolist(), top.indices.tolist(), strict=False)
        ):
            head, tail = (mentions[keep[i]] for i in pairs[p].tolist())
            for value, relation_index in zip(values, indices, strict=True):
                if value <= 0:
                    break
                facts.append(self._fact(window, head, tail, relation_index, value))
        return facts

    def _fact(
        self, window: Window, head: CharSpan, tail: CharSpan, relation_index: int, margin: float
    ) -> ExtractedTriple:
        relation = self.schema.relations[relation_index]
        subject = window.text[head[0] : head[1]]
        value = window.text[tail[0] : tail[1]]
        obj, literal = normalise_literal(value)
        start = window.start + min(head[0], tail[0])
        end = window.start + max(head[1], tail[1])
        sentence = window.first_sentence
        for index, (a, b) in enumerate(window.sentences):
            if a <= start < max(b, a + 1):
                sentence = index
                break
        return ExtractedTriple(
            subject=subject,
            relation=relation.name,
            object=obj,
            sentence=sentence,
            start_char=start,
            end_char=end,
            confidence=1.0 / (1.0 + math.exp(-margin)),
            subject_type=relation.subject_type,
            object_type=relation.object_type,
            object_literal=literal or relation.literal_object,
        )
