"""The trained fusion model as inference serves it: encoder + reasoner behind ``AnswerModel``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from autoglm.contracts import Answer, ReasoningInput
from autoglm.models.base import Prediction, path_edge
from autoglm.models.batching import GraphBatch, collate_subgraphs, relation_text
from autoglm.models.encoding_cache import EncodingCache
from autoglm.models.reasoner import (
    GraphTextReasoner,
    PathTracer,
    ReasonerConfig,
    ReasonerOutput,
    graph_softmax,
)
from autoglm.models.text_encoder import TextEncoder

ENCODER_PREFIX = "encoder."
REASONER_PREFIX = "reasoner."


class FusionModule(nn.Module):
    """Text encoder and reasoner as one module, so one state dict holds a whole version."""

    def __init__(
        self, encoder: TextEncoder, config: ReasonerConfig, token_cache_size: int = 0
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.reasoner = GraphTextReasoner(config)
        self._relation_cache: dict[str, Tensor] = {}
        # Question token states of a frozen encoder, by text: training sees every question once
        # an epoch, and the encoder forward would otherwise cost more than the reasoner.
        self.token_cache_size = token_cache_size
        self._token_cache: OrderedDict[str, Tensor] = OrderedDict()
        self.encoding_cache: EncodingCache | None = None

    @property
    def encoder_trainable(self) -> bool:
        return self.training and any(p.requires_grad for p in self.encoder.parameters())

    def question_states(self, questions: list[str]) -> tuple[Tensor, Tensor]:
        """Token states :math:`(B, T, H)` and mask :math:`(B, T)` of the questions.

        A frozen encoder's states are looked up before they are computed: in this process
        (``token_cache_size`` entries, for training), then in Redis (``encoding_cache``, for
        serving replicas)."""
        if self.encoder_trainable or (self.token_cache_size <= 0 and self.encoding_cache is None):
            return self.encoder.token_states(questions)
        wanted = list(dict.fromkeys(questions))
        found = {q: self._token_cache[q] for q in wanted if q in self._token_cache}
        missing = [q for q in wanted if q not in found]
        if missing and self.encoding_cache is not None:
            found.update(self.encoding_cache.get_many(missing))
            missing = [q for q in missing if q not in found]
        if missing:
            with torch.no_grad():
                states, mask = self.encoder.token_states(missing)
            computed = {
                q: state[: int(valid.sum())].clone()
                for q, state, valid in zip(missing, states, mask, strict=True)
            }
            found.update(computed)
            if self.encoding_cache is not None:
                self.encoding_cache.put_many(computed)
        if self.token_cache_size > 0:
            for question in wanted:
                self._token_cache[question] = found[question]
                self._token_cache.move_to_end(question)
            while len(self._token_cache) > self.token_cache_size:
                self._token_cache.popitem(last=False)
        device = self.encoder.device
        sequences = [found[q].to(device) for q in questions]
        lengths = torch.tensor([len(s) for s in sequences], device=device)
        padded = nn.utils.rnn.pad_sequence(sequences, batch_first=True)
        mask = (torch.arange(padded.shape[1], device=device) < lengths[:, None]).long()
        return padded, mask

    def relation_states(self, relations: list[str]) -> Tensor:
        """Pooled embeddings of relation names. Cached when the encoder is not being trained,
        since a KB has few relation types and they recur in every batch."""
        if self.encoder_trainable:
            return self.encoder([relation_text(r) for r in relations])
        missing = [r for r in relations if r not in self._relation_cache]
        if missing:
            with torch.no_grad():
                states = self.encoder([relation_text(r) for r in missing])
            self._relation_cache.update(zip(missing, states, strict=True))
        return torch.stack([self._relation_cache[r] for r in relations])

    def clear_relation_cache(self) -> None:
        """Forget cached encoder outputs (after the encoder's weights change)."""
        self._relation_cache.clear()
        self._token_cache.clear()

    def forward(self, questions: list[str], batch: GraphBatch) -> ReasonerOutput:
        tokens, mask = self.question_states(questions)
        output: ReasonerOutput = self.reasoner(
            tokens, mask, self.relation_states(batch.relations), batch
        )
        return output


def weights_of(module: FusionModule, include_encoder: bool) -> dict[str, Tensor]:
    """The tensors a registry version stores; the encoder only when it was fine-tuned."""
    state = {f"{REASONER_PREFIX}{k}": v for k, v in module.reasoner.state_dict().items()}
    if include_encoder:
        state.update({f"{ENCODER_PREFIX}{k}": v for k, v in module.encoder.state_dict().items()})
    return state


def load_weights(module: FusionModule, weights: dict[str, Tensor]) -> None:
    reasoner = {
        k[len(REASONER_PREFIX) :]: v for k, v in weights.items() if k.startswith(REASONER_PREFIX)
    }
    module.reasoner.load_state_dict(reasoner)
    encoder = {
        k[len(ENCODER_PREFIX) :]: v for k, v in weights.items() if k.startswith(ENCODER_PREFIX)
    }
    if encoder:
        module.encoder.load_state_dict(encoder)
    module.clear_relation_cache()


def config_meta(config: ReasonerConfig) -> dict[str, Any]:
    return asdict(config)


class FusionAnswerModel:
    """``AnswerModel`` over a trained :class:`FusionModule`; thread-safe for inference."""

    def __init__(self, version: str, module: FusionModule, temperature: float = 1.0) -> None:
        self.version = version
        self.module = module.eval()
        self.temperature = temperature

    @property
    def device(self) -> torch.device:
        return self.module.encoder.device

    @torch.inference_mode()
    def predict(self, inputs: Sequence[ReasoningInput]) -> list[Prediction]:
        subgraphs = [item.subgraph for item in inputs]
        batch = collate_subgraphs(subgraphs).to(self.device)
        questions = [i.question.normalized_text or i.question.question.text for i in inputs]
        autocast = self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
            output = self.module(questions, batch)
        probabilities = graph_softmax(output.logits.float() / self.temperature, batch).cpu()
        cpu_batch = batch.to(torch.device("cpu"))
        tracer = PathTracer(cpu_batch, output)
        return [
            self._prediction(n, item, cpu_batch, probabilities, tracer)
            for n, item in enumerate(inputs)
        ]

    def _prediction(
        self,
        graph: int,
        item: ReasoningInput,
        batch: GraphBatch,
        probabilities: Tensor,
        tracer: PathTracer,
    ) -> Prediction:
        start, end = int(batch.node_offset[graph]), int(batch.node_offset[graph + 1])
        subgraph = item.subgraph
        anchors = set(subgraph.anchor_indices)
        scores = probabilities[start:end].clone()
        if anchors and len(anchors) < end - start:
            scores[list(anchors)] = -1.0  # MetaQA-style answers never are the topic entity
        order = scores.argsort(descending=True)[: max(1, item.top_k)].tolist()
        answers = []
        for local in order:
            if scores[local] < 0:
                continue
            path = [
                path_edge(subgraph, int(batch.edge_kb_index[edge]), weight)
                for edge, weight in tracer.path(start + local)
            ]
            node = subgraph.nodes[local]
            answers.append(
                Answer(key=node.key, name=node.name, probability=float(scores[local]), path=path)
            )
        confidence = answers[0].probability if answers else 0.0
        return Prediction(
            answers=answers,
            confidence=confidence,
            reasoning_path=list(answers[0].path) if answers else [],
        )
