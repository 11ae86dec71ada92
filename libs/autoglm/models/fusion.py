"""Cross-attention fusion of node states and question token states."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class NodeToQuestionAttention(nn.Module):
    r"""Each node attends over its own question's tokens (nodes are queries, tokens keys/values).

    One direction only, on purpose: the answer is a node, so the nodes must read the question
    (which entity type is asked for, which constraint applies); the question side needs no graph
    context because node scores are the only output. The result is added residually.

    Shapes:
        - **nodes:** :math:`(N, D)`, **node_graph:** :math:`(N,)` graph index of each node
        - **tokens:** :math:`(B, T, D)`, **mask:** :math:`(B, T)`
        - **output:** :math:`(N, D)`
    """

    def __init__(self, hidden_dim: int, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(hidden_dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(hidden_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.attention._reset_parameters()
        self.norm.reset_parameters()

    def forward(self, nodes: Tensor, node_graph: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        # Each node is a length-1 query sequence against its question's tokens.
        keys = tokens[node_graph]
        padding = ~mask.bool()[node_graph]
        attended, _ = self.attention(
            nodes.unsqueeze(1), keys, keys, key_padding_mask=padding, need_weights=False
        )
        result: Tensor = self.norm(nodes + attended.squeeze(1))
        return result


class AnswerScorer(nn.Module):
    r"""Per-node answer logit from the fused node state and the pooled question.

    Shapes:
        - **nodes:** :math:`(N, D)`, **question:** :math:`(N, D)` (question of each node's graph)
        - **output:** :math:`(N,)` logits
    """

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(2 * hidden_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, 1)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def forward(self, nodes: Tensor, question: Tensor) -> Tensor:
        return self.mlp(torch.cat([nodes, question], dim=-1)).squeeze(-1)
