"""The text+graph fusion model: MiniLM question encoder, question-conditioned GAT, cross-attention
fusion and a per-node answer scorer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from autoglm.models.batching import STAY, GraphBatch
from autoglm.models.fusion import AnswerScorer, NodeToQuestionAttention
from autoglm.models.graph_encoder import HopInstructions, QuestionConditionedGAT


@dataclass(frozen=True)
class ReasonerConfig:
    text_dim: int = 384  # MiniLM hidden size
    hidden_dim: int = 128
    hops: int = 3  # GAT layers = longest reasoning chain
    heads: int = 8
    fusion_heads: int = 4
    dropout: float = 0.1


@dataclass
class ReasonerOutput:
    logits: Tensor  # (N,)
    attentions: list[Tensor]  # per hop, (E,)


class GraphTextReasoner(nn.Module):
    r"""Scores every node of every subgraph in a batch as an answer to its question.

    1. Hop instructions pool the question tokens once per hop (:class:`HopInstructions`).
    2. Relations are embedded from their names with the same text encoder (so relation types
       never seen in training still get a meaningful embedding), plus a direction embedding.
    3. Node states start as "anchor" or "other"; :class:`QuestionConditionedGAT` propagates them
       along edges whose relation matches each hop's instruction.
    4. :class:`NodeToQuestionAttention` lets every node read its question's tokens.
    5. :class:`AnswerScorer` gives one logit per node.

    Shapes:
        - **tokens:** :math:`(B, T, H)` question token states, **mask:** :math:`(B, T)`
        - **relation_text:** :math:`(R, H)` pooled embeddings of ``batch.relations``
        - **output:** logits :math:`(N,)` and per-hop edge attention :math:`K \times (E,)`
    """

    def __init__(self, config: ReasonerConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        self.instructions = HopInstructions(config.text_dim, d, config.hops)
        self.token_projection = nn.Linear(config.text_dim, d)
        self.relation_projection = nn.Linear(config.text_dim, d)
        self.direction_embedding = nn.Embedding(3, d)
        self.node_embedding = nn.Embedding(2, d)  # 0: other, 1: anchor
        self.gat = QuestionConditionedGAT(d, config.hops, config.heads, config.dropout)
        self.fusion = NodeToQuestionAttention(d, config.fusion_heads, config.dropout)
        self.scorer = AnswerScorer(d)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.instructions.reset_parameters()
        self.token_projection.reset_parameters()
        self.relation_projection.reset_parameters()
        self.direction_embedding.reset_parameters()
        self.node_embedding.reset_parameters()
        self.gat.reset_parameters()
        self.fusion.reset_parameters()
        self.scorer.reset_parameters()

    def forward(
        self, tokens: Tensor, mask: Tensor, relation_text: Tensor, batch: GraphBatch
    ) -> ReasonerOutput:
        instructions = self.instructions(tokens, mask)  # (B, K, D)
        token_states = self.token_projection(tokens)  # (B, T, D)
        relation = self.relation_projection(relation_text)[batch.edge_relation]
        relation = torch.tanh(relation + self.direction_embedding(batch.edge_direction))
        edge_graph = batch.node_graph[batch.edge_index[1]]
        x = self.node_embedding(batch.is_anchor.long())
        x, attentions = self.gat(x, batch.edge_index, relation, instructions[edge_graph])
        x = self.fusion(x, batch.node_graph, token_states, mask)
        weights = mask.unsqueeze(-1).to(token_states.dtype)
        question = (token_states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        logits = self.scorer(x, question[batch.node_graph])
        return ReasonerOutput(logits=logits, attentions=attentions)


def answer_loss(logits: Tensor, targets: Tensor, batch: GraphBatch) -> Tensor:
    """Per-graph KL divergence from the uniform distribution over gold answers to the model's.

    Softmax over a graph's nodes (not per-node sigmoid) because exactly the answers must win
    against every other node of the same subgraph. KL rather than cross-entropy so that a
    perfect prediction scores 0 whatever the number of answers; graphs without a gold node are
    skipped.
    """
    node_graph = batch.node_graph
    max_per_graph = torch.full((batch.num_graphs,), float("-inf"), device=logits.device)
    max_per_graph = max_per_graph.scatter_reduce(0, node_graph, logits, reduce="amax")
    shifted = logits - max_per_graph[node_graph]
    log_norm = (
        torch.zeros(batch.num_graphs, device=logits.device)
        .index_add(0, node_graph, shifted.exp())
        .log()
    )
    log_prob = shifted - log_norm[node_graph]
    gold_count = torch.zeros(batch.num_graphs, device=logits.device).index_add(
        0, node_graph, targets
    )
    cross_entropy = -torch.zeros(batch.num_graphs, device=logits.device).index_add(
        0, node_graph, targets * log_prob
    ) / gold_count.clamp(min=1.0)
    per_graph = cross_entropy - gold_count.clamp(min=1.0).log()
    has_gold = gold_count > 0
    return per_graph[has_gold].mean() if has_gold.any() else logits.sum() * 0.0


def graph_softmax(logits: Tensor, batch: GraphBatch) -> Tensor:
    """Probabilities normalised within each graph."""
    node_graph = batch.node_graph
    max_per_graph = torch.full((batch.num_graphs,), float("-inf"), device=logits.device)
    max_per_graph = max_per_graph.scatter_reduce(0, node_graph, logits, reduce="amax")
    exp = (logits - max_per_graph[node_graph]).exp()
    norm = torch.zeros(batch.num_graphs, device=logits.device).index_add(0, node_graph, exp)
    return exp / norm[node_graph]


class PathTracer:
    """The highest-attention chain of edges linking an anchor to each node (Viterbi).

    A chain's score is the product of the attention its edges got, hop by hop; self-loops
    ("stay") let shorter chains reach the last hop. Computed once per batch for every node, then
    backtracked per answer.
    """

    def __init__(self, batch: GraphBatch, attentions: list[Tensor]) -> None:
        self.batch = batch
        source, target = batch.edge_index
        num_nodes = batch.node_graph.numel()
        score = torch.full((num_nodes,), float("-inf"))
        score[batch.is_anchor.cpu()] = 0.0
        self.backpointers: list[Tensor] = []
        self.attentions = [alpha.detach().float().cpu() for alpha in attentions]
        source, target = source.cpu(), target.cpu()
        for alpha in self.attentions:
            edge_score = score[source] + alpha.clamp_min(1e-12).log()
            best = torch.full((num_nodes,), float("-inf")).scatter_reduce(
                0, target, edge_score, reduce="amax"
            )
            winners = torch.where(
                (edge_score == best[target]) & torch.isfinite(edge_score),
                torch.arange(edge_score.numel()),
                torch.full_like(target, edge_score.numel()),
            )
            pointer = torch.full((num_nodes,), edge_score.numel()).scatter_reduce(
                0, target, winners, reduce="amin"
            )
            self.backpointers.append(pointer)
            score = best
        self.score = score
        self.source = source

    def path(self, node: int) -> list[tuple[int, float]]:
        """(message-edge index, attention) pairs from an anchor to ``node``; [] if unreachable."""
        if not torch.isfinite(self.score[node]):
            return []
        chain: list[tuple[int, float]] = []
        for hop in reversed(range(len(self.backpointers))):
            edge = int(self.backpointers[hop][node])
            if edge >= self.source.numel():
                return []
            if int(self.batch.edge_direction[edge]) != STAY:
                chain.append((edge, float(self.attentions[hop][edge])))
            node = int(self.source[edge])
        chain.reverse()
        return chain


def trace_path(answer: int, batch: GraphBatch, attentions: list[Tensor]) -> list[tuple[int, float]]:
    """The highest-attention chain from an anchor to ``answer`` (see :class:`PathTracer`)."""
    return PathTracer(batch, attentions).path(answer)
