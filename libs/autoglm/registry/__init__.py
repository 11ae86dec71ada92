"""Model registry: versioned checkpoints and the pointer to the serving version.

Layout under ``Settings.model_registry_dir``::

    serving.json                       {"version": ..., "history": [earlier serving versions]}
    versions/<version>/meta.json       kind, parent, data seen, hyper-parameters, metrics, created
    versions/<version>/model.safetensors

A version directory is written under a temporary name and renamed into place, and the pointer
is replaced atomically, so a reader (an inference replica loading a model) never sees half a
version or half a pointer. An empty registry serves the built-in zero-shot model, so a fresh
installation answers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from autoglm.errors import FatalError

BUILTIN_VERSION = "zero-shot-minilm"
WEIGHTS_FILE = "model.safetensors"


class ModelLoadError(FatalError):
    """A registered version cannot be loaded (missing, corrupt or incompatible)."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    kind: str
    path: Path | None
    meta: dict[str, Any]

    @property
    def parent(self) -> str | None:
        parent = self.meta.get("parent")
        return str(parent) if parent else None


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def _pointer(self) -> Path:
        return self.root / "serving.json"

    @property
    def _versions_dir(self) -> Path:
        return self.root / "versions"

    # --- reading ------------------------------------------------------------------------------

    def versions(self) -> list[ModelVersion]:
        found = [ModelVersion(BUILTIN_VERSION, "zero-shot", None, {"builtin": True})]
        if self._versions_dir.is_dir():
            for meta_file in sorted(self._versions_dir.glob("*/meta.json")):
                meta = json.loads(meta_file.read_text())
                found.append(
                    ModelVersion(
                        meta_file.parent.name, meta.get("kind", "fusion"), meta_file.parent, meta
                    )
                )
        return found

    def get(self, version: str) -> ModelVersion:
        for candidate in self.versions():
            if candidate.version == version:
                return candidate
        raise KeyError(f"model version {version!r} is not in the registry at {self.root}")

    def _pointer_state(self) -> dict[str, Any]:
        if self._pointer.is_file():
            state: dict[str, Any] = json.loads(self._pointer.read_text())
            return state
        return {"version": BUILTIN_VERSION, "history": []}

    def serving_version(self) -> str:
        return str(self._pointer_state()["version"])

    def load_weights(self, version: str) -> dict[str, torch.Tensor]:
        """The tensors of a version; a missing or corrupt file is a clear ``ModelLoadError``."""
        try:
            entry = self.get(version)
        except KeyError as exc:
            raise ModelLoadError(str(exc), error_type="model_missing") from exc
        if entry.path is None:
            raise ModelLoadError(f"{version} is built in and has no weights", error_type="builtin")
        weights = entry.path / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelLoadError(f"{version}: {weights} is missing", error_type="model_missing")
        try:
            return load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{version}: {weights} is corrupt: {exc}", error_type="model_corrupt"
            ) from exc

    # --- writing ------------------------------------------------------------------------------

    def register(
        self,
        weights: dict[str, torch.Tensor],
        meta: dict[str, Any],
        *,
        kind: str = "fusion",
        parent: str | None = None,
    ) -> ModelVersion:
        """Store a new version (not yet serving); returns it."""
        self._versions_dir.mkdir(parents=True, exist_ok=True)
        number = 1 + sum(1 for v in self.versions() if v.path is not None)
        version = f"v{number:04d}-{time.strftime('%Y%m%d%H%M%S')}"
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self._versions_dir))
        try:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in weights.items()},
                str(staging / WEIGHTS_FILE),
            )
            full_meta = {
                **meta,
                "kind": kind,
                "parent": parent,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (staging / "meta.json").write_text(json.dumps(full_meta, indent=2, default=str))
            os.replace(staging, self._versions_dir / version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.get(version)

    def import_version(self, source: Path) -> ModelVersion:
        """Copy a version directory (``meta.json`` + weights, e.g. the checkpoint bundled with
        the repository) into the registry under its own name; a no-op when it is there."""
        meta_file = source / "meta.json"
        if not meta_file.is_file() or not (source / WEIGHTS_FILE).is_file():
            raise ModelLoadError(
                f"{source} is not a model version (needs meta.json and {WEIGHTS_FILE})",
                error_type="model_missing",
            )
        json.loads(meta_file.read_text())  # refuse a torn meta.json before copying
        target = self._versions_dir / source.name
        if not target.is_dir():
            self._versions_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self._versions_dir))
            try:
                for name in ("meta.json", WEIGHTS_FILE):
                    shutil.copyfile(source / name, staging / name)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return self.get(source.name)

    def set_serving(self, version: str) -> None:
        """Point serving at ``version``; the previous one is remembered for ``rollback``."""
        self.get(version)  # refuse to point at nothing
        state = self._pointer_state()
        if state["version"] == version:
            return
        history = [*state.get("history", []), state["version"]]
        self._write_pointer({"version": version, "history": history})

    def rollback(self) -> str:
        """Serve the previously serving version again; returns it."""
        state = self._pointer_state()
        history = list(state.get("history", []))
        if not history:
            raise KeyError("nothing to roll back to: no earlier serving version")
        previous = history.pop()
        self._write_pointer({"version": previous, "history": history})
        return str(previous)

    def _write_pointer(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Atomic replace: a reader sees the old pointer or the new one, never half a file.
        tmp = self._pointer.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._pointer)
