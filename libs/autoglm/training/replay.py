"""Replay and distillation: what keeps incremental training from forgetting.

- :class:`ReplayBuffer` keeps a uniform sample of every example seen so far (reservoir sampling,
  Vitter's algorithm R), so each incremental round mixes new examples with old ones in proportion
  to what the model has learnt from, however long the loop has run; it is saved atomically so a
  restarted trainer resumes with the same buffer. It is saved as JSON (bytes items in base64),
  never pickled: unpickling a file runs whatever code it names, and the trainer's state folder
  must not be a way to run code in the trainer.
- :func:`distillation_loss` pulls the candidate's per-graph answer distribution towards the
  serving model's (temperature-scaled soft targets, Hinton et al.), so what the serving model
  does well is not unlearnt for the sake of a few new examples.
"""

from __future__ import annotations

import base64
import json
import os
import random
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import torch
from torch import Tensor

from autoglm.models.batching import GraphBatch

T = TypeVar("T")

REPLAY_FORMAT = "autoglm-replay/1"


@dataclass
class ReplayBuffer(Generic[T]):
    capacity: int
    seed: int = 0
    items: list[T] = field(default_factory=list)
    seen: int = 0
    tag: int = 0  # the owner's bookmark (the trainer: the last round added), saved with it
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("replay capacity must be at least 1")
        self._rng = random.Random(self.seed)

    def add(self, item: T) -> None:
        """Every item ever added stays in the buffer with probability capacity / seen."""
        self.seen += 1
        if len(self.items) < self.capacity:
            self.items.append(item)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.capacity:
            self.items[slot] = item

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.add(item)

    def sample(self, count: int) -> list[T]:
        return self._rng.sample(self.items, min(count, len(self.items)))

    def save(self, path: Path) -> None:
        """Write the buffer as JSON, atomically and durably (a reader sees the old buffer or the
        new one, also after a power cut)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        binary = any(isinstance(item, bytes) for item in self.items)
        version, internal, gauss = self._rng.getstate()
        state = {
            "format": REPLAY_FORMAT,
            "capacity": self.capacity,
            "seed": self.seed,
            "seen": self.seen,
            "tag": self.tag,
            "rng": [version, list(internal), gauss],
            "item_encoding": "base64" if binary else "json",
            "items": [
                base64.b64encode(item).decode("ascii") if isinstance(item, bytes) else item
                for item in self.items
            ],
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(state, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, capacity: int, seed: int = 0) -> ReplayBuffer[T]:
        """The saved buffer, or an empty one when there is none. A file that is not a saved
        buffer (corrupt, or planted) raises ``ValueError``; nothing in it is executed."""
        if not path.is_file():
            return cls(capacity, seed)
        try:
            state = json.loads(path.read_bytes())
            if not isinstance(state, dict) or state.get("format") != REPLAY_FORMAT:
                raise ValueError(f"not a {REPLAY_FORMAT} file")
            items = list(state["items"])
            if state["item_encoding"] == "base64":
                items = [base64.b64decode(item, validate=True) for item in items]
            version, internal, gauss = state["rng"]
            buffer: ReplayBuffer[T] = cls(
                int(state["capacity"]),
                int(state["seed"]),
                items,
                int(state["seen"]),
                int(state["tag"]),
            )
            buffer._rng.setstate((int(version), tuple(int(n) for n in internal), gauss))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"{path} is not a replay buffer saved by the trainer ({exc}); it was not loaded. "
                "Move it away to start with an empty buffer."
            ) from exc
        return buffer


def distillation_loss(
    student: Tensor, teacher: Tensor, batch: GraphBatch, temperature: float = 2.0
) -> Tensor:
    r"""Per-graph :math:`T^2 \, \mathrm{KL}(p_T^{teacher} \,\|\, p_T^{student})`, averaged over
    graphs, where :math:`p_T` is the softmax of logits / T over a graph's nodes (anchors
    excluded, as at prediction time).

    Shapes:
        - **student, teacher:** :math:`(N,)` logits
        - **output:** scalar
    """
    keep = ~batch.is_anchor
    log_student = _graph_log_softmax(student / temperature, batch, keep)
    log_teacher = _graph_log_softmax(teacher.detach() / temperature, batch, keep)
    pointwise = torch.where(keep, log_teacher.exp() * (log_teacher - log_student), 0.0)
    per_graph = torch.zeros(batch.num_graphs, device=student.device).index_add(
        0, batch.node_graph, pointwise
    )
    return per_graph.mean() * temperature**2


def _graph_log_softmax(logits: Tensor, batch: GraphBatch, keep: Tensor) -> Tensor:
    masked = logits.masked_fill(~keep, float("-inf"))
    top = torch.full((batch.num_graphs,), float("-inf"), device=logits.device)
    top = top.scatter_reduce(0, batch.node_graph, masked, reduce="amax")
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    shifted = masked - top[batch.node_graph]
    norm = torch.zeros(batch.num_graphs, device=logits.device).index_add(
        0, batch.node_graph, shifted.exp()
    )
    log_norm = norm.clamp(min=1e-30).log()
    return torch.where(keep, shifted - log_norm[batch.node_graph], 0.0)
