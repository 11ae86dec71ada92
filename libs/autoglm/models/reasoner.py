"""The text+graph fusion model: MiniLM question encoder, question-conditioned GAT, cross-attention
fusion and a per-node answer scorer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from autoglm.models.batching import STAY, GraphBatch
from autoglm.models.fusion import AnswerScorer, NodeToQuestionAttention
from autoglm.models.graph_encoder import HopInstructions, QuestionConditionedGAT
from autoglm.models.transfer import RelationTransfer


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
    attentions: list[Tensor]  # GAT attention per layer, K x (E,)
    reached: Tensor  # (K + 1, N) transfer scores per hop (hop 0: the anchors)
    contributions: Tensor  # (K, E) what each edge carried at each hop
    hop_weights: Tensor  # (B, K) how much each hop's scores answer the question
    evidence: Tensor  # (N,) the hop-weighted transfer score of each node, in [0, 1]


class GraphTextReasoner(nn.Module):
    r"""Scores every node of every subgraph in a batch as an answer to its question.

    1. :class:`HopInstructions` pool the question tokens once per hop, each hop conditioned on
       the one before.
    2. Relations are embedded from their names with the same text encoder (so relation types
       never seen in training still get a meaningful embedding), plus a direction embedding
       (forward, inverse, stay).
    3. :class:`RelationTransfer` carries an explicit "reached" score from the anchors along the
       edges each hop's instruction asks for; a softmax over hops, read from the question, says
       which hop's scores are the answer (a 1-hop question stops after hop 1).
    4. :class:`QuestionConditionedGAT` (GATv2, relation times instruction as edge features,
       multi-head then one head) turns node states, which start from the anchor flag and the
       transfer scores, into context-aware states.
    5. :class:`NodeToQuestionAttention` lets every node read its question's tokens.
    6. :class:`AnswerScorer` gives one logit per node, to which the log of the node's transfer
       evidence is added with a learned scale.

    Shapes:
        - **tokens:** :math:`(B, T, H)` question token states, **mask:** :math:`(B, T)`
        - **relation_text:** :math:`(R, H)` pooled embeddings of ``batch.relations``
        - **output:** :class:`ReasonerOutput` (logits :math:`(N,)`, ...)
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
        self.transfer = RelationTransfer(d)
        self.hop_selector = nn.Linear(d, config.hops)
        self.reached_projection = nn.Linear(config.hops + 2, d)
        self.gat = QuestionConditionedGAT(d, config.hops, config.heads, config.dropout)
        self.fusion = NodeToQuestionAttention(d, config.fusion_heads, config.dropout)
        self.scorer = AnswerScorer(d)
        self.evidence_scale = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.instructions.reset_parameters()
        self.token_projection.reset_parameters()
        self.relation_projection.reset_parameters()
        self.direction_embedding.reset_parameters()
        self.node_embedding.reset_parameters()
        self.transfer.reset_parameters()
        self.hop_selector.reset_parameters()
        self.reached_projection.reset_parameters()
        self.gat.reset_parameters()
        self.fusion.reset_parameters()
        self.scorer.reset_parameters()
        nn.init.constant_(self.evidence_scale, 1.0)

    def forward(
        self, tokens: Tensor, mask: Tensor, relation_text: Tensor, batch: GraphBatch
    ) -> ReasonerOutput:
        instructions = self.instructions(tokens, mask)  # (B, K, D)
        token_states = self.token_projection(tokens)  # (B, T, D)
        weights = mask.unsqueeze(-1).to(token_states.dtype)
        question = (token_states * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, D)

        # One embedding per (relation, direction) pair; edges index the small table.
        pairs = self.relation_projection(relation_text).unsqueeze(1) + (
            self.direction_embedding.weight.unsqueeze(0)
        )
        pair_table = torch.tanh(pairs).flatten(0, 1)  # (3R, D)
        edge_pair = batch.edge_relation * 3 + batch.edge_direction
        relation = pair_table[edge_pair]  # (E, D)
        edge_graph = batch.node_graph[batch.edge_index[1]]

        gate_table = self.transfer.gate_table(instructions, pair_table)  # (B, K, 3R)
        gates = gate_table[edge_graph, :, edge_pair]  # (E, K)
        gates = gates * (batch.edge_direction != STAY).unsqueeze(-1).to(gates.dtype)
        anchor = batch.is_anchor.to(gates.dtype)
        reached, contributions = self.transfer(anchor, batch.edge_index, gates)
        hop_weights = torch.softmax(self.hop_selector(question), dim=-1)  # (B, K)
        evidence = (hop_weights[batch.node_graph] * reached[1:].T).sum(-1)  # (N,)

        x = self.node_embedding(batch.is_anchor.long()) + self.reached_projection(
            torch.cat([reached.T, evidence.unsqueeze(-1)], dim=-1)
        )
        x, attentions = self.gat(x, batch.edge_index, relation, instructions, edge_graph)
        x = self.fusion(x, batch.node_graph, token_states, mask)
        logits = self.scorer(x, question[batch.node_graph])
        logits = logits + self.evidence_scale * evidence.clamp(min=1e-6).log()
        return ReasonerOutput(
            logits=logits,
            attentions=attentions,
            reached=reached,
            contributions=contributions,
            hop_weights=hop_weights,
            evidence=evidence,
        )


