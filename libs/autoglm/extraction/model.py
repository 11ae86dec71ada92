"""The span-and-relation extractor: which spans of a text are entities or values, and which
schema relation (if any) holds between each ordered pair of them.

It reads the token states of the frozen text encoder (MiniLM, the reasoning model's encoder),
so a text is encoded once and every head is small enough to train on two CPU cores. Relations
are scored against an embedding of their *name and description* rather than a row of a fixed
output layer, so a schema may name relations no training text states: they are scored by how
close their description is to what the pair's context says (lower scores when unsure).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

TAGS = ("O", "B", "I")
"""Span tags of a token: outside, beginning, inside."""


class TokenContext(nn.Module):
    r"""Adapts frozen encoder token states to extraction: a projection and one self-attention
    layer trained for the task.

    Shapes:
        - **states:** :math:`(B, T, H_{in})`, **mask:** :math:`(B, T)` (True = token)
        - **output:** :math:`(B, T, D)`
    """

    def __init__(self, in_dim: int, dim: int, heads: int = 4, layers: int = 1) -> None:
        super().__init__()
        self.project = nn.Linear(in_dim, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=0.1, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.project.reset_parameters()

    def forward(self, states: Tensor, mask: Tensor) -> Tensor:
        return self.encoder(self.project(states), src_key_padding_mask=~mask)


class PairEncoder(nn.Module):
    r"""One vector per ordered span pair: both spans, their product, what lies between them
    (the mean token state), the few tokens next to each span on the inside (where "directed
    by" or "born in" sits: a mean over the whole gap blurs them) and their signed distance. A
    whole batch at once: spans name their text, and every mean comes from one cumulative sum.

    Shapes:
        - **tokens:** :math:`(B, T, D)` token states of a batch of texts
        - **spans:** :math:`(S, 3)` text index, first and last token of each span (inclusive)
        - **pairs:** :math:`(P, 2)` indices into ``spans`` (head, tail), of the same text
        - **output:** :math:`(P, D)`
    """

    distance_buckets = 16

    def __init__(self, dim: int, near: int = 3) -> None:
        """``near``: tokens read next to each span inside the gap (0: the gap's mean only)."""
        super().__init__()
        self.near = near
        self.span = nn.Linear(3 * dim, dim)
        self.distance = nn.Embedding(2 * self.distance_buckets + 1, dim)
        width = (7 if near else 5) * dim
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * dim), nn.GELU(), nn.Dropout(0.1), nn.Linear(2 * dim, dim)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.span.reset_parameters()
        self.distance.reset_parameters()
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    @staticmethod
    def _range_mean(sums: Tensor, text: Tensor, first: Tensor, last: Tensor) -> Tensor:
        """Mean of tokens ``first..last`` (inclusive) of ``text``; zeros for an empty range.
        ``sums`` is the cumulative sum over tokens with a leading zero row."""
        total = sums[text, last + 1] - sums[text, first]
        count = (last - first + 1).clamp(min=0).unsqueeze(-1).to(total.dtype)
        return torch.where(count > 0, total / count.clamp(min=1.0), torch.zeros_like(total))

    def forward(self, tokens: Tensor, spans: Tensor, pairs: Tensor) -> Tensor:
        zero = torch.zeros_like(tokens[:, :1])
        sums = torch.cat([zero, tokens.cumsum(dim=1)], dim=1)
        text, first, last = spans[:, 0], spans[:, 1], spans[:, 2]
        mean = self._range_mean(sums, text, first, last)
        span_vectors = torch.tanh(
            self.span(torch.cat([tokens[text, first], tokens[text, last], mean], dim=-1))
        )
        head, tail = span_vectors[pairs[:, 0]], span_vectors[pairs[:, 1]]
        head_span, tail_span = spans[pairs[:, 0]], spans[pairs[:, 1]]
        # Tokens strictly between the two spans, whichever comes first.
        lo = torch.minimum(head_span[:, 2], tail_span[:, 2]) + 1
        hi = torch.maximum(head_span[:, 1], tail_span[:, 1]) - 1
        text_of = head_span[:, 0]
        context = self._range_mean(sums, text_of, lo, hi)
        parts = [head, tail, head * tail, context]
        if self.near:
            last_near = torch.minimum(hi, lo + self.near - 1)
            first_near = torch.maximum(lo, hi - self.near + 1)
            parts.append(self._range_mean(sums, text_of, lo, last_near))
            parts.append(self._range_mean(sums, text_of, first_near, hi))
        offset = (tail_span[:, 1] - head_span[:, 1]).clamp(
            -self.distance_buckets, self.distance_buckets
        )
        distance = self.distance(offset + self.distance_buckets)
        features = torch.cat([*parts, distance], dim=-1)
        return self.mlp(features)


class RelationScorer(nn.Module):
    r"""Scores pairs against relations described in text: a bilinear match between the pair's
    vector and the relation's embedding, plus a prior read from the embedding alone.

    Shapes:
        - **pairs:** :math:`(P, D)`, **relations:** :math:`(R, H_{in})` (description embeddings)
        - **output:** :math:`(P, R)` logits
    """

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.prior = nn.Linear(in_dim, 1)
        self.scale = 1.0 / math.sqrt(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.project:
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        self.prior.reset_parameters()

    def prepare(self, relations: Tensor) -> tuple[Tensor, Tensor]:
        """What scoring needs of the relations, computed once per batch: keys :math:`(R, D)`
        and priors :math:`(1, R)`."""
        return self.project(relations), self.prior(relations).T

    def score(self, pairs: Tensor, prepared: tuple[Tensor, Tensor]) -> Tensor:
        keys, prior = prepared
        return pairs @ keys.T * self.scale + prior

    def forward(self, pairs: Tensor, relations: Tensor) -> Tensor:
        return self.score(pairs, self.prepare(relations))


class SpanRelationExtractor(nn.Module):
    r"""Span tags per token and relation logits per span pair over frozen encoder states.

    Shapes:
        - **states:** :math:`(B, T, H)` encoder token states, **mask:** :math:`(B, T)`
        - **tag logits:** :math:`(B, T, 3)` (O / B / I)
        - **relation logits** of one text: :math:`(P, R)` for :math:`P` pairs and :math:`R`
          relations
    """

    def __init__(self, in_dim: int = 384, dim: int = 256, layers: int = 1, near: int = 0) -> None:
        super().__init__()
        self.config = {"in_dim": in_dim, "dim": dim, "layers": layers, "near": near}
        self.context = TokenContext(in_dim, dim, layers=layers)
        self.tagger = nn.Linear(dim, len(TAGS))
        self.pairs = PairEncoder(dim, near)
        self.relations = RelationScorer(in_dim, dim)

    def reset_parameters(self) -> None:
        self.context.reset_parameters()
        self.tagger.reset_parameters()
        self.pairs.reset_parameters()
        self.relations.reset_parameters()

    def encode(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Token states adapted to the task, and their span-tag logits."""
        tokens = self.context(states, mask)
        return tokens, self.tagger(tokens)

    def relation_logits(
        self, tokens: Tensor, spans: Tensor, pairs: Tensor, relations: tuple[Tensor, Tensor]
    ) -> Tensor:
        """Logits of every relation for ``pairs`` of ``spans`` (see :class:`PairEncoder`) of a
        batch's ``tokens``; ``relations`` from :meth:`RelationScorer.prepare`."""
        return self.relations.score(self.pairs(tokens, spans, pairs), relations)
