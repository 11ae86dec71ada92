"""Relation transfer: answer evidence that flows from the anchors along question-chosen edges."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class RelationTransfer(nn.Module):
    r"""Explicit, hop-by-hop transfer of "reached" scores along edges the question asks for.

    The GAT's node states are a soft summary; on a graph whose hubs have thousands of edges a
    summary can blur which of many paths the question asks for. So the graph side also carries
    an explicit score: every edge :math:`e = (u, v)` with relation embedding
    :math:`\mathbf{r}_e` gets, at hop :math:`t`, a gate from the hop instruction
    :math:`\mathbf{q}_t` of its question, and the scores of the previous hop flow through it
    (TransferNet's relation transfer, with relations embedded from their names so relation types
    never seen in training still get a gate):

    .. math::
        g^{(t)}_e = \sigma\left(\frac{(\mathbf{W}\mathbf{q}_t)^\top \mathbf{r}_e}{\sqrt{D}}
        + b\right), \qquad
        a^{(t)}_v = \min\Bigl(1, \sum_{e = (u, v)} g^{(t)}_e\, a^{(t-1)}_u\Bigr),
        \qquad a^{(0)} = \mathbb{1}[\text{anchor}]

    Self-loops ("stay" edges) never transfer. Which hop's scores answer the question is decided
    by the caller (a soft choice of :math:`t` from the question).

    Shapes:
        - **gate_table:** instructions :math:`(B, K, D)`, relation embeddings :math:`(P, D)`
          -> :math:`(B, K, P)`
        - **forward:** anchor :math:`(N,)` float, edge_index :math:`(2, E)`, per-edge gates
          :math:`(E, K)` (zero for self-loops) -> scores :math:`(K + 1, N)` (hop 0 is the
          anchors) and per-hop edge contributions :math:`(K, E)` (:math:`g^{(t)}_e a^{(t-1)}_u`)
    """

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden_dim, hidden_dim)
        self.scale = 1.0 / math.sqrt(hidden_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.query.reset_parameters()

    def gate_table(self, instructions: Tensor, relations: Tensor) -> Tensor:
        """:math:`(B, K, P)` gate of each of the :math:`P` (relation, direction) pairs at each
        hop of each question: edges only index it, since a KB has few relation types."""
        queries = self.query(instructions)  # (B, K, D)
        return torch.sigmoid(torch.einsum("bkd,pd->bkp", queries, relations) * self.scale)

    def forward(self, anchor: Tensor, edge_index: Tensor, gates: Tensor) -> tuple[Tensor, Tensor]:
        source, target = edge_index
        scores = [anchor]
        contributions = []
        for hop in range(gates.shape[1]):
            flow = gates[:, hop] * scores[-1][source]
            reached = torch.zeros_like(anchor).index_add(0, target, flow)
            scores.append(reached.clamp(max=1.0))
            contributions.append(flow)
        return torch.stack(scores), torch.stack(contributions)
