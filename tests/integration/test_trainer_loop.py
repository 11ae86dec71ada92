"""The feedback loop in the real trainer service (a process on the real Kafka, Neo4j and Redis):
confident results and user feedback become examples, a round trains, the gate passes, the
registry records the lineage and the running inference service swaps to the new version; a bad
example is dead-lettered; a trainer killed in the middle of a round resumes it on restart."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time

import pytest
import torch

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.cli.services import ServiceManager
from autoglm.contracts import (
    SCHEMA_VERSION,
    Answer,
    DeadLetter,
    Feedback,
    LinkedEntity,
    LinkingReport,
    Result,
    ResultStatus,
    TrainingExample,
)
from autoglm.models.fusion_model import FusionModule, config_meta, weights_of
from autoglm.models.reasoner import ReasonerConfig
from autoglm.registry import ModelRegistry
from autoglm.training.example_store import ExampleStore
from autoglm.training.loop import ReasonerTraining, TrainConfig, seed_everything
from tests.integration.test_hot_swap import reasoning_input
from tests.integration.test_subgraph_retrieval import _document
from tests.retrieval_toys import TOY_KB
from tests.stack_fixtures import isolated_settings, settings_env
from tests.unit.test_feedback_loop import FACTS, fact_samples

pytestmark = pytest.mark.integration


@pytest.fixture
async def toy_graph(graph_store):
    await graph_store.write_document(_document("toy-kb", TOY_KB))
    return graph_store


@pytest.fixture
def loop_settings(stack_settings, tmp_path, unique):
    return isolated_settings(stack_settings, tmp_path, f"loop-{unique}.")


async def serving_version(settings, encoder) -> str:
    """A small trained model (the toy facts as questions) serving from the test's registry."""
    trained = await fact_samples()
    seed_everything(0)
    module = FusionModule(encoder, ReasonerConfig(hops=1, dropout=0.0))
    config = TrainConfig(epochs=60, batch_size=8, learning_rate=3e-3)
    ReasonerTraining(module, config, torch.device("cpu")).fit(trained, trained, progress=False)
    registry = ModelRegistry(settings.model_registry_dir)
    version = registry.register(
        weights_of(module, include_encoder=False),
        {"temperature": 1.0, "reasoner_config": config_meta(module.reasoner.config)},
    ).version
    registry.set_serving(version)
    return version


def trainer_env(settings, tmp_path, **extra: str) -> dict[str, str]:
    validation = tmp_path / "1hop_dev.txt"
    validation.write_text("".join(f"{q}\t{a}\n" for q, _, a in FACTS), encoding="utf-8")
    return {
        **settings_env(settings),
        "AUTOGLM_TRAINER_VALIDATION_QA": str(validation),
        "AUTOGLM_TRAINER_VALIDATION_FRACTION": "1.0",
        "AUTOGLM_TRAINER_ENCODER_LEARNING_RATE": "0",
        "AUTOGLM_TRAINER_CHECK_INTERVAL_S": "0.2",
        **extra,
    }


def result_of(n: int, confidence: float) -> Result:
    question, topic, answer = FACTS[n]
    return Result(
        request_id=new_request_id(),
        schema_version=SCHEMA_VERSION,
        status=ResultStatus.RESULT_STATUS_OK,
        question=question,
        answers=[Answer(key=answer, name=answer, probability=confidence)],
        confidence=confidence,
        model_version="v-test",
        graph_version=1,
        hops=1,
        linking=LinkingReport(
            anchors=[LinkedEntity(mention=topic, key=topic, name=topic, score=1.0)]
        ),
    )


