"""Question-conditioned GAT: one attention layer per reasoning hop."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv


class HopInstructions(nn.Module):
    r"""Step-wise instructions: one attention-pooled question vector per hop, each conditioned
    on the previous one.

    Hop :math:`t` attends over the question tokens with a query made from the whole question
    and the instruction of hop :math:`t-1`, so "films written by the director of [X]" says
    "director" at hop 1 and "written by" at hop 2 whichever order the words come in (the
    sequential instructions of TransferNet).

    .. math::
        \mathbf{k}_i = \mathbf{W}_k \mathbf{H}_i, \quad
        \mathbf{u}_t = \tanh\left(\mathbf{W}_t [\bar{\mathbf{k}}; \mathbf{q}_{t-1}]\right),
        \quad \mathbf{q}_t = \sum_i \operatorname{softmax}_i
        \left(\mathbf{u}_t^\top \mathbf{k}_i / \sqrt{D}\right) \mathbf{k}_i

    Shapes:
        - **input:** token states :math:`(B, T, H)`, mask :math:`(B, T)`
        - **output:** :math:`(B, K, D)` for :math:`K` hops
    """

    def __init__(self, token_dim: int, hidden_dim: int, hops: int) -> None:
        super().__init__()
        self.hops = hops
        self.keys = nn.Linear(token_dim, hidden_dim)
        self.steps = nn.ModuleList(nn.Linear(2 * hidden_dim, hidden_dim) for _ in range(hops))
        self.scale = hidden_dim**-0.5
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.keys.reset_parameters()
        for step in self.steps:
            assert isinstance(step, nn.Linear)
            step.reset_parameters()

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        keys = self.keys(tokens)  # (B, T, D)
        valid = mask.bool()
        weights = valid.unsqueeze(-1).to(keys.dtype)
        summary = (keys * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        previous = torch.zeros_like(summary)
        instructions = []
        for step in self.steps:
            query = torch.tanh(step(torch.cat([summary, previous], dim=-1)))
            scores = torch.einsum("btd,bd->bt", keys, query) * self.scale
            attention = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=-1)
            previous = torch.einsum("bt,btd->bd", attention, keys)
            instructions.append(previous)
        return torch.stack(instructions, dim=1)


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
        - **instructions:** hop instructions :math:`(B, K, D)`, **edge_graph:** :math:`(E,)`
          the graph of each edge
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
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_relation: Tensor,
        instructions: Tensor,
        edge_graph: Tensor,
    ) -> tuple[Tensor, list[Tensor]]:
        attentions: list[Tensor] = []
        for hop, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            edge_attr = edge_relation * instructions[edge_graph, hop]
            out, (_, alpha) = layer(
                x, edge_index, edge_attr=edge_attr, return_attention_weights=True
            )
            x = norm(x + torch.nn.functional.elu(out))
            attentions.append(alpha.mean(dim=-1))
        return x, attentions
