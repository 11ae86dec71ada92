"""Retries back off exponentially with jitter and a cap, and stop; a trainer round that keeps
failing is finished as failed and reported instead of being retried forever."""

from __future__ import annotations

import logging
import random

import pytest
import torch

from autoglm.contracts import ExampleSource, LinkedEntity, ModelUpdate, TrainingExample
from autoglm.registry import ModelRegistry
from autoglm.retries import RetryPolicy
from autoglm.settings import Settings
from autoglm.training.example_store import ExampleStore
from autoglm.training.feedback_loop import FeedbackLoop, LoopConfig, RoundResult
from services.trainer.app import TrainerSettings

log = logging.getLogger("test.retries")


def test_waits_grow_exponentially_with_jitter_up_to_the_cap():
    random.seed(1)
    policy = RetryPolicy(initial_s=1.0, max_s=30.0, jitter_s=0.5)
    waits = list(policy.delays(8))
    for attempt, wait in enumerate(waits[:5], start=1):
        assert 2 ** (attempt - 1) <= wait <= 2 ** (attempt - 1) + 0.5
    assert waits[5:] == [30.0, 30.0, 30.0]  # 32 and more: capped
    assert len({round(w % 1, 6) for w in waits[:5]}) > 1, "the jitter is random"


def test_inconsistent_policies_are_refused():
    with pytest.raises(ValueError):
        RetryPolicy(initial_s=10.0, max_s=1.0)
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


async def test_attempts_are_bounded_and_the_last_error_raised(caplog):
    calls = 0
    policy = RetryPolicy(initial_s=0.0, max_s=0.0, jitter_s=0.0, attempts=3)
    with caplog.at_level(logging.WARNING, "test.retries"), pytest.raises(KeyError, match="3"):
        async for attempt in policy.retrying(log, "lookup"):
            with attempt:
                calls += 1
                raise KeyError(calls)
    assert calls == 3
    retries = [r for r in caplog.records if r.getMessage() == "lookup failed; retrying"]
    assert [r.attempt for r in retries] == [1, 2]  # type: ignore[attr-defined]
    calls = 0
    async for attempt in policy.retrying(log, "lookup", done=2):  # 2 made before a restart
        with attempt, pytest.raises(KeyError):
            calls += 1
            raise KeyError(calls)
    assert calls == 1


def test_the_trainer_settings_make_the_policy():
    settings = TrainerSettings(
        trainer_round_attempts=4, trainer_retry_initial_s=2.0, trainer_retry_max_s=8.0
    )
    policy = settings.loop_config().round_retry
    assert (policy.attempts, policy.initial_s, policy.max_s) == (4, 2.0, 8.0)
    assert settings.retry_policy(None).attempts is None


# --- a round that keeps failing -------------------------------------------------------------


def example(n: int) -> TrainingExample:
    return TrainingExample(
        request_id=f"e{n}",
        source_request_id=f"r{n}",
        source=ExampleSource.EXAMPLE_SOURCE_PSEUDO_LABEL,
        question="who directed [Jaws]",
        answer_keys=["Steven Spielberg"],
        weight=0.95,
        hops=1,
        anchors=[LinkedEntity(mention="Jaws", key="Jaws", name="Jaws", score=1.0)],
    )


def failing_loop(tmp_path, failures: int, attempts: int = 3) -> tuple[FeedbackLoop, list[int]]:
    """A loop whose rounds fail ``failures`` times, then succeed; a serving version exists."""
    registry = ModelRegistry(tmp_path / "models")
    parent = registry.register({"w": torch.ones(1)}, {}).version
    registry.set_serving(parent)
    config = LoopConfig(
        min_examples=2,
        round_retry=RetryPolicy(initial_s=0.01, max_s=0.02, jitter_s=0.0, attempts=attempts),
    )

    async def publish(update: ModelUpdate) -> None:
        raise AssertionError("nothing is published")

    loop = FeedbackLoop(
        Settings(model_registry_dir=tmp_path / "models"),
        config,
        ExampleStore(tmp_path / "trainer" / "examples.sqlite"),
        None,  # type: ignore[arg-type]  # run_round is replaced below
        publish,
        tmp_path / "trainer",
    )
    calls: list[int] = []

    async def run_round(round_) -> RoundResult:
        calls.append(round_.id)
        if len(calls) <= failures:
            raise RuntimeError(f"neo4j unavailable ({len(calls)})")
        loop.store.finish_round(round_.id, "promoted", {"ok": True})
        return RoundResult(round_.id, "promoted", "v2", parent, {})

    loop.run_round = run_round  # type: ignore[method-assign]
    return loop, calls


async def test_a_round_that_keeps_failing_is_marked_failed_and_reported(tmp_path, caplog):
    loop, calls = failing_loop(tmp_path, failures=99)
    loop.store.add([example(1), example(2)])
    with caplog.at_level(logging.WARNING):
        result = await loop.maybe_train()
    assert result is not None and result.status == "failed" and len(calls) == 3
    (round_,) = loop.store.rounds()
    assert round_.status == "failed" and round_.report["attempts"] == 3
    assert round_.report["error"] == "RuntimeError: neo4j unavailable (3)"
    assert loop.store.pending_count() == 0  # set aside with the round, not retried forever
    assert loop.store.unfinished_round() is None
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("incremental round failed; retrying") == 2
    assert any("failed for good" in m for m in messages)
    assert await loop.maybe_train() is None  # nothing pending: the loop goes on idle
    loop.store.add([example(3), example(4)])  # new examples make a new round
    assert (await loop.maybe_train()).status == "failed"  # type: ignore[union-attr]
    assert len(calls) == 6


async def test_a_round_that_fails_then_passes_goes_on(tmp_path):
    loop, calls = failing_loop(tmp_path, failures=2)
    loop.store.add([example(1), example(2)])
    result = await loop.maybe_train()
    assert result is not None and result.status == "promoted" and len(calls) == 3


async def test_attempts_survive_a_restart(tmp_path):
    """A trainer killed during every attempt never sees its round fail: the attempts counted
    in the store stop it all the same."""
    loop, calls = failing_loop(tmp_path, failures=0)
    loop.store.add([example(1), example(2)])
    round_ = loop.store.start_round("parent", ["e1", "e2"])
    for _ in range(3):
        loop.store.note_attempt(round_.id)  # three starts, each killed
    loop.store.close()
    restarted, calls = failing_loop(tmp_path, failures=0)  # the same store and registry
    result = await restarted.maybe_train()
    assert result is not None and result.status == "failed" and calls == []
    assert "spent before the restart" in restarted.store.rounds()[0].report["error"]