async def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def test_results_and_feedback_train_a_version_that_inference_swaps_to(
    loop_settings, toy_graph, text_encoder, tmp_path
):
    parent = await serving_version(loop_settings, text_encoder)
    registry = ModelRegistry(loop_settings.model_registry_dir)
    # Tolerance 1: this test is about the wiring; the gate's verdicts are tested elsewhere.
    env = trainer_env(
        loop_settings,
        tmp_path,
        AUTOGLM_TRAINER_MIN_EXAMPLES="6",
        AUTOGLM_TRAINER_EPOCHS="2",
        AUTOGLM_TRAINER_GATE_TOLERANCE="1.0",
    )
    manager = ServiceManager(loop_settings, env=env)
    manager.start(["trainer", "inference"])
    try:
        async with PipelineClient(loop_settings) as client:
            confident = [result_of(n, 0.97) for n in range(5)]
            unsure = result_of(5, 0.40)  # below the threshold: no pseudo-label ...
            for result in [*confident, unsure, *confident]:  # ... and a redelivered burst
                await client.publish(topics.RESULTS, result, key=result.request_id)
            # ... but a user says what its answer is (the remembered result gives the question).
            await asyncio.sleep(2.0)
            feedback = Feedback(
                request_id=new_request_id(),
                schema_version=SCHEMA_VERSION,
                target_request_id=unsure.request_id,
                correct_answers=[FACTS[5][2]],
            )
            await client.publish(topics.FEEDBACK, feedback, key=feedback.request_id)
            # An example nothing can be learnt from is refused, with the reason.
            bad = TrainingExample(
                request_id=new_request_id(), source_request_id="x", question="who?"
            )
            client.expect([bad.request_id])
            await client.publish(topics.TRAINING_EXAMPLES, bad, key=bad.request_id)
            letter = await client.reply(bad.request_id, 60.0)
            assert isinstance(letter, DeadLetter) and "no anchors" in letter.reason

            await wait_for(lambda: registry.serving_version() != parent, 240.0, "a promotion")
            version = registry.serving_version()
            meta = registry.get(version).meta
            assert meta["parent"] == parent
            assert meta["data"]["examples"] == {"pseudo_label": 5, "feedback": 1}
            assert meta["data"]["gate"]["promote"]
            store = ExampleStore(loop_settings.model_registry_dir / "trainer" / "examples.sqlite")
            assert store.count() == 6 and store.pending_count() == 0  # the burst counted once
            store.close()

            # The running inference service swapped to the promoted version.
            fresh = itertools.count()

            async def served_by() -> str:
                item = reasoning_input(next(fresh))  # a new question: no cached answer
                client.expect([item.request_id])
                await client.publish(topics.REASONING_INPUTS, item, key=item.request_id)
                reply = await client.reply(item.request_id, 60.0)
                assert isinstance(reply, Result)
                return reply.model_version

            assert await first_served_by(served_by, version, 60.0) is not None

            # `autoglm models rollback` reaches the running inference service within seconds.
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from autoglm.cli.main import main; main()",
                "models",
                "rollback",
                env={**os.environ, **settings_env(loop_settings)},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            _, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            assert registry.serving_version() == parent
            seconds = await first_served_by(served_by, parent, 30.0)
            assert seconds is not None and seconds < 10.0, seconds
    finally:
        manager.stop()


