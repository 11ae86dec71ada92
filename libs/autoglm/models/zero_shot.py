"""Zero-shot relation-path scorer: the model served until a trained version is registered.

Every path of up to ``hops`` edges from an anchor is verbalised from its relation names
("film starred actors", "directed by ... release year"), embedded with the text encoder and
compared with the question. Nodes reached by the best-matching path are the answers. It needs no
training, so a fresh installation answers simple questions; the trained fusion model of the
reasoning issue replaces it through the registry.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import torch

from autoglm.contracts import Answer, PathEdge, ReasoningInput, Subgraph
from autoglm.models.base import Prediction, path_edge
from autoglm.models.text_encoder import TextEncoder

# Paths explored per question; beyond this the subgraph is too big for exhaustive paths.
MAX_PATHS = 20_000
# Small embedding models confuse short relation names ("directed by" vs "starred actors"); a
# shared word stem between question and path is strong evidence, so it adds this much score.
LEXICAL_BONUS = 0.3
_STOPWORDS = frozenset({"has", "the", "of", "by", "in", "is", "a", "an", "to", "and"})
_WORD = re.compile(r"[a-z]+")


def _stems(text: str) -> set[str]:
    """Crude stems (first four letters): "directed" and "direct" share one, no NLP needed."""
    return {w[:4] for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 2}


def lexical_overlap(question: str, phrase: str) -> float:
    """Fraction of the phrase's stems that occur in the question."""
    stems = _stems(phrase)
    return len(stems & _stems(question)) / len(stems) if stems else 0.0


def relation_phrase(relation: str, forward: bool) -> str:
    words = relation.replace("_", " ").strip()
    return words if forward else f"{words} of"


Path = tuple[tuple[str, ...], list[int], int]


def _paths(subgraph: Subgraph, hops: int) -> list[Path]:
    """(relation phrases, edge ids, end node) for each simple path from an anchor, up to
    ``hops`` edges long."""
    incident: dict[int, list[tuple[int, int, bool]]] = defaultdict(list)
    for edge, (s, t) in enumerate(zip(subgraph.edge_source, subgraph.edge_target, strict=True)):
        incident[s].append((edge, t, True))
        incident[t].append((edge, s, False))
    paths: list[Path] = []
    frontier: list[tuple[int, tuple[str, ...], list[int], frozenset[int]]] = [
        (a, (), [], frozenset({a})) for a in subgraph.anchor_indices
    ]
    for _ in range(hops):
        next_frontier = []
        for node, phrases, edges, visited in frontier:
            for edge, other, forward in incident[node]:
                if other in visited:
                    continue
                relation = subgraph.relation_types[subgraph.edge_relation[edge]]
                step = (
                    (*phrases, relation_phrase(relation, forward)),
                    [*edges, edge],
                    visited | {other},
                )
                paths.append((step[0], step[1], other))
                next_frontier.append((other, *step))
                if len(paths) >= MAX_PATHS:
                    return paths
        frontier = next_frontier
    return paths


class ZeroShotPathScorer:
    version = "zero-shot-minilm"

    def __init__(self, encoder: TextEncoder, temperature: float = 0.05) -> None:
        self.encoder = encoder.eval()
        self.temperature = temperature

    @torch.inference_mode()
    def predict(self, inputs: Sequence[ReasoningInput]) -> list[Prediction]:
        questions = [i.question.normalized_text or i.question.question.text for i in inputs]
        question_vectors = self.encoder(questions)
        return [
            self._predict_one(item, text, question_vectors[n])
            for n, (item, text) in enumerate(zip(inputs, questions, strict=True))
        ]

    def _predict_one(self, item: ReasoningInput, text: str, question: torch.Tensor) -> Prediction:
        subgraph = item.subgraph
        paths = _paths(subgraph, max(1, item.hops))
        if not paths:
            return Prediction(answers=[], confidence=0.0)
        phrases = sorted({p for p, _, _ in paths})
        phrase_vectors = self.encoder([" ".join(p) for p in phrases])
        lexical = torch.tensor(
            [lexical_overlap(text, " ".join(p)) for p in phrases], device=phrase_vectors.device
        )
        similarity = phrase_vectors @ question + LEXICAL_BONUS * lexical
        probability = torch.softmax(similarity / self.temperature, dim=0)
        phrase_prob = {p: float(probability[n]) for n, p in enumerate(phrases)}
        best_by_node: dict[int, tuple[float, list[int]]] = {}
        anchors = set(subgraph.anchor_indices)
        for phrase, edges, end in paths:
            if end in anchors:
                continue
            score = phrase_prob[phrase]
            if end not in best_by_node or score > best_by_node[end][0]:
                best_by_node[end] = (score, edges)
        ranked = sorted(
            best_by_node.items(), key=lambda kv: (-kv[1][0], subgraph.nodes[kv[0]].name)
        )
        answers = []
        for node, (score, edges) in ranked[: max(1, item.top_k)]:
            answers.append(
                Answer(
                    key=subgraph.nodes[node].key,
                    name=subgraph.nodes[node].name,
                    probability=score,
                    path=self._path_edges(subgraph, edges),
                )
            )
        top = answers[0] if answers else None
        return Prediction(
            answers=answers,
            confidence=top.probability if top else 0.0,
            reasoning_path=list(top.path) if top else [],
        )

    @staticmethod
    def _path_edges(subgraph: Subgraph, edges: list[int]) -> list[PathEdge]:
        return [path_edge(subgraph, edge, 1.0) for edge in edges]
