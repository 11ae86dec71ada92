"""Replay buffer (reservoir sampling, resumable) and distillation loss."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from autoglm.models.batching import collate_subgraphs
from autoglm.training.replay import ReplayBuffer, distillation_loss
from tests.unit.test_reasoner import subgraph


def test_reservoir_keeps_a_uniform_sample_of_everything_seen():
    kept: Counter[int] = Counter()
    for seed in range(300):
        buffer: ReplayBuffer[int] = ReplayBuffer(capacity=10, seed=seed)
        buffer.extend(range(100))
        assert len(buffer.items) == 10 and buffer.seen == 100
        kept.update(buffer.items)
    # Each of 100 items is kept with probability 10/100: ~30 times in 300 runs, early or late.
    early = sum(kept[i] for i in range(50))
    late = sum(kept[i] for i in range(50, 100))
    assert abs(early - late) < 0.15 * (early + late)
    assert min(kept.values()) > 5


def test_saved_buffer_resumes_exactly(tmp_path):
    path = tmp_path / "replay.pkl"
    buffer: ReplayBuffer[str] = ReplayBuffer(capacity=5, seed=3)
    buffer.extend(f"x{i}" for i in range(20))
    buffer.save(path)
    resumed: ReplayBuffer[str] = ReplayBuffer.load(path, capacity=5, seed=3)
    buffer.extend(f"y{i}" for i in range(20))
    resumed.extend(f"y{i}" for i in range(20))
    assert resumed.items == buffer.items and resumed.seen == buffer.seen == 40
    assert ReplayBuffer.load(tmp_path / "none.pkl", capacity=4).items == []


def test_distillation_is_zero_for_the_teacher_itself_and_positive_otherwise():
    batch = collate_subgraphs([subgraph("Jaws"), subgraph("Duel")])
    torch.manual_seed(0)
    teacher = torch.randn(batch.node_graph.numel())
    assert float(distillation_loss(teacher, teacher, batch)) == pytest.approx(0.0, abs=1e-6)
    # Anchors do not count: changing an anchor's logit changes nothing.
    shifted = teacher.clone()
    shifted[batch.is_anchor] += 5.0
    assert float(distillation_loss(shifted, teacher, batch)) == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(batch.node_graph.numel(), requires_grad=True)
    loss = distillation_loss(student, teacher, batch)
    assert float(loss) > 0
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
