"""Training the extractor on WebNLG train (and synthetic movie texts), registering it.

The text encoder is frozen, so its token states are computed once per text and cached; what
trains is small (``model.SpanRelationExtractor``): a few minutes an epoch on two CPU cores.
Losses: cross-entropy of the span tags, and for relations the adaptive-threshold loss of ATLOP
(Zhou et al. 2021): for every pair, each gold relation must score above a "no relation" logit
fixed at 0, and every other relation below it — one threshold that adapts per pair, and no
per-relation threshold to tune, which matters for relations known only by name.

5 % of the training entries (by a hash of the entry, so every text of an entry is on the same
side) are held out: the relation bias is chosen on them by Exact F1, and nothing of the
reported dev split is used for any choice.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from autoglm.extraction.examples import Example, build_example, held_out
from autoglm.extraction.extractor import NeuralExtractor
from autoglm.extraction.features import Featurizer
from autoglm.extraction.model import SpanRelationExtractor
from autoglm.extraction.schema import Schema
from autoglm.extraction.scoring import headline, score
from autoglm.extraction.webnlg import webnlg_triples

log = logging.getLogger(__name__)


@dataclass
class ExtractorTrainingConfig:
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    dim: int = 256
    layers: int = 1
    near: int = 3
    held_out_fraction: float = 0.05
    negative_spans: int = 3
    seed: int = 13
    biases: tuple[float, ...] = (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass
class TrainingText:
    id: str
    text: str
    triples: tuple[tuple[str, str, str], ...]
    category: str = ""
    group: str = ""


@dataclass
class TrainingReport:
    curves: list[dict[str, float]] = field(default_factory=list)
    bias: float = 0.0
    held_out: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    examples: int = 0


def _negative_spans(example: Example, count: int, rng: random.Random) -> list[tuple[int, int]]:
    """Capitalised or numeric word-piece runs that are not gold spans: mentions the tagger may
    find and the pair scorer must learn to leave alone."""
    gold = {i for first, last in example.spans for i in range(first, last + 1)}
    runs: list[tuple[int, int]] = []
    current: list[int] | None = None
    for index, (a, b) in enumerate(example.tokens.offsets):
        piece = example.text[a:b]
        starts_word = a == 0 or not example.text[a - 1].isalnum()
        if (
            b > a
            and index not in gold
            and (
                piece[:1].isupper()
                or piece[:1].isdigit()
                or (current is not None and not starts_word)
            )
        ):
            if current is None:
                current = [index, index]
            else:
                current[1] = index
        else:
            if current is not None:
                runs.append((current[0], current[1]))
            current = None
    if current is not None:
        runs.append((current[0], current[1]))
    rng.shuffle(runs)
    return runs[:count]


def _relation_loss(logits: Tensor, positives: Tensor) -> Tensor:
    """ATLOP's adaptive-threshold loss with the threshold logit fixed at 0.

    Shapes: **logits**, **positives** :math:`(P, R)`; returns a scalar.
    """
    threshold = torch.zeros((logits.size(0), 1), dtype=logits.dtype, device=logits.device)
    full = torch.cat([threshold, logits], dim=1)
    labels = torch.cat([torch.zeros_like(threshold, dtype=torch.bool), positives], dim=1)
    # Positives against the threshold: each gold relation above "no relation".
    pos_logits = full.masked_fill(~labels, float("-inf"))
    pos_logits[:, 0] = 0.0
    has_positive = positives.any(1)
    loss_pos = -torch.where(labels, torch.log_softmax(pos_logits, dim=1), 0.0).sum(1)
    # The threshold against negatives: "no relation" above every other relation.
    neg_logits = full.masked_fill(labels, float("-inf"))
    loss_neg = -torch.log_softmax(neg_logits, dim=1)[:, 0]
    return (loss_pos * has_positive).sum() / logits.size(0) + loss_neg.mean()


class ExtractorTrainer:
    def __init__(
        self,
        featurizer: Featurizer,
        schema: Schema,
        config: ExtractorTrainingConfig | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        views: Sequence[Schema] = (),
    ) -> None:
        """``views``: the same relations (same names, same order) described otherwise, e.g.
        by name only; each batch reads one view at random, so the scorer learns to work from
        a bare name as well as from a description."""
        self.featurizer = featurizer
        self.schema = schema
        self.views = [schema, *views]
        for view in views:
            if view.names != schema.names:
                raise ValueError("a relation view must name the schema's relations in order")
        self.config = config or ExtractorTrainingConfig()
        self.progress = progress or (lambda what, done, total: None)
        self.relation_index = {name: i for i, name in enumerate(schema.names)}

    def examples(self, texts: Sequence[TrainingText]) -> list[Example]:
        tokenized = self.featurizer.tokenize([t.text for t in texts])
        return [
            build_example(t.id, t.text, t.triples, tokens, self.relation_index, t.group or t.id)
            for t, tokens in zip(texts, tokenized, strict=True)
        ]

    def encode(self, examples: Sequence[Example], cache_dir: Path | None = None) -> list[Tensor]:
        """The frozen encoder's token states of every example (float16, computed once; kept in
        ``cache_dir`` as safetensors, keyed by the encoder and the token ids, when given)."""
        cache: Path | None = None
        if cache_dir is not None:
            digest = hashlib.sha256(self.featurizer.identity.encode())
            for example in examples:
                digest.update(bytes(str(example.tokens.ids), "ascii"))
            cache = cache_dir / f"extractor-states-{digest.hexdigest()[:16]}.safetensors"
            if cache.is_file():
                loaded = load_file(str(cache))
                return [loaded[str(i)] for i in range(len(examples))]
        order = sorted(range(len(examples)), key=lambda i: len(examples[i].tokens))
        states: list[Tensor | None] = [None] * len(examples)
        step = 64
        for begin in range(0, len(order), step):
            batch = order[begin : begin + step]
            out, _ = self.featurizer.states([examples[i].tokens for i in batch])
            for row, index in enumerate(batch):
                states[index] = out[row, : len(examples[index].tokens)].to(torch.float16).cpu()
            self.progress("encoding", min(begin + step, len(order)), len(order))
        encoded = [s for s in states if s is not None]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_suffix(".partial")
            save_file({str(i): t.contiguous() for i, t in enumerate(encoded)}, str(partial))
            partial.replace(cache)
        return encoded

    def train(
        self,
        texts: Sequence[TrainingText],
        *,
        held_out_texts: Sequence[TrainingText] = (),
        cache_dir: Path | None = None,
    ) -> tuple[SpanRelationExtractor, TrainingReport]:
        config = self.config
        torch.manual_seed(config.seed)
        rng = random.Random(config.seed)
        started = time.perf_counter()
        examples = self.examples(texts)
        states = self.encode(examples, cache_dir)
        views = [self.featurizer.relation_embeddings(v).float().cpu() for v in self.views]
        model = SpanRelationExtractor(
            self.featurizer.hidden_size, config.dim, config.layers, config.near
        )
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        order = sorted(range(len(examples)), key=lambda i: len(examples[i].tokens))
        batches = [
            order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)
        ]
        total_steps = config.epochs * len(batches)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.learning_rate, total_steps=total_steps, pct_start=0.1
        )
        report = TrainingReport(examples=len(examples))
        step = 0
        for epoch in range(config.epochs):
            model.train()
            rng.shuffle(batches)
            sums = {"tags": 0.0, "relations": 0.0}
            for batch in batches:
                loss_tags, loss_rel = self._step(
                    model,
                    [examples[i] for i in batch],
                    [states[i] for i in batch],
                    rng.choice(views),
                    rng,
                )
                loss = loss_tags + loss_rel
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                sums["tags"] += float(loss_tags.detach())
                sums["relations"] += float(loss_rel.detach())
                step += 1
                if step % 50 == 0:
                    self.progress(f"epoch {epoch + 1}/{config.epochs}", step, total_steps)
            curve = {"epoch": epoch + 1, **{k: v / len(batches) for k, v in sums.items()}}
            report.curves.append(curve)
            log.info("extractor epoch", extra=curve)
        model.eval()
        if held_out_texts:
            report.bias, report.held_out = self.choose_bias(model, held_out_texts)
        report.seconds = time.perf_counter() - started
        return model, report

    def _step(
        self,
        model: SpanRelationExtractor,
        examples: Sequence[Example],
        states: Sequence[Tensor],
        relations: Tensor,
        rng: random.Random,
    ) -> tuple[Tensor, Tensor]:
        length = max(s.size(0) for s in states)
        batch = torch.zeros((len(states), length, states[0].size(1)))
        mask = torch.zeros((len(states), length), dtype=torch.bool)
        tags = torch.full((len(states), length), -100, dtype=torch.long)
        for row, (example, state) in enumerate(zip(examples, states, strict=True)):
            batch[row, : state.size(0)] = state.float()
            mask[row, : state.size(0)] = True
            tags[row, : state.size(0)] = torch.tensor(example.tags)
        tokens, tag_logits = model.encode(batch, mask)
        prepared = model.relations.prepare(relations)
        loss_tags = nn.functional.cross_entropy(tag_logits.reshape(-1, 3), tags.reshape(-1))
        all_spans: list[tuple[int, int, int]] = []
        all_pairs: list[tuple[int, int]] = []
        positive_cells: list[tuple[int, int]] = []
        for row, example in enumerate(examples):
            spans = list(example.spans)
            spans += _negative_spans(example, self.config.negative_spans, rng)
            if len(spans) < 2:
                continue
            base = len(all_spans)
            all_spans += [(row, first, last) for first, last in spans]
            index: dict[tuple[int, int], int] = {}
            for h in range(len(spans)):
                for t in range(len(spans)):
                    if h != t:
                        index[(h, t)] = len(all_pairs)
                        all_pairs.append((base + h, base + t))
            positive_cells += [(index[(h, t)], r) for h, t, r in example.labels]
        if not all_pairs:
            return loss_tags, tokens.sum() * 0.0
        logits = model.relation_logits(
            tokens, torch.tensor(all_spans), torch.tensor(all_pairs), prepared
        )
        positives = torch.zeros_like(logits, dtype=torch.bool)
        if positive_cells:
            cells = torch.tensor(positive_cells)
            positives[cells[:, 0], cells[:, 1]] = True
        return loss_tags, _relation_loss(logits, positives)

    def choose_bias(
        self, model: SpanRelationExtractor, texts: Sequence[TrainingText]
    ) -> tuple[float, dict[str, float]]:
        """The relation bias with the best Exact F1 on held-out training texts."""
        best: tuple[float, float, dict[str, float]] = (-1.0, 0.0, {})
        references = [list(t.triples) for t in texts]
        for bias in self.config.biases:
            extractor = NeuralExtractor(
                model, self.featurizer, self.schema, version="held-out", bias=bias
            )
            found = extractor.extract([t.text for t in texts])
            candidates = [webnlg_triples(facts) for facts in found]
            figures = headline(score(references, candidates)["overall"])
            log.info("held-out bias", extra={"bias": bias, **figures})
            self.progress(f"bias {bias:+.1f}: exact F1 {figures['exact']:.3f}", 0, 0)
            if figures["exact"] > best[0]:
                best = (figures["exact"], bias, figures)
        return best[1], best[2]


def split_held_out(
    texts: Sequence[TrainingText], fraction: float
) -> tuple[list[TrainingText], list[TrainingText]]:
    train = [t for t in texts if not held_out(t.group or t.id, fraction)]
    rest = [t for t in texts if held_out(t.group or t.id, fraction)]
    return train, rest