def evidence_loss(evidence: Tensor, targets: Tensor, batch: GraphBatch) -> Tensor:
    """Binary cross-entropy of each node's transfer evidence against being a gold answer,
    averaged per graph (so big subgraphs do not outweigh small ones); anchors excluded."""
    return evidence_loss_per_graph(evidence, targets, batch).mean()


def evidence_loss_per_graph(evidence: Tensor, targets: Tensor, batch: GraphBatch) -> Tensor:
    """:func:`evidence_loss` of each graph. Shapes: evidence, targets (N,) -> (B,)"""
    counted = (~batch.is_anchor).to(evidence.dtype)
    loss = nn.functional.binary_cross_entropy(
        evidence.clamp(1e-6, 1 - 1e-6), targets, reduction="none"
    )
    per_graph = torch.zeros(batch.num_graphs, device=evidence.device)
    per_graph = per_graph.index_add(0, batch.node_graph, loss * counted)
    sizes = torch.zeros(batch.num_graphs, device=evidence.device).index_add(
        0, batch.node_graph, counted
    )
    return per_graph / sizes.clamp(min=1.0)


def answer_loss(logits: Tensor, targets: Tensor, batch: GraphBatch) -> Tensor:
    """Per-graph KL divergence from the uniform distribution over gold answers to the model's.

    Softmax over a graph's nodes (not per-node sigmoid) because exactly the answers must win
    against every other node of the same subgraph. KL rather than cross-entropy so that a
    perfect prediction scores 0 whatever the number of answers; graphs without a gold node are
    skipped.
    """
    per_graph, has_gold = answer_loss_per_graph(logits, targets, batch)
    return per_graph[has_gold].mean() if has_gold.any() else logits.sum() * 0.0


def answer_loss_per_graph(
    logits: Tensor, targets: Tensor, batch: GraphBatch
) -> tuple[Tensor, Tensor]:
    """(:func:`answer_loss` of each graph, whether the graph has a gold node).

    Shapes: logits, targets (N,) -> (B,), (B,) bool
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
    return per_graph, gold_count > 0


def graph_softmax(logits: Tensor, batch: GraphBatch) -> Tensor:
    """Probabilities normalised within each graph."""
    node_graph = batch.node_graph
    max_per_graph = torch.full((batch.num_graphs,), float("-inf"), device=logits.device)
    max_per_graph = max_per_graph.scatter_reduce(0, node_graph, logits, reduce="amax")
    exp = (logits - max_per_graph[node_graph]).exp()
    norm = torch.zeros(batch.num_graphs, device=logits.device).index_add(0, node_graph, exp)
    return exp / norm[node_graph]


class PathTracer:
    """The chain of edges that carried the most evidence from an anchor to each node.

    A node's answer hop is the hop whose weighted transfer score reached it most
    (``hop_weights * reached``); from there the chain is followed backwards, at each hop along
    the incoming edge that carried the most (its gate times its source's score at the hop
    before). Computed once per batch, then backtracked per answer.
    """

    def __init__(self, batch: GraphBatch, output: ReasonerOutput) -> None:
        self.batch = batch
        source, target = (t.cpu() for t in batch.edge_index)
        num_nodes = batch.node_graph.numel()
        self.source = source
        self.reached = output.reached.detach().float().cpu()
        hop_weights = output.hop_weights.detach().float().cpu()
        weighted = hop_weights[batch.node_graph.cpu()].T * self.reached[1:]  # (K, N)
        # The earliest hop within 1 % of the best: a 1-hop answer is also "reached" at hop 3
        # by going there and back, and the shorter chain is the explanation.
        close = weighted >= 0.99 * weighted.max(dim=0).values
        self.answer_hop = close.float().argmax(dim=0) + 1  # (N,) first True
        self.best_edge: list[Tensor] = []
        self.best_flow: list[Tensor] = []
        arange = torch.arange(source.numel())
        for flow in output.contributions.detach().float().cpu():
            best = torch.zeros(num_nodes).scatter_reduce(0, target, flow, reduce="amax")
            winners = torch.where(
                (flow == best[target]) & (flow > 0), arange, torch.full_like(arange, len(arange))
            )
            pointer = torch.full((num_nodes,), len(arange)).scatter_reduce(
                0, target, winners, reduce="amin"
            )
            self.best_edge.append(pointer)
            self.best_flow.append(best)

    def path(self, node: int) -> list[tuple[int, float]]:
        """(message-edge index, evidence carried) pairs from an anchor to ``node``; [] when no
        evidence reached it."""
        chain: list[tuple[int, float]] = []
        for hop in reversed(range(int(self.answer_hop[node]))):
            edge = int(self.best_edge[hop][node])
            if edge >= self.source.numel():
                return []
            chain.append((edge, float(self.best_flow[hop][node])))
            node = int(self.source[edge])
        if not bool(self.batch.is_anchor[node]):
            return []
        chain.reverse()
        return chain


def trace_path(answer: int, batch: GraphBatch, output: ReasonerOutput) -> list[tuple[int, float]]:
    """The chain that carried the most evidence from an anchor to ``answer``
    (see :class:`PathTracer`)."""
    return PathTracer(batch, output).path(answer)
