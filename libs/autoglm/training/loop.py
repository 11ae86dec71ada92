"""Training and evaluation of the fusion model on (question, subgraph, answers) samples.

Differential learning rates: the pretrained text encoder moves slowly (or not at all), the
graph, fusion and scoring layers, which start from scratch, move fast. Training is resumable:
the full state (model, optimizer, epoch, random generators) is saved after every epoch. It is
read back with ``torch.load(weights_only=True)``: tensors and plain containers only, so a file
planted in the state folder cannot run code in the trainer.
"""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from autoglm.contracts import Subgraph
from autoglm.models.batching import GraphBatch, collate_subgraphs
from autoglm.models.fusion_model import FusionModule
from autoglm.models.reasoner import ReasonerOutput, answer_loss, evidence_loss


@dataclass(frozen=True)
class QASample:
    question: str
    subgraph: Subgraph
    answer_keys: frozenset[str]
    hops: int
    weight: float = 1.0  # pseudo-labels weigh their confidence, user feedback more
    negative_keys: frozenset[str] = frozenset()  # answers known to be wrong


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-3
    encoder_learning_rate: float = 0.0  # 0 freezes the text encoder
    weight_decay: float = 0.01
    seed: int = 0


@dataclass
class History:
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def targets_for(samples: Sequence[QASample]) -> torch.Tensor:
    return torch.tensor(
        [float(node.key in s.answer_keys) for s in samples for node in s.subgraph.nodes]
    )


class ReasonerTraining:
    def __init__(
        self,
        module: FusionModule,
        config: TrainConfig,
        device: torch.device,
        state_path: Path | None = None,
    ) -> None:
        self.module = module.to(device)
        self.config = config
        self.device = device
        self.state_path = state_path
        train_encoder = config.encoder_learning_rate > 0
        for parameter in module.encoder.parameters():
            parameter.requires_grad_(train_encoder)
        groups = [{"params": list(module.reasoner.parameters()), "lr": config.learning_rate}]
        if train_encoder:
            groups.append(
                {"params": list(module.encoder.parameters()), "lr": config.encoder_learning_rate}
            )
        self.optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        self.history = History()
        self.start_epoch = 0

    # --- persistence (resume after interruption) ----------------------------------------------

    def _save_state(self, epoch: int) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        torch.save(
            {
                "epoch": epoch,
                "model": self.module.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "history": asdict(self.history),
                "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate(),
                "config": asdict(self.config),
            },
            tmp,
        )
        tmp.replace(self.state_path)

    def resume(self) -> bool:
        """Continue from the saved state, if any; True when something was restored."""
        if self.state_path is None or not self.state_path.is_file():
            return False
        try:
            # Tensors and plain containers only: a pickle that names anything else (a planted
            # file that would run code) is refused, and nothing in it runs.
            state = torch.load(self.state_path, map_location=self.device, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
            raise ValueError(
                f"{self.state_path} is not a training state this trainer can load safely "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); it was "
                "not loaded. Remove it to start the training afresh."
            ) from exc
        if state["config"] != asdict(self.config):
            raise ValueError(
                f"{self.state_path} was saved with other settings; remove it to start afresh"
            )
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = History(**state["history"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        self.start_epoch = int(state["epoch"]) + 1
        return True

    # --- training and evaluation --------------------------------------------------------------

    def _batches(self, samples: Sequence[QASample], shuffle: bool) -> list[list[QASample]]:
        order = list(range(len(samples)))
        if shuffle:
            random.shuffle(order)
        size = self.config.batch_size
        return [[samples[i] for i in order[n : n + size]] for n in range(0, len(order), size)]

    def fit(
        self,
        train: Sequence[QASample],
        validation: Sequence[QASample],
        progress: bool = True,
        on_epoch: Callable[[int, History], None] | None = None,
    ) -> History:
        for epoch in range(self.start_epoch, self.config.epochs):
            self.module.train()
            losses = []
            batches = self._batches(train, shuffle=True)
            bar = tqdm(
                batches,
                desc=f"epoch {epoch + 1}/{self.config.epochs}",
                unit="batch",
                disable=not progress,
            )
            for chunk in bar:
                batch = collate_subgraphs([s.subgraph for s in chunk]).to(self.device)
                output = self.module([s.question for s in chunk], batch)
                loss = self.batch_loss(chunk, batch, output)
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), 1.0)
                self.optimizer.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
            self.history.epochs.append(epoch + 1)
            self.history.train_loss.append(sum(losses) / max(1, len(losses)))
            self.history.validation.append(self.evaluate(validation, progress=progress))
            self._save_state(epoch)
            if on_epoch is not None:
                on_epoch(epoch, self.history)
        return self.history

    def batch_loss(
        self, chunk: Sequence[QASample], batch: GraphBatch, output: ReasonerOutput
    ) -> Tensor:
        """Answer KL plus transfer-evidence BCE (subclasses add terms)."""
        targets = targets_for(chunk).to(self.device)
        return answer_loss(output.logits, targets, batch) + evidence_loss(
            output.evidence, targets, batch
        )

    def top_predictions(
        self, samples: Sequence[QASample], progress: bool = False
    ) -> list[tuple[str, float]]:
        return top_predictions(self.module, samples, self.device, self.config.batch_size, progress)

    def evaluate(self, samples: Sequence[QASample], progress: bool = False) -> dict[str, float]:
        return evaluate(self.module, samples, self.device, self.config.batch_size, progress)


