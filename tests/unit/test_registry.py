"""The model registry: versions, serving pointer, rollback, and clear errors for bad checkpoints."""

from __future__ import annotations

import pytest
import torch

from autoglm.errors import ErrorCategory
from autoglm.registry import BUILTIN_VERSION, WEIGHTS_FILE, ModelLoadError, ModelRegistry


def test_empty_registry_serves_the_builtin(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    assert registry.serving_version() == BUILTIN_VERSION
    assert [v.version for v in registry.versions()] == [BUILTIN_VERSION]


def test_register_load_promote_rollback(tmp_path):
    registry = ModelRegistry(tmp_path)
    weights = {"layer.weight": torch.arange(6.0).view(2, 3)}
    first = registry.register(weights, {"metrics": {"hits@1": 0.9}})
    second = registry.register(weights, {"metrics": {"hits@1": 0.95}}, parent=first.version)
    assert first.version.startswith("v0001-") and second.version.startswith("v0002-")
    assert second.parent == first.version and second.meta["metrics"]["hits@1"] == 0.95
    assert torch.equal(
        registry.load_weights(first.version)["layer.weight"], weights["layer.weight"]
    )
    registry.set_serving(first.version)
    registry.set_serving(second.version)
    assert registry.serving_version() == second.version
    assert registry.rollback() == first.version
    assert registry.serving_version() == first.version
    assert registry.rollback() == BUILTIN_VERSION
    with pytest.raises(KeyError, match="nothing to roll back"):
        registry.rollback()
    assert not list(tmp_path.glob("versions/.staging-*"))


def test_pointer_refuses_unknown_versions(tmp_path):
    with pytest.raises(KeyError, match="not in the registry"):
        ModelRegistry(tmp_path).set_serving("v9999")


def test_missing_and_corrupt_checkpoints_are_clear_errors(tmp_path):
    registry = ModelRegistry(tmp_path)
    version = registry.register({"w": torch.ones(2)}, {}).version
    weights = registry.get(version).path / WEIGHTS_FILE
    weights.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match="corrupt") as caught:
        registry.load_weights(version)
    assert caught.value.category is ErrorCategory.FATAL
    weights.unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        registry.load_weights(version)
    with pytest.raises(ModelLoadError, match="not in the registry"):
        registry.load_weights("v0042-nope")
