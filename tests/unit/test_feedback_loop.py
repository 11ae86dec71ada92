"""The trainer's loop without servers: example store, gate, incremental rounds on a toy graph
(in-memory retrieval, a registry in a temporary folder, model updates collected in a list; the
integration test runs the same loop in the trainer service on real Kafka and Neo4j)."""

from __future__ import annotations

import torch

from autoglm.contracts import ExampleSource, LinkedEntity, ModelAction, ModelUpdate, TrainingExample
from autoglm.graph.retrieval import RetrievalCaps, SubgraphRetriever
from autoglm.models.fusion_model import FusionModule, config_meta, weights_of
from autoglm.models.reasoner import ReasonerConfig
from autoglm.models.serving import load_model
from autoglm.nlp.parsing import strip_brackets
from autoglm.registry import ModelRegistry
from autoglm.settings import Settings
from autoglm.training.example_store import ExampleStore, effective_examples
from autoglm.training.feedback_loop import FeedbackLoop, LoopConfig, validation_examples
from autoglm.training.incremental import IncrementalConfig, gate
from autoglm.training.loop import (
    QASample,
    ReasonerTraining,
    TrainConfig,
    evaluate,
    seed_everything,
)
from autoglm.training.replay import ReplayBuffer
from tests.retrieval_toys import TOY_KB, InMemoryGraph

# (question, topic, answer): the toy KB's facts as questions.
FACTS = [
    ("who directed [Jaws]", "Jaws", "Steven Spielberg"),
    ("who directed [Jurassic Park]", "Jurassic Park", "Steven Spielberg"),
    ("who directed [Sorcerer]", "Sorcerer", "William Friedkin"),
    ("who directed [The French Connection]", "The French Connection", "William Friedkin"),
    ("when was [Jaws] released", "Jaws", "1975"),
    ("when was [Jurassic Park] released", "Jurassic Park", "1993"),
    ("when was [Sorcerer] released", "Sorcerer", "1977"),
    ("when was [The French Connection] released", "The French Connection", "1971"),
]


def example(n: int, question: str, topic: str, answers: list[str], **kw) -> TrainingExample:
    return TrainingExample(
        request_id=f"r{n}:{kw.get('kind', 'pseudo')}",
        source_request_id=f"r{n}",
        source=kw.get("source", ExampleSource.EXAMPLE_SOURCE_PSEUDO_LABEL),
        question=question,
        answer_keys=answers,
        negative_keys=kw.get("negatives", []),
        weight=kw.get("weight", 0.95),
        hops=1,
        anchors=[LinkedEntity(mention=topic, key=topic, name=topic, score=1.0)],
    )


# --- store and gate ----------------------------------------------------------------------------


def test_store_is_idempotent_and_rounds_mark_examples_used(tmp_path):
    store = ExampleStore(tmp_path / "examples.sqlite")
    batch = [example(n, *FACTS[n][:2], [FACTS[n][2]]) for n in range(3)]
    assert store.add(batch, now=100.0) == 3
    assert store.add(batch, now=200.0) == 0  # a redelivery changes nothing
    assert store.pending_count() == 3 and store.oldest_pending_age(now=160.0) == 60.0
    round_ = store.start_round("v1", [e.request_id for e in store.pending(2)])
    assert store.unfinished_round() == round_
    store.set_candidate(round_.id, "v2")
    store.finish_round(round_.id, "promoted", {"x": 1})
    assert store.unfinished_round() is None and store.pending_count() == 1
    (done,) = store.rounds()
    assert done.status == "promoted" and done.candidate_version == "v2" and done.report == {"x": 1}
    store.close()
    reopened = ExampleStore(tmp_path / "examples.sqlite")  # what a restarted trainer sees
    assert reopened.pending_count() == 1 and reopened.count() == 3