@torch.no_grad()
def sample_logits(
    module: FusionModule,
    samples: Sequence[QASample],
    device: torch.device,
    batch_size: int = 64,
    progress: bool = False,
) -> Iterator[tuple[QASample, torch.Tensor]]:
    """Each sample with its nodes' logits on the CPU (anchors at -inf: never an answer)."""
    module.eval()
    chunks = [samples[n : n + batch_size] for n in range(0, len(samples), batch_size)]
    for chunk in tqdm(chunks, desc="evaluate", unit="batch", disable=not progress):
        batch = collate_subgraphs([s.subgraph for s in chunk]).to(device)
        logits = module([s.question for s in chunk], batch).logits
        logits = logits.float().masked_fill(batch.is_anchor, float("-inf")).cpu()
        offsets = batch.node_offset.tolist()
        for n, sample in enumerate(chunk):
            yield sample, logits[offsets[n] : offsets[n + 1]]


def top_predictions(
    module: FusionModule,
    samples: Sequence[QASample],
    device: torch.device,
    batch_size: int = 64,
    progress: bool = False,
) -> list[tuple[str, float]]:
    """(top non-anchor node key, its probability) for each sample."""
    results: list[tuple[str, float]] = []
    for sample, logits in sample_logits(module, samples, device, batch_size, progress):
        if logits.numel() == 0 or not torch.isfinite(logits).any():  # no node but anchors
            results.append(("", 0.0))
            continue
        probabilities = torch.softmax(logits, dim=0)
        best = int(probabilities.argmax())
        results.append((sample.subgraph.nodes[best].key, float(probabilities[best])))
    return results


def evaluate(
    module: FusionModule,
    samples: Sequence[QASample],
    device: torch.device,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, float]:
    """Hits@1 overall and per number of hops (keys ``hits@1`` and ``hits@1/<k>hop``)."""
    predictions = top_predictions(module, samples, device, batch_size, progress)
    hits: dict[str, list[bool]] = {"hits@1": []}
    for sample, (key, _) in zip(samples, predictions, strict=True):
        hit = key in sample.answer_keys
        hits["hits@1"].append(hit)
        hits.setdefault(f"hits@1/{sample.hops}hop", []).append(hit)
    return {name: sum(v) / len(v) for name, v in hits.items() if v}


def calibrate_temperature(training: ReasonerTraining, validation: Sequence[QASample]) -> float:
    """Temperature whose top-1 probability best predicts top-1 correctness (binary NLL).

    A grid is enough: one scalar, evaluated on cached logits.
    """
    outcomes: list[tuple[torch.Tensor, bool]] = []
    for sample, part in sample_logits(
        training.module, validation, training.device, training.config.batch_size
    ):
        if part.numel() == 0 or not torch.isfinite(part).any():
            continue
        best = int(part.argmax())
        outcomes.append((part, sample.subgraph.nodes[best].key in sample.answer_keys))
    if not outcomes:
        return 1.0
    best_temperature, best_nll = 1.0, math.inf
    # Log-spaced from 0.02 to 10: a model trained with an evidence term is sharp, and its best
    # temperature can be well below 1.
    for temperature in [0.02 * 10 ** (k / 20) for k in range(0, 55)]:
        nll = 0.0
        for part, correct in outcomes:
            probability = float(torch.softmax(part / temperature, dim=0).max())
            probability = min(max(probability, 1e-6), 1 - 1e-6)
            nll -= math.log(probability if correct else 1 - probability)
        if nll < best_nll:
            best_temperature, best_nll = temperature, nll
    return best_temperature


def plot_history(history: History, path: Path) -> None:
    """Training loss and validation Hits@1 per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, hits_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(history.epochs, history.train_loss, marker="o")
    loss_axis.set(title="training loss (answer KL + evidence BCE)", xlabel="epoch")
    for name in sorted({k for v in history.validation for k in v}):
        hits_axis.plot(
            history.epochs,
            [100 * v.get(name, float("nan")) for v in history.validation],
            marker="o",
            label=name,
        )
    hits_axis.set(title="validation Hits@1 (%)", xlabel="epoch")
    hits_axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
