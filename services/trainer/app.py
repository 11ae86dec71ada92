"""trainer service: confident results and user feedback -> training examples -> incremental
rounds -> gated promotion of a new model version (see autoglm.training.feedback_loop).

Run one replica: its training loop is a singleton (the example store and the replay buffer are
its own files under ``trainer_state_dir``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from autoglm.bus import topics
from autoglm.bus.idempotency import IdempotencyStore
from autoglm.bus.service import HandlerContext, Incoming, ItemResult, Outgoing, ServiceRuntime
from autoglm.contracts import Feedback, ModelUpdate, Result, TrainingExample
from autoglm.contracts.bounds import check_hops
from autoglm.contracts.codec import PROTOBUF
from autoglm.errors import BadInputError
from autoglm.graph.questions import QuestionGrounder
from autoglm.graph.store import GraphStore
from autoglm.redis_access import RedisResultMemory
from autoglm.retries import RetryPolicy
from autoglm.settings import PROJECT_ROOT, Settings
from autoglm.training.example_store import ExampleStore
from autoglm.training.examples import FEEDBACK_WEIGHT, feedback_example, pseudo_label
from autoglm.training.feedback_loop import FeedbackLoop, LoopConfig
from autoglm.training.incremental import IncrementalConfig

SERVICE = "trainer"
log = logging.getLogger(__name__)


DATA = PROJECT_ROOT.parent / "shared" / "data" / "metaqa"


class TrainerSettings(Settings):
    result_memory_ttl_s: int = Field(
        30 * 24 * 3600, description="How long results are kept for feedback to refer to."
    )
    result_batch_size: int = Field(
        256, ge=1, description="Most results one poll brings (remembered in one round trip)."
    )
    feedback_weight: float = Field(
        FEEDBACK_WEIGHT,
        gt=0,
        description="Loss weight of a user's feedback (pseudo-labels weigh their confidence).",
    )
    trainer_state_dir: Path | None = Field(
        None,
        description="Example store, replay buffer and round checkpoints "
        "(default: <model_registry_dir>/trainer).",
    )
    trainer_min_examples: int = Field(
        500, ge=1, description="N: a round starts once this many new examples are pending."
    )
    trainer_max_wait_s: float = Field(
        3600.0, gt=0, description="T: ... or once the oldest pending example waited this long."
    )
    trainer_max_examples: int = Field(5000, ge=1, description="Most new examples per round.")
    trainer_check_interval_s: float = Field(
        1.0, gt=0, description="How often the loop checks whether a round is due."
    )
    trainer_round_attempts: int = Field(
        5,
        ge=1,
        description="Tries of an incremental round that keeps failing (a kill midway counts) "
        "before it is finished as failed and reported; its examples are set aside with it.",
    )
    trainer_retry_initial_s: float = Field(
        60.0, ge=0, description="Wait before a failed round (or loop check) is tried again."
    )
    trainer_retry_max_s: float = Field(
        3600.0,
        ge=0,
        description="Cap of the waits, which double from trainer_retry_initial_s.",
    )
    trainer_retry_jitter_s: float = Field(
        30.0, ge=0, description="Random extra wait of up to this much before each retry."
    )
    trainer_epochs: int = Field(3, ge=1, description="Epochs of a round.")
    trainer_batch_size: int = Field(32, ge=1, description="Training batch of a round.")
    trainer_learning_rate: float = Field(
        3e-4, gt=0, description="Learning rate of the graph, fusion and head layers."
    )
    trainer_encoder_learning_rate: float = Field(
        1e-5, ge=0, description="Learning rate of the text encoder (lower; 0 freezes it)."
    )
    trainer_replay_ratio: float = Field(
        1.0, ge=0, description="Replayed earlier examples per new example in a round."
    )
    trainer_replay_capacity: int = Field(
        5000, ge=1, description="Reservoir of earlier examples kept for replay."
    )
    trainer_distill_weight: float = Field(
        0.5, ge=0, description="Weight of distillation from the serving model."
    )
    trainer_distill_temperature: float = Field(2.0, gt=0, description="Distillation temperature.")
    trainer_gate_tolerance: float = Field(
        0.005, ge=0, description="Promote unless Hits@1 on the validation slice drops by more."
    )
    trainer_seed: int = Field(0, description="Seed of rounds (shuffling, replay sampling).")
    trainer_validation_qa: str = Field(
        ",".join(str(DATA / f"{h}hop_dev.txt") for h in (1, 2, 3)),
        description="Comma-separated MetaQA-format QA files; the held-out part of each is the "
        "gate's fixed validation slice.",
    )
    trainer_validation_fraction: float = Field(
        0.2, gt=0, le=1, description="Held-out share of each validation file (as autoglm train)."
    )
    trainer_validation_limit: int = Field(200, ge=1, description="Validation questions per file.")
    trainer_seed_qa: str = Field(
        "",
        description="Comma-separated labelled QA files (MetaQA format) the replay buffer starts "
        "from: what the base model was trained on, rehearsed in the first rounds.",
    )

    @property
    def state_dir(self) -> Path:
        return self.trainer_state_dir or self.model_registry_dir / "trainer"

    def retry_policy(self, attempts: int | None) -> RetryPolicy:
        return RetryPolicy(
            initial_s=self.trainer_retry_initial_s,
            max_s=max(self.trainer_retry_initial_s, self.trainer_retry_max_s),
            jitter_s=self.trainer_retry_jitter_s,
            attempts=attempts,
        )

    def loop_config(self) -> LoopConfig:
        return LoopConfig(
            min_examples=self.trainer_min_examples,
            max_wait_s=self.trainer_max_wait_s,
            max_examples=self.trainer_max_examples,
            replay_capacity=self.trainer_replay_capacity,
            validation_files=_paths(self.trainer_validation_qa),
            validation_fraction=self.trainer_validation_fraction,
            validation_limit=self.trainer_validation_limit,
            seed_files=_paths(self.trainer_seed_qa),
            round_retry=self.retry_policy(self.trainer_round_attempts),
            incremental=IncrementalConfig(
                epochs=self.trainer_epochs,
                batch_size=self.trainer_batch_size,
                learning_rate=self.trainer_learning_rate,
                encoder_learning_rate=self.trainer_encoder_learning_rate,
                replay_ratio=self.trainer_replay_ratio,
                distill_weight=self.trainer_distill_weight,
                distill_temperature=self.trainer_distill_temperature,
                gate_tolerance=self.trainer_gate_tolerance,
                seed=self.trainer_seed,
            ),
        )


def build(
    settings: TrainerSettings | None = None, *, idempotency: IdempotencyStore | None = None
) -> ServiceRuntime:
    settings = settings or TrainerSettings()
    runtime = ServiceRuntime(SERVICE, settings, idempotency=idempotency)
    memory = RedisResultMemory.connect(
        settings, f"{settings.topic_prefix}trainer", settings.result_memory_ttl_s
    )
    runtime.on_shutdown(memory.close)

    @runtime.consume_batch(
        topics.RESULTS, Result, max_records=settings.result_batch_size, required=("request_id",)
    )
    async def on_results(items: Sequence[Incoming[Result]]) -> list[ItemResult]:
        await memory.remember_many([item.message for item in items])
        examples = [pseudo_label(item.message, settings.confidence_threshold) for item in items]
        return [
            [Outgoing(topics.TRAINING_EXAMPLES, example, key=example.request_id)] if example else []
            for example in examples
        ]

    @runtime.consume(topics.FEEDBACK, Feedback, required=("request_id", "target_request_id"))
    async def on_feedback(feedback: Feedback, ctx: HandlerContext) -> list[Outgoing]:
        example = feedback_example(
            feedback, await memory.recall(feedback.target_request_id), settings.feedback_weight
        )
        return [Outgoing(topics.TRAINING_EXAMPLES, example, key=example.request_id)]

    # The loop's own input: what the two handlers above publish, and what any other producer
    # (a labelling tool) may publish. Stored durably; a repeated id is ignored.
    store = ExampleStore(settings.state_dir / "examples.sqlite")

    @runtime.consume_batch(
        topics.TRAINING_EXAMPLES,
        TrainingExample,
        max_records=settings.result_batch_size,
        required=("request_id", "source_request_id", "question"),
    )
    async def on_examples(items: Sequence[Incoming[TrainingExample]]) -> list[ItemResult]:
        checks = [check_example(item.message, settings) for item in items]
        store.add(item.message for item, error in zip(items, checks, strict=True) if not error)
        return [error if error is not None else [] for error in checks]

    graph = GraphStore.connect(settings)
    grounder = QuestionGrounder(graph, settings)

    async def publish_update(update: ModelUpdate) -> None:
        await runtime.publish(
            Outgoing(topics.MODEL_UPDATES, update, key="serving"), content_type=PROTOBUF
        )

    loop = FeedbackLoop(
        settings,
        settings.loop_config(),
        store,
        grounder.retriever,
        publish_update,
        settings.state_dir,
    )
    task: asyncio.Task[None] | None = None

    async def keep_training() -> None:
        # A failing round is retried with backoff and then reported as failed by the loop
        # itself; what fails outside a round (the example store, the registry) is retried here
        # with the same backoff, without limit: training is all this task does.
        checks = settings.retry_policy(None)
        while True:
            async for attempt in checks.retrying(log, "trainer loop check"):
                with attempt:
                    await loop.maybe_train()
            await asyncio.sleep(settings.trainer_check_interval_s)

    async def start() -> None:
        nonlocal task
        await grounder.start()
        task = asyncio.create_task(keep_training())

    async def stop() -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await grounder.close()
        await graph.close()
        store.close()

    runtime.on_startup(start)
    runtime.on_shutdown(stop)
    return runtime


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(p.strip()) for p in text.split(",") if p.strip())


def check_example(example: TrainingExample, settings: Settings) -> BadInputError | None:
    """An example the loop cannot learn from, or that asks for more retrieval than a question
    may (anyone who reaches Kafka can publish training examples), is refused with the reason
    (dead letter)."""
    try:
        check_hops(example.hops, settings, zero_is_default=True)
    except BadInputError as exc:
        return exc
    if not example.anchors:
        return BadInputError(
            "training example has no anchors (linked entities) to retrieve a subgraph from",
            error_type="missing_field",
        )
    if not example.answer_keys and not example.negative_keys:
        return BadInputError(
            "training example has neither answer keys nor negative keys",
            error_type="missing_field",
        )
    if not math.isfinite(example.weight) or example.weight <= 0:
        return BadInputError(
            f"training example weight must be positive, got {example.weight}",
            error_type="invalid_field",
        )
    return None
