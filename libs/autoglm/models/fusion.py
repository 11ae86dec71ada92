"""Cross-attention fusion of node states and question token states."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class NodeToQuestionAttention(nn.Module):
    r"""Each node attends over its own question's tokens (nodes are queries, tokens keys/values).

    One direction only, on purpose: the answer is a node, so the nodes must read the question
    (which entity type is asked for, which constraint applies); the question side needs no graph
    context because node scores are the only output. The result is added residually.

    Keys and values are projected once per question and gathered per node, so the cost grows
    with nodes x tokens, not nodes x tokens x width (subgraphs have thousands of nodes).

    .. math::
        \mathbf{x}_v' = \operatorname{LayerNorm}\Bigl(\mathbf{x}_v + \mathbf{W}_o
        \big\Vert_{h} \sum_t \operatorname{softmax}_t\bigl(
        \mathbf{q}^h_v{}^\top \mathbf{k}^h_{g(v),t} / \sqrt{d}\bigr)\,
        \mathbf{v}^h_{g(v),t}\Bigr)

    Shapes:
        - **nodes:** :math:`(N, D)`, **node_graph:** :math:`(N,)` graph index of each node
        - **tokens:** :math:`(B, T, D)`, **mask:** :math:`(B, T)`
        - **output:** :math:`(N, D)`
    """

    def __init__(self, hidden_dim: int, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        if hidden_dim % heads:
            raise ValueError(f"hidden_dim {hidden_dim} must be divisible by heads {heads}")
        self.heads = heads
        self.query = nn.Linear(hidden_dim, hidden_dim)
        self.key = nn.Linear(hidden_dim, hidden_dim)
        self.value = nn.Linear(hidden_dim, hidden_dim)
        self.output = nn.Linear(hidden_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in (self.query, self.key, self.value, self.output):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.norm.reset_parameters()

    def forward(self, nodes: Tensor, node_graph: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
        n, d = nodes.shape
        b, t, _ = tokens.shape
        h = self.heads
        query = self.query(nodes).view(n, h, d // h)
        key = self.key(tokens).view(b, t, h, d // h)
        value = self.value(tokens).view(b, t, h, d // h)
        scores = torch.einsum("nhc,nthc->nht", query, key[node_graph]) * (d // h) ** -0.5
        scores = scores.masked_fill(~mask.bool()[node_graph].unsqueeze(1), float("-inf"))
        attention = self.dropout(torch.softmax(scores, dim=-1))
        attended = torch.einsum("nht,nthc->nhc", attention, value[node_graph]).reshape(n, d)
        result: Tensor = self.norm(nodes + self.output(attended))
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
