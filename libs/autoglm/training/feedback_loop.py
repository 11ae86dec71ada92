"""The trainer's loop: stored examples -> incremental round -> gate -> promotion.

:class:`FeedbackLoop` is the trainer service's core, without Kafka: the service adds examples
to the :class:`ExampleStore` as they arrive and calls :meth:`FeedbackLoop.maybe_train` every
second; the loop starts a round when ``min_examples`` are pending or the oldest pending one has
waited ``max_wait_s``.

A round, in the order that keeps a killed trainer consistent:

1. recorded in the store with its parent (the serving version) and its examples;
2. subgraphs retrieved from Neo4j through the graph-builder's own retriever (new examples by
   the anchors they were linked to, the validation slice by its topic entity);
3. the candidate trained (``incremental.train_candidate``: state saved after every epoch) and
   registered atomically with its lineage and the gate's verdict; the store notes its version;
4. if the gate passed and the parent still serves: the registry points at it and a model update
   is published (inference replicas hot-swap);
5. the examples join the replay buffer (once: the buffer remembers the last round it took) and
   the round is marked finished, its examples used, in one transaction.

A trainer killed anywhere restarts at the first step not done: training resumes from its last
epoch, a registered candidate is not trained again, and a promotion is re-published (swapping
to the version already serving is a no-op for inference).

A round that fails is tried again with exponential backoff, jitter and a cap
(``LoopConfig.round_retry``, :mod:`autoglm.retries`), resuming from where it got to; after the
policy's attempts (counted in the store, a kill midway included) it is finished as "failed",
with the error in its report and an error in the log, and the loop goes on with new examples.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from autoglm.contracts import (
    SCHEMA_VERSION,
    ExampleSource,
    LinkedEntity,
    ModelAction,
    ModelUpdate,
    TrainingExample,
)
from autoglm.graph.questions import linked_scoring_text
from autoglm.graph.retrieval import RetrievalCaps, SubgraphRetriever
from autoglm.models.fusion_model import FusionAnswerModel
from autoglm.models.serving import load_model
from autoglm.nlp.keys import normalize_key
from autoglm.nlp.parsing import strip_brackets
from autoglm.registry import BUILTIN_VERSION, ModelRegistry
from autoglm.retries import RetryPolicy
from autoglm.settings import Settings
from autoglm.training.example_store import ExampleStore, Round, effective_examples
from autoglm.training.incremental import IncrementalConfig, train_candidate
from autoglm.training.loop import QASample
from autoglm.training.metaqa import QAExample, read_qa, split_dev
from autoglm.training.replay import ReplayBuffer
from autoglm.training.samples import SampleCaps, retrieve_sample

log = logging.getLogger(__name__)

SOURCE_NAMES = {
    ExampleSource.EXAMPLE_SOURCE_PSEUDO_LABEL: "pseudo_label",
    ExampleSource.EXAMPLE_SOURCE_FEEDBACK: "feedback",
    ExampleSource.EXAMPLE_SOURCE_LABELLED: "labelled",
}
# Retrievals in flight at once (like a graph-builder batch): within the Redis and Neo4j pools.
SAMPLE_CONCURRENCY = 64


@dataclass(frozen=True)
class LoopConfig:
    min_examples: int = 500  # N: a round starts once this many examples are pending ...
    max_wait_s: float = 3600.0  # T: ... or once the oldest pending one has waited this long
    max_examples: int = 5000  # most examples one round takes
    replay_capacity: int = 5000
    validation_files: tuple[Path, ...] = ()
    validation_fraction: float = 0.2
    validation_limit: int = 200  # per file
    seed_files: tuple[Path, ...] = ()  # labelled QA files the replay buffer starts from
    incremental: IncrementalConfig = field(default_factory=IncrementalConfig)
    # A failing round: tried this often in all, waits growing from a minute to an hour.
    round_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(initial_s=60.0, max_s=3600.0, jitter_s=30.0, attempts=5)
    )


@dataclass(frozen=True)
class RoundResult:
    round_id: int
    status: str  # "promoted", "rejected", "superseded" (serving changed meanwhile), "failed"
    version: str
    parent: str
    report: dict[str, Any]


Publish = Callable[[ModelUpdate], Awaitable[None]]
Item = TypeVar("Item")
Fetched = TypeVar("Fetched")


def _hops_of(path: Path) -> int:
    return next((h for h in (1, 2, 3) if f"{h}hop" in path.name), 1)


def validation_examples(config: LoopConfig) -> list[QAExample]:
    """The fixed held-out slice: ``validation_limit`` questions of the validation part of each
    file (the split ``autoglm train`` never trains on), drawn by a hash of the question.

    Drawn, not the first ones: QA files are often grouped by question type, and a gate that
    sees a few types cannot see a round forget the others.
    """
    examples: list[QAExample] = []
    for path in config.validation_files:
        _, held_out = split_dev(read_qa(path, None, _hops_of(path)), config.validation_fraction)
        examples += sorted(held_out, key=lambda e: _spread(e.question))[: config.validation_limit]
    return examples


def _spread(question: str) -> str:
    return hashlib.sha256(("gate:" + question).encode("utf-8")).hexdigest()


def seed_examples(paths: Sequence[Path]) -> list[TrainingExample]:
    """Labelled QA files (MetaQA format) as training examples: what the replay buffer starts
    from, so that the first rounds rehearse what the base model learnt, not only the new."""
    examples = []
    for path in paths:
        for n, qa in enumerate(read_qa(path, None, _hops_of(path))):
            topic = normalize_key(qa.topic)
            examples.append(
                TrainingExample(
                    request_id=f"labelled:{path.name}:{n}",
                    schema_version=SCHEMA_VERSION,
                    source_request_id=f"labelled:{path.name}:{n}",
                    source=ExampleSource.EXAMPLE_SOURCE_LABELLED,
                    question=qa.question,
                    answer_keys=sorted({normalize_key(a) for a in qa.answers}),
                    weight=1.0,
                    hops=qa.hops,
                    anchors=[LinkedEntity(mention=qa.topic, key=topic, name=qa.topic, score=1.0)],
                )
            )
    return examples


class FeedbackLoop:
    def __init__(
        self,
        settings: Settings,
        config: LoopConfig,
        store: ExampleStore,
        retriever: SubgraphRetriever,
        publish: Publish,
        state_dir: Path,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self.retriever = retriever
        self.publish = publish
        self.state_dir = state_dir
        self.registry = ModelRegistry(settings.model_registry_dir)
        self.replay_path = state_dir / "replay.json"
        if (state_dir / "replay.pkl").is_file() and not self.replay_path.is_file():
            # Earlier trainers pickled it; a pickle is never loaded (it could run code).
            log.warning(
                "replay.pkl of an earlier trainer ignored: pickles are not loaded; the replay "
                "buffer starts afresh",
                extra={"path": str(state_dir / "replay.pkl")},
            )
        self._validation: list[QASample] | None = None
        self._blocked_until = 0.0
        self.caps = SampleCaps(settings.subgraph_max_nodes, settings.subgraph_max_edges)

    # --- when ---------------------------------------------------------------------------------

    def due(self, now: float | None = None) -> bool:
        pending = self.store.pending_count()
        if pending == 0:
            return False
        if pending >= self.config.min_examples:
            return True
        age = self.store.oldest_pending_age(now)
        return age is not None and age >= self.config.max_wait_s

    async def maybe_train(self) -> RoundResult | None:
        """Finish an interrupted round, or run a new one when it is due."""
        if time.monotonic() < self._blocked_until:
            return None
        unfinished = self.store.unfinished_round()
        if unfinished is not None:
            log.info("resuming round", extra={"round": unfinished.id})
            return await self.run_round_retrying(unfinished.id)
        if not self.due():
            return None
        parent = self.registry.serving_version()
        if parent == BUILTIN_VERSION:
            # Nothing to train from: the built-in model has no trainable layers.
            log.error(
                "no trained model serves: incremental training waits for one "
                "(autoglm train, or autoglm models import --serve)"
            )
            self._blocked_until = time.monotonic() + 60.0
            return None
        examples = self.store.pending(self.config.max_examples)
        round_ = self.store.start_round(parent, [e.request_id for e in examples])
        return await self.run_round_retrying(round_.id)

    # --- a round --------------------------------------------------------------------------------

    async def run_round_retrying(self, round_id: int) -> RoundResult:
        """The round, tried again after a failure as ``round_retry`` says (each attempt goes on
        from where the last got to); finished as "failed" once the attempts are spent."""
        policy = self.config.round_retry
        done = int(self.store.round(round_id).report.get("attempts", 0))
        if policy.attempts is not None and done >= policy.attempts:
            return self._fail_round(round_id, "its attempts were spent before the restart")
        try:
            async for attempt in policy.retrying(
                log, "incremental round", done=done, round=round_id
            ):
                with attempt:
                    self.store.note_attempt(round_id)
                    try:
                        return await self.run_round(self.store.round(round_id))
                    except Exception as exc:
                        self.store.note_attempt(round_id, f"{type(exc).__name__}: {exc}")
                        raise
        except Exception as exc:
            return self._fail_round(round_id, f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _fail_round(self, round_id: int, error: str) -> RoundResult:
        round_ = self.store.round(round_id)
        report = {**round_.report, "error": error}
        self.store.finish_round(round_id, "failed", report)
        log.error(
            "incremental round failed for good; its examples are set aside with it",
            extra={"round": round_id, "parent": round_.parent_version, **report},
        )
        return RoundResult(round_id, "failed", "", round_.parent_version, report)

    async def run_round(self, round_: Round) -> RoundResult:
        started = time.perf_counter()
        examples = effective_examples(self.store.examples(list(round_.example_ids)))
        version = round_.candidate_version
        if version is None:
            version = await self._train(round_, examples)
        meta = self.registry.get(version).meta
        promote = bool(meta["data"]["gate"]["promote"])
        serving = self.registry.serving_version()
        status = "rejected"
        if promote and serving in (round_.parent_version, version):
            self.registry.set_serving(version)
            await self.publish(
                ModelUpdate(
                    request_id=f"trainer-round-{round_.id}-{version}",
                    schema_version=SCHEMA_VERSION,
                    action=ModelAction.MODEL_ACTION_PROMOTE,
                    version=version,
                    parent_version=round_.parent_version,
                    metrics={k: float(v) for k, v in meta.get("metrics", {}).items()},
                )
            )
            status = "promoted"
        elif promote:
            status = "superseded"  # someone promoted or rolled back meanwhile: theirs stands
        self._remember(round_.id, examples)
        report = {
            "version": version,
            "gate": meta["data"]["gate"],
            "new_examples": meta["data"].get("new_examples"),
            "seconds": round(time.perf_counter() - started, 1),
        }
        self.store.finish_round(round_.id, status, report)
        log.info(
            "round finished",
            extra={"round": round_.id, "status": status, "version": version, **report},
        )
        return RoundResult(round_.id, status, version, round_.parent_version, report)

    async def _train(self, round_: Round, examples: Sequence[TrainingExample]) -> str:
        replay = self._replay()
        new = [s for s in await self.samples(examples) if s is not None]
        wanted = round(len(new) * self.config.incremental.replay_ratio)
        replayed_examples = [TrainingExample.FromString(raw) for raw in replay.sample(wanted)]
        replayed = [s for s in await self.samples(replayed_examples) if s is not None]
        validation = await self.validation()
        serving = await asyncio.to_thread(self._load, round_.parent_version)
        counts: dict[str, int] = {}
        for example in examples:
            kind = SOURCE_NAMES.get(example.source, "unspecified")
            counts[kind] = counts.get(kind, 0) + 1
        lineage = {
            "round": round_.id,
            "examples": counts,
            "examples_without_usable_subgraph": len(examples) - len(new),
            "examples_seen_before": replay.seen,
            "examples_seen": replay.seen + len(examples),
        }
        report = await asyncio.to_thread(
            train_candidate,
            self.registry,
            serving,
            new,
            replayed,
            validation,
            self.config.incremental,
            lineage=lineage,
            state_path=self.state_dir / f"round-{round_.id}.pt",
        )
        self.store.set_candidate(round_.id, report.version.version)
        return report.version.version

    def _load(self, version: str) -> FusionAnswerModel:
        # Encodings in Redis are the serving encoder's; a trained copy must not read them.
        settings = self.settings.model_copy(update={"encoding_cache_enabled": False})
        model = load_model(settings, version)
        if not isinstance(model, FusionAnswerModel):
            raise RuntimeError(f"{version} is not a trainable fusion model")
        return model

    def _replay(self) -> ReplayBuffer[bytes]:
        replay: ReplayBuffer[bytes] = ReplayBuffer.load(
            self.replay_path, self.config.replay_capacity, self.config.incremental.seed
        )
        if replay.seen == 0 and self.config.seed_files:
            replay.extend(e.SerializeToString() for e in seed_examples(self.config.seed_files))
        return replay

    def _remember(self, round_id: int, examples: Sequence[TrainingExample]) -> None:
        replay = self._replay()
        if replay.tag >= round_id:
            return  # this round's examples are in already (a restart after saving)
        replay.extend(e.SerializeToString() for e in examples)
        replay.tag = round_id
        replay.save(self.replay_path)

    # --- samples ------------------------------------------------------------------------------

    async def samples(self, examples: Sequence[TrainingExample]) -> list[QASample | None]:
        """Training samples (None where the subgraph holds none of the answers and there is
        no wrong answer to push down: nothing to learn from)."""
        return await _bounded(self._sample, examples)

    async def _sample(self, example: TrainingExample) -> QASample | None:
        anchors = sorted({a.key for a in example.anchors})
        if not anchors:
            return None
        question = strip_brackets(example.question)
        text = linked_scoring_text(question, example.anchors)
        hops = example.hops or self.settings.default_hops
        subgraph = await self.retriever.retrieve(
            anchors, RetrievalCaps(hops, self.caps.max_nodes, self.caps.max_edges), text
        )
        keys = {node.key for node in subgraph.nodes}
        answers = frozenset(example.answer_keys) & keys
        negatives = frozenset(example.negative_keys) & keys
        if not answers and not negatives:
            return None
        return QASample(question, subgraph, answers, hops, float(example.weight), negatives)

    async def validation(self) -> list[QASample]:
        if self._validation is None:
            examples = validation_examples(self.config)
            if not examples:
                raise ValueError("no validation questions: set trainer_validation_qa")
            self._validation = await _bounded(
                lambda e: retrieve_sample(self.retriever, e, self.caps), examples
            )
        return self._validation


async def _bounded(
    fetch: Callable[[Item], Awaitable[Fetched]], items: Sequence[Item]
) -> list[Fetched]:
    """``fetch`` of every item, ``SAMPLE_CONCURRENCY`` at a time, in order."""
    gate = asyncio.Semaphore(SAMPLE_CONCURRENCY)

    async def one(item: Item) -> Fetched:
        async with gate:
            return await fetch(item)

    return list(await asyncio.gather(*(one(item) for item in items)))
