"""Training loop end to end on a toy graph: learn, resume, register, serve."""

from __future__ import annotations

import pytest
import torch

from autoglm.contracts import ParsedQuestion, Question, ReasoningInput, ResultStatus
from autoglm.models.fusion_model import (
    FusionAnswerModel,
    FusionModule,
    config_meta,
    load_weights,
    weights_of,
)
from autoglm.models.reasoner import ReasonerConfig
from autoglm.models.serving import load_model
from autoglm.registry import ModelLoadError, ModelRegistry
from autoglm.settings import Settings
from autoglm.training.loop import (
    QASample,
    ReasonerTraining,
    TrainConfig,
    calibrate_temperature,
    plot_history,
    seed_everything,
)
from tests.unit.test_reasoner import subgraph

SAMPLES = [
    QASample("who directed Jaws", subgraph("Jaws"), frozenset({"Steven Spielberg"}), 1),
    QASample("when was Jurassic Park released", subgraph("Jurassic Park"), frozenset({"1993"}), 1),
    QASample("who acted in Jaws", subgraph("Jaws"), frozenset({"Roy Scheider"}), 1),
    QASample(
        "who directed the movies starring Sam Neill",
        subgraph("Sam Neill"),
        frozenset({"Steven Spielberg"}),
        2,
    ),
]


def test_train_resume_register_and_serve(text_encoder, tmp_path):
    seed_everything(0)
    config = TrainConfig(epochs=80, batch_size=4, learning_rate=3e-3, seed=0)
    module = FusionModule(text_encoder, ReasonerConfig(hops=2, dropout=0.0))
    state = tmp_path / "state.pt"
    training = ReasonerTraining(module, config, torch.device("cpu"), state_path=state)
    history = training.fit(SAMPLES, SAMPLES, progress=False)
    assert history.validation[-1]["hits@1"] == 1.0
    assert history.validation[-1]["hits@1/2hop"] == 1.0
    assert history.train_loss[-1] < history.train_loss[0]
    plot_history(history, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000

    # An interrupted run resumes where it stopped, with the same history.
    resumed = ReasonerTraining(
        FusionModule(text_encoder, ReasonerConfig(hops=2, dropout=0.0)),
        config,
        torch.device("cpu"),
        state_path=state,
    )
    assert resumed.resume() and resumed.start_epoch == config.epochs
    assert resumed.history.train_loss == history.train_loss

    temperature = calibrate_temperature(training, SAMPLES)
    registry = ModelRegistry(tmp_path / "models")
    version = registry.register(
        weights_of(module, include_encoder=False),
        {"temperature": temperature, "reasoner_config": config_meta(module.reasoner.config)},
    ).version
    served = FusionModule(text_encoder, ReasonerConfig(hops=2, dropout=0.0))
    load_weights(served, registry.load_weights(version))
    direct = FusionAnswerModel(version, served, temperature)
    settings = Settings(model_registry_dir=tmp_path / "models", device="cpu")
    model = load_model(settings, version)
    assert isinstance(model, FusionAnswerModel) and model.version == version
    item = ReasoningInput(
        request_id="r",
        top_k=2,
        status=ResultStatus.RESULT_STATUS_OK,
        question=ParsedQuestion(
            normalized_text="who directed Jaws", question=Question(text="who directed Jaws")
        ),
        subgraph=subgraph("Jaws"),
    )
    (prediction,) = model.predict([item])
    assert prediction.answers[0].name == "Steven Spielberg"
    assert prediction.reasoning_path[-1].relation == "directed_by"
    assert prediction.reasoning_path[0].source_name == "Jaws"
    assert 0.0 < prediction.confidence <= 1.0
    assert direct.predict([item])[0].answers[0].name == "Steven Spielberg"

    # A corrupt checkpoint is a clear, fatal load error, not a crash deep in torch.
    (registry.get(version).path / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_model(settings, version)
    with pytest.raises(ModelLoadError, match="not in the registry"):
        load_model(settings, "v0099-missing")
