"""Model registry: versioned checkpoints and the pointer to the serving version.

Layout under ``Settings.model_registry_dir``::

    serving.json                 {"version": "<serving version>"}
    versions/<version>/meta.json parent, data seen, metrics, created at, kind
    versions/<version>/*.safetensors

An empty registry serves the built-in zero-shot model, so a fresh installation answers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUILTIN_VERSION = "zero-shot-minilm"


@dataclass(frozen=True)
class ModelVersion:
    version: str
    kind: str
    path: Path | None
    meta: dict[str, Any]


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def _pointer(self) -> Path:
        return self.root / "serving.json"

    def versions(self) -> list[ModelVersion]:
        found = [ModelVersion(BUILTIN_VERSION, "zero-shot", None, {"builtin": True})]
        base = self.root / "versions"
        if base.is_dir():
            for meta_file in sorted(base.glob("*/meta.json")):
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

    def serving_version(self) -> str:
        if self._pointer.is_file():
            return str(json.loads(self._pointer.read_text())["version"])
        return BUILTIN_VERSION

    def set_serving(self, version: str) -> None:
        self.get(version)  # refuse to point at nothing
        self.root.mkdir(parents=True, exist_ok=True)
        # Atomic replace: a reader sees the old pointer or the new one, never half a file.
        tmp = self._pointer.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": version}))
        os.replace(tmp, self._pointer)