def test_feedback_overrides_the_pseudo_label_of_the_same_request():
    pseudo = example(1, *FACTS[0][:2], ["Roy Scheider"])
    gold = example(
        1,
        *FACTS[0][:2],
        ["Steven Spielberg"],
        kind="fb",
        source=ExampleSource.EXAMPLE_SOURCE_FEEDBACK,
    )
    other = example(2, *FACTS[1][:2], ["Steven Spielberg"])
    assert effective_examples([gold, pseudo, other]) == [gold, other]
    assert effective_examples([pseudo, gold, other]) == [gold, other]


def test_gate_promotes_within_tolerance_only():
    assert gate(0.90, 0.90, 0.005).promote
    assert gate(0.896, 0.90, 0.005).promote
    assert not gate(0.89, 0.90, 0.005).promote
    assert gate(0.95, 0.90, 0.0).promote


def test_replay_buffer_tag_survives_saving(tmp_path):
    buffer: ReplayBuffer[bytes] = ReplayBuffer(10, tag=3)
    buffer.extend([b"a", b"b"])
    buffer.save(tmp_path / "r.pkl")
    assert ReplayBuffer.load(tmp_path / "r.pkl", 10).tag == 3


# --- rounds ------------------------------------------------------------------------------------


async def fact_samples() -> list[QASample]:
    """The toy facts as training samples, subgraphs from the in-memory toy graph."""
    retriever = SubgraphRetriever(InMemoryGraph(TOY_KB))
    caps = RetrievalCaps(1, 2000, 8000)
    return [
        QASample(strip_brackets(q), await retriever.retrieve([t], caps), frozenset({a}), 1)
        for q, t, a in FACTS
    ]


async def _serving_registry(tmp_path, text_encoder) -> tuple[Settings, str]:
    """A registry whose serving version learnt the toy facts."""
    samples = await fact_samples()
    seed_everything(0)
    module = FusionModule(text_encoder, ReasonerConfig(hops=1, dropout=0.0))
    ReasonerTraining(
        module, TrainConfig(epochs=60, batch_size=8, learning_rate=3e-3), torch.device("cpu")
    ).fit(samples, samples, progress=False)
    registry = ModelRegistry(tmp_path / "models")
    version = registry.register(
        weights_of(module, include_encoder=False),
        {"temperature": 1.0, "reasoner_config": config_meta(module.reasoner.config)},
    ).version
    registry.set_serving(version)
    settings = Settings(
        model_registry_dir=tmp_path / "models", device="cpu", encoding_cache_enabled=False
    )
    return settings, version


def _loop(tmp_path, settings, config: LoopConfig) -> tuple[FeedbackLoop, list[ModelUpdate]]:
    updates: list[ModelUpdate] = []

    async def publish(update: ModelUpdate) -> None:
        updates.append(update)

    store = ExampleStore(tmp_path / "trainer" / "examples.sqlite")
    retriever = SubgraphRetriever(InMemoryGraph(TOY_KB))
    loop = FeedbackLoop(settings, config, store, retriever, publish, tmp_path / "trainer")
    return loop, updates


def _toy_config(tmp_path, min_examples: int, **incremental) -> LoopConfig:
    """A loop over the toy facts: rounds of ``min_examples``, gated on all eight facts."""
    return LoopConfig(
        min_examples=min_examples,
        validation_files=_validation_file(tmp_path),
        validation_fraction=1.0,
        incremental=IncrementalConfig(**incremental),
    )


def _validation_file(tmp_path) -> tuple:
    path = tmp_path / "1hop_dev.txt"
    path.write_text("".join(f"{q}\t{a}\n" for q, _, a in FACTS), encoding="utf-8")
    return (path,)


