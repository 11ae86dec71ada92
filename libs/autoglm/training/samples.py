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

from tqdm import tqdm

from autoglm.contracts import Subgraph
from autoglm.graph.memory import InMemoryGraph
from autoglm.graph.path_scoring import QuestionEncoding, load_path_scorer, scoring_text
from autoglm.graph.questions import guidance_params
from autoglm.graph.retrieval import RetrievalCaps, SubgraphRetriever
from autoglm.nlp.keys import normalize_key
from autoglm.nlp.parsing import strip_brackets
from autoglm.settings import Settings
from autoglm.training.loop import QASample
from autoglm.training.metaqa import QAExample

SAMPLES_FORMAT = 1


@dataclass(frozen=True)
class SampleCaps:
    max_nodes: int
    max_edges: int


def kb_retriever(settings: Settings, kb_path: Path) -> SubgraphRetriever:
    """The graph-builder's retriever (its scorer and beam settings) over a KB file in memory."""
    return SubgraphRetriever(
        InMemoryGraph.from_kb_file(kb_path),
        scorer=load_path_scorer(settings),
        guidance=guidance_params(settings),
    )


def model_question(example: QAExample) -> str:
    """The text inference gives the model: the question with its bracket marks removed."""
    return strip_brackets(example.question)


def retrieval_text(example: QAExample) -> str:
    """What the graph-builder scores relation paths against (anchor mention removed)."""
    return scoring_text(model_question(example), [example.topic])


async def retrieve_sample(
    retriever: SubgraphRetriever,
    example: QAExample,
    caps: SampleCaps,
    encoding: QuestionEncoding | None = None,
) -> QASample:
    anchor = normalize_key(example.topic)
    text = retrieval_text(example)
    subgraph = await retriever.retrieve(
        [anchor],
        RetrievalCaps(example.hops, caps.max_nodes, caps.max_edges),
        text,
        encoding=encoding,
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
    encode_batch: int = 128,
) -> list[QASample]:
    """Samples in order; the questions are encoded ``encode_batch`` at a time, as the
    graph-builder encodes a batch of questions."""

    async def run() -> list[QASample]:
        samples = []
        bar = tqdm(total=len(examples), desc=description, unit="q", disable=not progress)
        for start in range(0, len(examples), encode_batch):
            chunk = examples[start : start + encode_batch]
            encodings: list[QuestionEncoding | None] = [None] * len(chunk)
            if retriever.scorer is not None:
                texts = [retrieval_text(e) for e in chunk]
                encodings = list(await asyncio.to_thread(retriever.scorer.encode_questions, texts))
            for example, encoding in zip(chunk, encodings, strict=True):
                samples.append(await retrieve_sample(retriever, example, caps, encoding))
                bar.update()
        bar.close()
        return samples

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
