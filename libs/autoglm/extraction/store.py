"""Extractor versions: registered, served and loaded like the reasoning model's.

The registry is ``<model_registry_dir>/extractor`` (its own serving pointer, so the reasoning
model and the extractor are versioned independently). A version holds the trained heads only
(``model.safetensors``) and in ``meta.json`` their configuration, the relation bias, the text
encoder they read, their training data and figures. ``samples/extractor`` keeps such a version
in the repository: it serves whenever the registry has none, so a fresh installation extracts
with a trained model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from autoglm.extraction.extractor import NeuralExtractor
from autoglm.extraction.features import Featurizer
from autoglm.extraction.model import SpanRelationExtractor
from autoglm.extraction.schema import Schema, load_schema
from autoglm.registry import BUILTIN_VERSION, WEIGHTS_FILE, ModelLoadError, ModelRegistry
from autoglm.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

EXTRACTOR_KIND = "extractor"
BUNDLED_EXTRACTOR = PROJECT_ROOT / "samples" / "extractor"


def extractor_registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(Path(settings.model_registry_dir) / "extractor")


def weights_of(model: SpanRelationExtractor) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def write_bundle(directory: Path, model: SpanRelationExtractor, meta: dict[str, Any]) -> None:
    """A version as files (what ``samples/extractor`` holds)."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file(weights_of(model), str(directory / WEIGHTS_FILE))
    full = {**meta, "kind": EXTRACTOR_KIND, "config": model.config}
    (directory / "meta.json").write_text(json.dumps(full, indent=2, default=str) + "\n")


def register(
    settings: Settings, model: SpanRelationExtractor, meta: dict[str, Any], *, serve: bool = True
) -> str:
    registry = extractor_registry(settings)
    version = registry.register(
        weights_of(model), {**meta, "config": model.config}, kind=EXTRACTOR_KIND
    )
    if serve:
        registry.set_serving(version.version)
    return version.version


def _serving(settings: Settings) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    registry = extractor_registry(settings)
    version = registry.serving_version()
    if version != BUILTIN_VERSION:
        entry = registry.get(version)
        return version, dict(entry.meta), registry.load_weights(version)
    meta_file = BUNDLED_EXTRACTOR / "meta.json"
    try:
        meta = json.loads(meta_file.read_text())
        weights = load_file(str(BUNDLED_EXTRACTOR / WEIGHTS_FILE))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"no extractor registered under {registry.root} and the bundled one in "
            f"{BUNDLED_EXTRACTOR} cannot be read: {exc}",
            error_type="model_missing",
        ) from exc
    return str(meta.get("version", "bundled")), meta, weights


def load_extractor(settings: Settings, schema: Schema | None = None) -> NeuralExtractor:
    """The serving extractor (registry, else bundled) with ``schema`` or the schema setting."""
    from autoglm.models.text_encoder import TextEncoder

    version, meta, weights = _serving(settings)
    config = meta.get("config", {})
    model = SpanRelationExtractor(**config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ModelLoadError(f"extractor {version} does not load: {exc}") from exc
    encoder = TextEncoder(
        settings.text_encoder_path or None, max_length=int(meta.get("max_tokens", 192))
    )
    if encoder.hidden_size != config.get("in_dim", encoder.hidden_size):
        raise ModelLoadError(
            f"extractor {version} reads a {config.get('in_dim')}-wide encoder; "
            f"{settings.text_encoder_path or 'MiniLM'} is {encoder.hidden_size}-wide"
        )
    featurizer = Featurizer(encoder.eval(), max_tokens=int(meta.get("max_tokens", 192)))
    schema = schema or load_schema(settings.extraction_schema or None)
    return NeuralExtractor(
        model, featurizer, schema, version=version, bias=float(meta.get("bias", 0.0))
    )
