"""The extractor's model: shapes, batch independence, and the adaptive-threshold loss."""

from __future__ import annotations

import torch

from autoglm.extraction.model import SpanRelationExtractor
from autoglm.extraction.training import _relation_loss


def _model() -> SpanRelationExtractor:
    torch.manual_seed(0)
    return SpanRelationExtractor(in_dim=16, dim=8, near=2).eval()


def test_shapes():
    model = _model()
    states, mask = torch.randn(2, 7, 16), torch.ones(2, 7, dtype=torch.bool)
    tokens, tags = model.encode(states, mask)
    assert tokens.shape == (2, 7, 8) and tags.shape == (2, 7, 3)
    spans = torch.tensor([[0, 1, 2], [0, 4, 4], [1, 0, 6], [1, 1, 1]])
    pairs = torch.tensor([[0, 1], [1, 0], [2, 3]])
    relations = model.relations.prepare(torch.randn(5, 16))
    assert model.relation_logits(tokens, spans, pairs, relations).shape == (3, 5)


def test_a_pair_scores_the_same_alone_or_batched_with_other_texts():
    model = _model()
    states = torch.randn(2, 9, 16)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    relations = model.relations.prepare(torch.randn(4, 16))
    with torch.no_grad():
        tokens, _ = model.encode(states, mask)
        both = model.relation_logits(
            tokens,
            torch.tensor([[0, 0, 1], [0, 5, 6], [1, 0, 0], [1, 3, 5]]),
            torch.tensor([[0, 1], [2, 3]]),
            relations,
        )
        alone_tokens, _ = model.encode(states[1:, :6], mask[1:, :6])
        alone = model.relation_logits(
            alone_tokens, torch.tensor([[0, 0, 0], [0, 3, 5]]), torch.tensor([[0, 1]]), relations
        )
    assert torch.allclose(both[1], alone[0], atol=1e-5)


def test_unseen_relations_are_scored_from_their_embedding():
    model = _model()
    tokens, _ = model.encode(torch.randn(1, 5, 16), torch.ones(1, 5, dtype=torch.bool))
    spans, pairs = torch.tensor([[0, 0, 1], [0, 3, 4]]), torch.tensor([[0, 1]])
    few = model.relation_logits(tokens, spans, pairs, model.relations.prepare(torch.randn(3, 16)))
    more = torch.cat([torch.randn(3, 16), torch.randn(2, 16)])
    assert model.relation_logits(tokens, spans, pairs, model.relations.prepare(more)).shape == (
        1,
        5,
    )
    assert few.shape == (1, 3)


def test_adaptive_threshold_loss_wants_gold_above_zero_and_the_rest_below():
    positives = torch.tensor([[True, False, False], [False, False, False]])
    right = torch.tensor([[4.0, -4.0, -4.0], [-4.0, -4.0, -4.0]])
    wrong = torch.tensor([[-4.0, 4.0, -4.0], [4.0, -4.0, -4.0]])
    assert _relation_loss(right, positives) < 0.1 < _relation_loss(wrong, positives)
    assert torch.isfinite(_relation_loss(right, positives))
    logits = torch.zeros(2, 3, requires_grad=True)
    _relation_loss(logits, positives).backward()
    assert logits.grad is not None
    assert logits.grad[0, 0] < 0 < logits.grad[0, 1]  # the gold one pushed up, others down
    assert (logits.grad[1] > 0).all()  # no relation: every logit pushed below the threshold