async def test_a_round_trains_gates_registers_with_lineage_and_promotes(tmp_path, text_encoder):
    settings, parent = await _serving_registry(tmp_path, text_encoder)
    config = _toy_config(
        tmp_path, 4, epochs=2, batch_size=4, learning_rate=1e-3, encoder_learning_rate=1e-5
    )
    loop, updates = _loop(tmp_path, settings, config)
    new = [example(n, *f[:2], [f[2]]) for n, f in enumerate(FACTS[:4])]
    loop.store.add(new[:3])
    assert await loop.maybe_train() is None  # 3 < N: not due yet
    loop.store.add(new[3:])
    result = await loop.maybe_train()
    assert result is not None and result.status == "promoted" and result.parent == parent

    registry = ModelRegistry(settings.model_registry_dir)
    assert registry.serving_version() == result.version
    meta = registry.get(result.version).meta
    assert meta["parent"] == parent
    assert meta["data"]["examples"] == {"pseudo_label": 4}
    assert meta["data"]["examples_seen"] == 4 and meta["data"]["replayed_examples"] == 0
    assert meta["data"]["gate"]["promote"] and meta["data"]["serving_metrics"]["hits@1"] == 1.0
    assert meta["text_encoder"] == "fine-tuned"  # the encoder moved, slower than the head
    groups = meta["hyper_parameters"]["incremental"]
    assert groups["encoder_learning_rate"] < groups["learning_rate"]
    assert [(u.action, u.version, u.parent_version) for u in updates] == [
        (ModelAction.MODEL_ACTION_PROMOTE, result.version, parent)
    ]
    assert loop.store.pending_count() == 0
    assert ReplayBuffer.load(loop.replay_path, 10).seen == 4

    # The next round replays earlier examples beside the new ones.
    loop.store.add([example(10 + n, *f[:2], [f[2]]) for n, f in enumerate(FACTS[4:])])
    second = await loop.maybe_train()
    assert second is not None and second.parent == result.version
    assert registry.get(second.version).meta["data"]["replayed_examples"] == 4


async def test_the_gate_holds_against_a_burst_of_wrong_feedback(tmp_path, text_encoder):
    """Feedback that teaches wrong answers (every year question answered with the director)
    yields a worse candidate: it is registered as rejected, serving stays, nothing published."""
    settings, parent = await _serving_registry(tmp_path, text_encoder)
    config = _toy_config(
        tmp_path,
        1,
        epochs=40,
        batch_size=8,
        learning_rate=3e-3,
        encoder_learning_rate=0.0,
        distill_weight=0.0,
        gate_tolerance=0.005,
    )
    loop, updates = _loop(tmp_path, settings, config)
    wrong = {
        "Jaws": "Steven Spielberg",
        "Jurassic Park": "Steven Spielberg",
        "Sorcerer": "William Friedkin",
        "The French Connection": "William Friedkin",
    }
    loop.store.add(
        example(
            n, q, t, [wrong[t]], kind="fb", weight=5.0, source=ExampleSource.EXAMPLE_SOURCE_FEEDBACK
        )
        for n, (q, t, _) in enumerate(FACTS[4:])
    )
    result = await loop.maybe_train()
    assert result is not None and result.status == "rejected"
    registry = ModelRegistry(settings.model_registry_dir)
    assert registry.serving_version() == parent and updates == []
    gate_meta = registry.get(result.version).meta["data"]["gate"]
    assert not gate_meta["promote"] and gate_meta["candidate"] < gate_meta["serving"] - 0.005
    assert loop.store.rounds()[0].status == "rejected"


async def test_twenty_percent_flipped_feedback_never_gets_a_worse_model_promoted(
    tmp_path, text_encoder
):
    """Ten examples, two of them user feedback with a wrong answer (weighted 5, like all
    feedback): whatever the gate decides, the model serving afterwards scores, on the slice,
    no worse than the one before beyond the tolerance (measured here, not read from the meta)."""
    settings, parent = await _serving_registry(tmp_path, text_encoder)
    tolerance = 0.005
    config = _toy_config(
        tmp_path,
        10,
        epochs=30,
        batch_size=4,
        learning_rate=3e-3,
        encoder_learning_rate=0.0,
        gate_tolerance=tolerance,
    )
    loop, _ = _loop(tmp_path, settings, config)
    good = [example(n, *f[:2], [f[2]]) for n, f in enumerate(FACTS)]
    flipped = [
        example(
            100 + n,
            q,
            t,
            [wrong],
            kind="fb",
            weight=5.0,
            source=ExampleSource.EXAMPLE_SOURCE_FEEDBACK,
        )
        for n, (q, t, wrong) in enumerate(
            [(FACTS[4][0], "Jaws", "Steven Spielberg"), (FACTS[6][0], "Sorcerer", "1975")]
        )
    ]
    loop.store.add([*good, *flipped])
    validation = await loop.validation()

    def score(version: str) -> float:
        model = load_model(settings, version)
        return evaluate(model.module, validation, torch.device("cpu"))["hits@1"]

    before = score(parent)
    result = await loop.maybe_train()
    assert result is not None
    after = score(ModelRegistry(settings.model_registry_dir).serving_version())
    assert after >= before - tolerance
    if result.status == "rejected":  # then the candidate was measurably worse
        assert score(result.version) < before - tolerance


