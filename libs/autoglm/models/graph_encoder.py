"""Question-conditioned GAT: one attention layer per reasoning hop."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv


class HopInstructions(nn.Module):
    r"""Step-wise instructions: one attention-pooled question vector per hop.

    Hop :math:`t` attends over the question tokens with its own learned query, so a 3-hop
    question can say "written by" at hop 1 and "directed" at hop 3 (TransferNet's step
    instructions).

    .. math::
        \mathbf{q}_t = \sum_i \operatorname{softmax}_i\left(\mathbf{w}_t^\top \mathbf{H}_i\right)
        \mathbf{W}_q \mathbf{H}_i

    Shapes:
        - **input:** token states :math:`(B, T, H)`, mask :math:`(B, T)`
        - **output:** :math:`(B, K, D)` for :math:`K` hops
    """

    def __init__(self, token_dim: int, hidden_dim: int, hops: int) -> None:
        super().__init__()
        self.hops = hops
        self.queries = nn.Parameter(torch.empty(hops, token_dim))
        self.project = nn.Linear(token_dim, hidden_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.queries, std=0.02)
        self.project.reset_parameters()

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        scores = torch.einsum("btd,kd->bkt", tokens, self.queries)
        scores = scores.masked_fill(~mask.bool().unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        pooled: Tensor = torch.einsum("bkt,btd->bkd", weights, tokens)
        return torch.tanh(self.project(pooled))


class QuestionConditionedGAT(nn.Module):
    r"""GATv2 layers whose edge attention depends on the relation *and* the hop's instruction.

    Layer :math:`t` uses edge features :math:`\mathbf{r}_e \odot \mathbf{q}_t` (relation embedding
    gated by the hop-:math:`t` instruction of the edge's question), so attention flows along
    edges whose relation matches what the question asks at that hop. Every node has a self-loop
    with a learned "stay" relation: a node whose incoming relations do not match can attend to
    itself instead, which is what lets signal from the anchors follow only the asked-for paths.
    The first layers have ``heads`` concatenated heads, the last one a single head.

    Shapes:
        - **x:** node states :math:`(N, D)`
        - **edge_index:** :math:`(2, E)` including self-loops
        - **edge_relation:** relation embeddings :math:`(E, D)`
        - **edge_instruction:** per-edge hop instructions :math:`(E, K, D)`
        - **output:** node states :math:`(N, D)` and per-layer attention :math:`K \times (E,)`
    """

    def __init__(self, hidden_dim: int, hops: int, heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        if hidden_dim % heads:
            raise ValueError(f"hidden_dim {hidden_dim} must be divisible by heads {heads}")
        self.hops = hops
        self.layers = nn.ModuleList()
        for layer in range(hops):
            last = layer == hops - 1
            self.layers.append(
                GATv2Conv(
                    hidden_dim,
                    hidden_dim if last else hidden_dim // heads,
                    heads=1 if last else heads,
                    concat=not last,
                    edge_dim=hidden_dim,
                    add_self_loops=False,  # the caller adds them with the "stay" relation
                    dropout=dropout,
                )
            )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(hops))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in (*self.layers, *self.norms):
            module.reset_parameters()

    def forward(
        self, x: Tensor, edge_index: Tensor, edge_relation: Tensor, edge_instruction: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        attentions: list[Tensor] = []
        for hop, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            edge_attr = edge_relation * edge_instruction[:, hop]
            out, (_, alpha) = layer(
                x, edge_index, edge_attr=edge_attr, return_attention_weights=True
            )
            x = norm(x + torch.nn.functional.elu(out))
            attentions.append(alpha.mean(dim=-1))
        return x, attentions
