"""MetaQA questions become training samples: (question text, retrieved subgraph, gold answers).

Subgraphs come from the KB file held in memory (:class:`~autoglm.graph.memory.InMemoryGraph`)
through the same :class:`~autoglm.graph.retrieval.SubgraphRetriever`, scorer and caps as the
graph-builder uses against Neo4j, and the question text is the one inference sees (brackets
removed), so the model trains on exactly what it will be served. Retrieving tens of thousands of
subgraphs takes minutes, so the samples are cached on disk, keyed by everything they depend on.

The cache files hold a JSON index and the subgraphs as protobuf bytes, never a pickle: a file
planted under ``models/cache`` must not run code in whoever trains; one that is not in the
format (torn, planted, from an older version) is ignored and rebuilt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError
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

SAMPLES_FORMAT = 2  # 1 was a pickle
_MAGIC = b"AUTOGLM-SAMPLES\n"
_INDEX_LENGTH = struct.Struct(">Q")

log = logging.getLogger(__name__)


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
    """Samples under ``root``, one file per (fingerprint, name): the magic line, the length of
    a JSON index (8 bytes, big-endian), the index (question, answer keys, hops and subgraph
    length per sample), then the subgraphs as protobuf bytes."""

    def __init__(self, root: Path, fingerprint: str) -> None:
        self.root = root
        self.fingerprint = hashlib.sha256(f"{SAMPLES_FORMAT}|{fingerprint}".encode()).hexdigest()[
            :16
        ]

    def path(self, name: str) -> Path:
        return self.root / f"{name}-{self.fingerprint}.samples"

    def load(self, name: str) -> list[QASample] | None:
        path = self.path(name)
        if not path.is_file():
            return None
        try:
            return _read_samples(path.read_bytes())
        except (ValueError, KeyError, TypeError, struct.error, DecodeError) as exc:
            # A torn file from an interrupted run, or one that is not ours: rebuild it.
            log.warning("sample cache file ignored", extra={"path": str(path), "error": str(exc)})
            return None

    def save(self, name: str, samples: Sequence[QASample]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        graphs = [s.subgraph.SerializeToString() for s in samples]
        index = json.dumps(
            {
                "format": SAMPLES_FORMAT,
                "rows": [
                    [s.question, sorted(s.answer_keys), s.hops, len(g)]
                    for s, g in zip(samples, graphs, strict=True)
                ],
            }
        ).encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(_MAGIC + _INDEX_LENGTH.pack(len(index)) + index)
                for graph in graphs:
                    file.write(graph)
            os.replace(tmp, self.path(name))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _read_samples(data: bytes) -> list[QASample]:
    if not data.startswith(_MAGIC):
        raise ValueError("not a sample cache file")
    at = len(_MAGIC)
    (length,) = _INDEX_LENGTH.unpack_from(data, at)
    at += _INDEX_LENGTH.size
    index = json.loads(data[at : at + length])
    if index.get("format") != SAMPLES_FORMAT:
        raise ValueError(f"sample cache format {index.get('format')!r}")
    at += length
    samples = []
    for question, answers, hops, size in index["rows"]:
        if at + size > len(data):
            raise ValueError("sample cache file is truncated")
        subgraph = Subgraph.FromString(data[at : at + size])
        samples.append(QASample(str(question), subgraph, frozenset(answers), int(hops)))
        at += size
    if at != len(data):
        raise ValueError("sample cache file has trailing bytes")
    return samples


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
