"""Free text to knowledge-graph facts: schema, extractor model, training, WebNLG measurement.

``load_extractor`` gives the extractor that the parser service, ``autoglm extract`` and the
benchmark all use: the serving version of the extractor registry
(``<model_registry_dir>/extractor``, versioned like the reasoning model), else the trained one
bundled in ``samples/extractor``.
"""

from __future__ import annotations

from autoglm.extraction.types import ExtractedTriple, TextExtractor

__all__ = ["ExtractedTriple", "TextExtractor", "load_extractor"]


def load_extractor(settings: object, schema: object = None) -> TextExtractor:
    """The serving extractor with ``schema`` (a ``Schema``; None reads the schema setting)."""
    from autoglm.extraction.store import load_extractor as load

    return load(settings, schema)  # type: ignore[arg-type]
