"""MetaQA questions become training samples: (question text, retrieved subgraph, gold answers).

Subgraphs come from the KB file held in memory (:class:`~autoglm.graph.memory.InMemoryGraph`)
through the same :class:`~autoglm.graph.retrieval.SubgraphRetriever`, scorer and caps as the
graph-builder uses against Neo4j, and the question text is the one inference sees (brackets
removed), so the model trains on exactly what it will be served. Retrieving tens of thousands of
subgraphs takes minutes, so the samples are cached on disk, keyed by everything they depend on.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from autoglm.contracts import Subgraph
from autoglm.graph.memory import InMemoryGraph
from autoglm.graph.path_scoring import (
    QuestionEncoding,
    RelationPathScorer,
    content_words,
    scoring_text,
)
from autoglm.graph.retrieval import RetrievalCaps, SubgraphRetriever
from autoglm.nlp.keys import normalize_key
from autoglm.nlp.parsing import strip_brackets
from autoglm.training.loop import QASample
from autoglm.training.metaqa import QAExample

SAMPLES_FORMAT = 1


@dataclass(frozen=True)
class SampleCaps:
    max_nodes: int
    max_edges: int


def model_question(example: QAExample) -> str:
    """The text inference gives the model: the question with its bracket marks removed."""
    return strip_brackets(example.question)


def retrieval_text(example: QAExample) -> str:
    """What the graph-builder scores relation paths against (anchor mention removed)."""
    return scoring_text(model_question(example), [example.topic])


async def retrieve_sample(
    retriever: SubgraphRetriever, example: QAExample, caps: SampleCaps
) -> QASample:
    anchor = normalize_key(example.topic)
    text = retrieval_text(example)
    subgraph = await retriever.retrieve(
        [anchor], RetrievalCaps(example.hops, caps.max_nodes, caps.max_edges), text
    )
    return QASample(
        question=model_question(example),
        subgraph=subgraph,
        answer_keys=frozenset(normalize_key(a) for a in example.answers),
        hops=example.hops,
    )


def retrieve_samples(
    retriever: SubgraphRetriever,
    examples: Sequence[QAExample],
    caps: SampleCaps,
    description: str,
    progress: bool = True,
) -> list[QASample]:
    async def run() -> list[QASample]:
        return [
            await retrieve_sample(retriever, example, caps)
            for example in tqdm(examples, desc=description, unit="q", disable=not progress)
        ]

    if retriever.scorer is None:
        return asyncio.run(run())
    with PreparedQuestions(retriever.scorer) as prepared:
        prepared.prepare([retrieval_text(e) for e in examples])
        return asyncio.run(run())


def answer_recall(samples: Sequence[QASample]) -> float:
    """Share of samples whose subgraph holds at least one gold answer (the ceiling of Hits@1)."""
    if not samples:
        return 0.0
    found = sum(any(n.key in s.answer_keys for n in s.subgraph.nodes) for s in samples)
    return found / len(samples)


class SampleCache:
    """Samples pickled under ``root``, one file per (fingerprint, name)."""

    def __init__(self, root: Path, fingerprint: str) -> None:
        self.root = root
        self.fingerprint = hashlib.sha256(f"{SAMPLES_FORMAT}|{fingerprint}".encode()).hexdigest()[
            :16
        ]

    def path(self, name: str) -> Path:
        return self.root / f"{name}-{self.fingerprint}.pkl"

    def load(self, name: str) -> list[QASample] | None:
        path = self.path(name)
        if not path.is_file():
            return None
        try:
            rows = pickle.loads(path.read_bytes())
        except (pickle.UnpicklingError, EOFError, ValueError):
            return None  # a torn file from an interrupted run: rebuild it
        return [QASample(q, Subgraph.FromString(g), frozenset(a), h) for q, g, a, h in rows]

    def save(self, name: str, samples: Sequence[QASample]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        rows = [
            (s.question, s.subgraph.SerializeToString(), sorted(s.answer_keys), s.hops)
            for s in samples
        ]
        tmp = self.path(name).with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
        tmp.replace(self.path(name))


def cached_samples(
    cache: SampleCache,
    name: str,
    retriever: SubgraphRetriever,
    examples: Sequence[QAExample],
    caps: SampleCaps,
    progress: bool = True,
) -> list[QASample]:
    samples = cache.load(name)
    if samples is None or len(samples) != len(examples):
        samples = retrieve_samples(retriever, examples, caps, f"retrieve {name}", progress)
        cache.save(name, samples)
    return samples


def graph_from_kb(path: Path) -> InMemoryGraph:
    return InMemoryGraph.from_kb_file(path)


class PreparedQuestions:
    """Question encodings computed in batches ahead of retrieval (one encoder call per 128
    questions instead of one per question), handed to the scorer as it asks for them."""

    def __init__(self, scorer: RelationPathScorer) -> None:
        self.scorer = scorer
        self._prepared: dict[str, QuestionEncoding] = {}
        self._encode_one = scorer.encode_question

    def prepare(self, texts: Sequence[str], batch_size: int = 128) -> None:
        unique = [t for t in dict.fromkeys(texts) if t not in self._prepared]
        for start in range(0, len(unique), batch_size):
            chunk = unique[start : start + batch_size]
            with torch.inference_mode():
                vectors = self.scorer.embed(chunk).detach().cpu()
            for text, vector in zip(chunk, vectors, strict=True):
                words = tuple(content_words(text))
                word_vectors = self.scorer._cached_vectors(list(words)) if words else torch.empty(0)
                self._prepared[text] = QuestionEncoding(text, vector, words, word_vectors)

    def encode_question(self, text: str) -> QuestionEncoding:
        prepared = self._prepared.pop(text, None)
        return prepared if prepared is not None else self._encode_one(text)

    def __enter__(self) -> PreparedQuestions:
        self.scorer.encode_question = self.encode_question  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.scorer.encode_question = self._encode_one  # type: ignore[method-assign]
        self._prepared.clear()
