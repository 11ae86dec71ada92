"""What inference needs from a model, whatever its architecture."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from autoglm.contracts import Answer, PathEdge, ReasoningInput


@dataclass
class Prediction:
    answers: list[Answer]
    confidence: float
    reasoning_path: list[PathEdge] = field(default_factory=list)


class AnswerModel(Protocol):
    """Scores the nodes of each subgraph as answers; one call serves a whole batch."""

    version: str

    def predict(self, inputs: Sequence[ReasoningInput]) -> list[Prediction]: ...