async def test_a_killed_round_resumes_without_training_twice(tmp_path, text_encoder):
    """A trainer killed after registering its candidate but before finishing the round: on
    restart the round is finished from the registered version (promoted, published), and the
    examples are not replayed twice."""
    settings, parent = await _serving_registry(tmp_path, text_encoder)
    config = _toy_config(tmp_path, 2, epochs=1, batch_size=4, encoder_learning_rate=0.0)
    loop, updates = _loop(tmp_path, settings, config)
    loop.store.add([example(n, *f[:2], [f[2]]) for n, f in enumerate(FACTS[:2])])
    round_ = loop.store.start_round(parent, [e.request_id for e in loop.store.pending(10)])
    examples = effective_examples(loop.store.examples(list(round_.example_ids)))
    version = await loop._train(round_, examples)  # ... and the process dies here
    registry = ModelRegistry(settings.model_registry_dir)
    assert registry.serving_version() == parent  # consistent: candidate stored, not serving

    restarted, updates = _loop(tmp_path, settings, config)
    result = await restarted.maybe_train()
    assert result is not None and result.round_id == round_.id and result.version == version
    assert result.status == "promoted" and registry.serving_version() == version
    assert len(registry.versions()) == 2 + 1  # built-in, parent, one candidate: not retrained
    assert [u.version for u in updates] == [version]
    assert ReplayBuffer.load(restarted.replay_path, 10).seen == 2
    assert await restarted.maybe_train() is None  # nothing pending, nothing unfinished


async def test_serving_model_quality_is_evaluated_on_the_same_slice(tmp_path, text_encoder):
    loop, _ = _loop(
        tmp_path,
        Settings(),
        LoopConfig(validation_files=_validation_file(tmp_path), validation_fraction=1.0),
    )
    validation = await loop.validation()
    assert len(validation) == len(FACTS)
    assert all(s.answer_keys & {n.key for n in s.subgraph.nodes} for s in validation)
    module = FusionModule(text_encoder, ReasonerConfig(hops=1, dropout=0.0))
    assert set(evaluate(module, validation, torch.device("cpu"))) == {"hits@1", "hits@1/1hop"}


async def test_replay_starts_from_the_labelled_data_and_the_gate_slice_is_spread(tmp_path):
    path = _validation_file(tmp_path)[0]
    (seed,) = [tmp_path / "labelled_1hop.txt"]
    seed.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    config = LoopConfig(
        seed_files=(seed,), validation_files=(path,), validation_fraction=1.0, validation_limit=3
    )
    loop, _ = _loop(tmp_path, Settings(), config)
    replay = loop._replay()
    assert replay.seen == len(FACTS)
    first = TrainingExample.FromString(replay.items[0])
    assert first.source == ExampleSource.EXAMPLE_SOURCE_LABELLED
    assert first.anchors[0].key == "Jaws" and list(first.answer_keys) == ["Steven Spielberg"]
    samples = [s for s in await loop.samples([first]) if s]
    assert samples and samples[0].answer_keys == {"Steven Spielberg"}
    # A hash-drawn slice, not the file's first questions (files are grouped by question type).
    drawn = [e.question for e in validation_examples(config)]
    assert len(drawn) == 3 and drawn != [q for q, _, _ in FACTS[:3]]
