"""One incremental round: the serving model, taught a few new examples without forgetting.

A round starts from the serving version (the *teacher*) and trains a copy of it (the
*student*) on:

- the new examples (pseudo-labels weighted by their confidence, user feedback by
  ``feedback_weight``; a "wrong" without the right answer pushes the named answer down),
- as many again drawn from the replay buffer (``replay_ratio``): a uniform sample of every
  example used before, so the round sees the old distribution too,
- distillation from the teacher on every batch (temperature-scaled soft targets, weight
  ``distill_weight``): what the serving model already does well is not unlearnt,
- with differential learning rates: the pretrained text encoder moves ``encoder_learning_rate``
  (ten to a hundred times slower than the graph, fusion and head layers; 0 freezes it).

The **gate** then scores teacher and candidate on the same fixed, held-out validation slice
and promotes the candidate only if it is not worse than the teacher by more than ``tolerance``
(Hits@1). A candidate is registered either way (its meta says what the gate decided, with both
scores), so a rejected round can be inspected; only a promoted one becomes serving.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from autoglm.models.batching import GraphBatch
from autoglm.models.fusion_model import FusionAnswerModel, FusionModule
from autoglm.models.reasoner import (
    ReasonerOutput,
    answer_loss_per_graph,
    evidence_loss_per_graph,
    graph_softmax,
)
from autoglm.registry import ModelRegistry, ModelVersion
from autoglm.training.loop import (
    History,
    QASample,
    ReasonerTraining,
    TrainConfig,
    calibrate_temperature,
    evaluate,
    targets_for,
)
from autoglm.training.replay import distillation_loss
from autoglm.training.run import register_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncrementalConfig:
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 3e-4
    encoder_learning_rate: float = 1e-5
    weight_decay: float = 0.01
    replay_ratio: float = 1.0
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    gate_tolerance: float = 0.005
    seed: int = 0

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            encoder_learning_rate=self.encoder_learning_rate,
            weight_decay=self.weight_decay,
            seed=self.seed,
        )


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    candidate: float  # Hits@1 on the validation slice
    serving: float
    tolerance: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate(candidate: float, serving: float, tolerance: float) -> GateDecision:
    """Promote unless the candidate is worse than the serving model by more than ``tolerance``."""
    if candidate + tolerance >= serving:
        reason = f"candidate {candidate:.4f} is within {tolerance} of serving {serving:.4f}"
        return GateDecision(True, candidate, serving, tolerance, reason)
    reason = (
        f"candidate {candidate:.4f} is worse than serving {serving:.4f} by more than {tolerance}"
    )
    return GateDecision(False, candidate, serving, tolerance, reason)


class IncrementalTraining(ReasonerTraining):
    """``ReasonerTraining`` with example weights, negative answers and distillation."""

    def __init__(
        self,
        student: FusionModule,
        teacher: FusionModule,
        config: IncrementalConfig,
        device: torch.device,
        state_path: Path | None = None,
    ) -> None:
        super().__init__(student, config.train_config(), device, state_path)
        self.incremental = config
        self.teacher = teacher.to(device).eval()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)

    def batch_loss(
        self, chunk: Sequence[QASample], batch: GraphBatch, output: ReasonerOutput
    ) -> Tensor:
        device = self.device
        targets = targets_for(chunk).to(device)
        weights = torch.tensor([s.weight for s in chunk], device=device)
        answer, has_gold = answer_loss_per_graph(output.logits, targets, batch)
        evidence = evidence_loss_per_graph(output.evidence, targets, batch)
        gold_weights = weights * has_gold
        loss = ((answer + evidence) * gold_weights).sum() / gold_weights.sum().clamp(min=1e-6)
        negatives = torch.tensor(
            [float(n.key in s.negative_keys) for s in chunk for n in s.subgraph.nodes],
            device=device,
        )
        if negatives.any():
            # -log(1 - p) of each answer known to be wrong, weighted like its example.
            logits = output.logits.float().masked_fill(batch.is_anchor, float("-inf"))
            probability = graph_softmax(logits, batch)
            pushed = -(1 - probability).clamp(min=1e-6).log() * negatives
            per_graph = torch.zeros(batch.num_graphs, device=device).index_add(
                0, batch.node_graph, pushed
            )
            loss = loss + (per_graph * weights).sum() / weights.sum().clamp(min=1e-6)
        if self.incremental.distill_weight > 0:
            with torch.no_grad():
                teacher = self.teacher([s.question for s in chunk], batch).logits
            loss = loss + self.incremental.distill_weight * distillation_loss(
                output.logits.float(),
                teacher.float(),
                batch,
                self.incremental.distill_temperature,
            )
        return loss


@dataclass
class CandidateReport:
    version: ModelVersion
    decision: GateDecision
    candidate_metrics: dict[str, float]
    serving_metrics: dict[str, float]
    history: History


def train_candidate(
    registry: ModelRegistry,
    serving: FusionAnswerModel,
    new: Sequence[QASample],
    replay: Sequence[QASample],
    validation: Sequence[QASample],
    config: IncrementalConfig,
    *,
    lineage: dict[str, Any],
    state_path: Path | None = None,
    progress: bool = False,
) -> CandidateReport:
    """Trains a candidate from ``serving`` on ``new`` + ``replay``, gates it on
    ``validation`` and registers it (not serving yet) with its lineage and the gate's verdict.

    Resumable: with ``state_path``, a round interrupted after an epoch continues from there.
    """
    if not validation:
        raise ValueError("the gate needs a non-empty validation slice")
    device = serving.device
    teacher = serving.module
    student = copy.deepcopy(teacher)
    student.encoding_cache = None  # the encoder is trained: its states are not the serving ones
    training = IncrementalTraining(student, teacher, config, device, state_path)
    if training.resume():
        log.info("round training resumed", extra={"from_epoch": training.start_epoch + 1})
    samples = [*new, *replay]
    history = training.fit(samples, validation, progress=progress)
    candidate_metrics = history.validation[-1] if history.validation else {}
    serving_metrics = evaluate(teacher, validation, device, config.batch_size)
    decision = gate(
        candidate_metrics.get("hits@1", 0.0), serving_metrics["hits@1"], config.gate_tolerance
    )
    temperature = calibrate_temperature(training, validation)
    version = register_version(
        registry,
        student,
        temperature=temperature,
        metrics=candidate_metrics,
        history=history,
        data={
            **lineage,
            "new_examples": len(new),
            "replayed_examples": len(replay),
            "validation_examples": len(validation),
            "serving_metrics": serving_metrics,
            "gate": decision.as_dict(),
        },
        hyper_parameters={"incremental": asdict(config), "device": str(device)},
        include_encoder=config.encoder_learning_rate > 0
        or _encoder_fine_tuned(registry, serving.version),
        parent=serving.version,
    )
    if state_path is not None:
        state_path.unlink(missing_ok=True)
    return CandidateReport(version, decision, candidate_metrics, serving_metrics, history)


def _encoder_fine_tuned(registry: ModelRegistry, version: str) -> bool:
    known = {v.version for v in registry.versions()}
    return version in known and registry.get(version).meta.get("text_encoder") == "fine-tuned"