async def first_served_by(served_by, version: str, timeout_s: float) -> float | None:
    """Seconds until a fresh request is answered by ``version`` (None: not within timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await served_by() == version:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    return None


async def test_a_trainer_killed_mid_round_resumes_it_and_the_registry_stays_consistent(
    loop_settings, toy_graph, text_encoder, tmp_path
):
    parent = await serving_version(loop_settings, text_encoder)
    registry = ModelRegistry(loop_settings.model_registry_dir)
    epochs = 150
    env = trainer_env(
        loop_settings,
        tmp_path,
        AUTOGLM_TRAINER_MIN_EXAMPLES="4",
        AUTOGLM_TRAINER_EPOCHS=str(epochs),
        AUTOGLM_TRAINER_GATE_TOLERANCE="1.0",
    )
    state = loop_settings.model_registry_dir / "trainer" / "round-1.pt"
    manager = ServiceManager(loop_settings, env=env)
    manager.start(["trainer"])
    try:
        async with PipelineClient(loop_settings) as client:
            for n in range(4):
                result = result_of(n, 0.97)
                await client.publish(topics.RESULTS, result, key=result.request_id)
        await wait_for(state.is_file, 180.0, "the first epoch's checkpoint")
        manager.kill("trainer")  # SIGKILL in the middle of training
        saved_epoch = int(torch.load(state, weights_only=True)["epoch"])
        assert saved_epoch < epochs - 1, "killed too late to test resuming"

        # Consistent: the parent still serves, no half-written version is listed.
        assert registry.serving_version() == parent
        assert [v.version for v in registry.versions() if v.path is not None] == [parent]

        manager.start(["trainer"])
        await wait_for(lambda: registry.serving_version() != parent, 240.0, "the resumed round")
        meta = registry.get(registry.serving_version()).meta
        assert meta["parent"] == parent and meta["data"]["round"] == 1
        assert meta["history"]["epochs"] == list(range(1, epochs + 1))
        assert not state.exists()
        log = (manager.log_dir / "trainer.log").read_text(encoding="utf-8")
        assert "resuming round" in log
        # Resumed from the checkpoint the killed trainer left, not restarted from epoch 1.
        assert f'"from_epoch": {saved_epoch + 2}' in log
    finally:
        manager.stop()


async def test_a_round_that_keeps_failing_is_marked_failed_and_the_trainer_goes_on(
    loop_settings, tmp_path
):
    """Every attempt of the round fails (no validation question: the gate cannot judge). The
    trainer tries it ``trainer_round_attempts`` times with growing waits, finishes it as failed
    with the error in the store and the log, and keeps consuming: the next examples make a new
    round, instead of the old one being retried every minute forever."""
    registry = ModelRegistry(loop_settings.model_registry_dir)
    registry.set_serving(registry.register({"w": torch.ones(1)}, {}).version)
    empty = tmp_path / "empty_dev.txt"
    empty.write_text("", encoding="utf-8")
    env = trainer_env(
        loop_settings,
        tmp_path,
        AUTOGLM_TRAINER_VALIDATION_QA=str(empty),
        AUTOGLM_TRAINER_MIN_EXAMPLES="1",
        AUTOGLM_TRAINER_ROUND_ATTEMPTS="3",
        AUTOGLM_TRAINER_RETRY_INITIAL_S="0.2",
        AUTOGLM_TRAINER_RETRY_MAX_S="1",
        AUTOGLM_TRAINER_RETRY_JITTER_S="0.1",
    )
    path = loop_settings.model_registry_dir / "trainer" / "examples.sqlite"

    def rounds() -> list:
        if not path.is_file():
            return []
        store = ExampleStore(path)
        try:
            return store.rounds()
        finally:
            store.close()

    def example(n: int) -> TrainingExample:
        question, topic, answer = FACTS[n]
        return TrainingExample(
            request_id=new_request_id(),
            schema_version=SCHEMA_VERSION,
            source_request_id=new_request_id(),
            question=question,
            answer_keys=[answer],
            weight=1.0,
            hops=1,
            anchors=[LinkedEntity(mention=topic, key=topic, name=topic, score=1.0)],
        )

    manager = ServiceManager(loop_settings, env=env)
    manager.start(["trainer"])
    try:
        async with PipelineClient(loop_settings) as client:
            first = example(0)
            await client.publish(topics.TRAINING_EXAMPLES, first, key=first.request_id)
            await wait_for(lambda: [r.status for r in rounds()] == ["failed"], 120.0, "a failure")
            (failed,) = rounds()
            assert failed.report["attempts"] == 3
            assert "no validation questions" in failed.report["error"]
            second = example(1)
            await client.publish(topics.TRAINING_EXAMPLES, second, key=second.request_id)
            await wait_for(lambda: len(rounds()) == 2, 120.0, "the next round")
        assert all(p.running for p in manager.status() if p.name == "trainer")
        log = (manager.log_dir / "trainer.log").read_text(encoding="utf-8")
        assert log.count("incremental round failed; retrying") >= 2
        assert "incremental round failed for good" in log
    finally:
        manager.stop()
