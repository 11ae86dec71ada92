"""Hot swap of the serving model: load the new version beside the old one, then switch.

Callers take ``holder.current`` once per batch and use that object to the end of the batch, so
requests in flight finish on the version they started with; the switch is a single reference
assignment, so no request ever sees a half-loaded model. A version that fails to load leaves the
serving one in place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from autoglm.models.base import AnswerModel
from autoglm.registry import ModelLoadError

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, model: AnswerModel, loader: Callable[[str], AnswerModel]) -> None:
        self._model = model
        self._loader = loader
        self._swap_lock = asyncio.Lock()

    @property
    def current(self) -> AnswerModel:
        return self._model

    async def swap_to(self, version: str) -> bool:
        """Load ``version`` off the event loop and switch to it; False if it could not load."""
        async with self._swap_lock:
            if version == self._model.version:
                return True
            try:
                candidate = await asyncio.to_thread(self._loader, version)
            except ModelLoadError as exc:
                log.error("model swap refused", extra={"version": version, "error": exc.reason})
                return False
            previous, self._model = self._model.version, candidate
            log.info("model swapped", extra={"from": previous, "to": version})
            return True
