"""Texts as the extractor's model reads them: word pieces with character offsets, and the
frozen encoder's states for them; relations as embeddings of their descriptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from autoglm.extraction.schema import Schema
from autoglm.models.text_encoder import TextEncoder


@dataclass(frozen=True)
class Tokenized:
    """One text's word pieces: ids (with the encoder's special tokens) and the character span
    of each piece in the text (``(0, 0)`` for special tokens)."""

    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.ids)


class Featurizer:
    """The frozen text encoder, used for token states and for relation embeddings."""

    def __init__(self, encoder: TextEncoder, max_tokens: int = 192, identity: str = "") -> None:
        self.encoder = encoder
        self.max_tokens = max_tokens
        self.identity = identity or f"{encoder.model.config.name_or_path}@{max_tokens}"
        """Names the encoder in cache keys (two encoders never share cached states)."""

    @property
    def hidden_size(self) -> int:
        return self.encoder.hidden_size

    def tokenize(self, texts: Sequence[str]) -> list[Tokenized]:
        batch = self.encoder.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_tokens,
            return_offsets_mapping=True,
        )
        return [
            Tokenized(tuple(ids), tuple((int(a), int(b)) for a, b in offsets))
            for ids, offsets in zip(batch["input_ids"], batch["offset_mapping"], strict=True)
        ]

    @torch.no_grad()
    def states(self, tokenized: Sequence[Tokenized]) -> tuple[Tensor, Tensor]:
        """Encoder token states :math:`(B, T, H)` and mask :math:`(B, T)` of a batch."""
        length = max(len(t) for t in tokenized)
        pad = int(self.encoder.tokenizer.pad_token_id or 0)
        device = self.encoder.device
        ids = torch.full((len(tokenized), length), pad, dtype=torch.long)
        mask = torch.zeros((len(tokenized), length), dtype=torch.bool)
        for row, text in enumerate(tokenized):
            ids[row, : len(text)] = torch.tensor(text.ids)
            mask[row, : len(text)] = True
        out = self.encoder.model(input_ids=ids.to(device), attention_mask=mask.long().to(device))
        return out.last_hidden_state, mask.to(device)

    @torch.no_grad()
    def relation_embeddings(self, schema: Schema) -> Tensor:
        """One embedding :math:`(R, H)` per relation, from its name and description."""
        texts = [relation.texts()[0] for relation in schema.relations]
        return self.encoder(texts)
