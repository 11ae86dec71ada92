"""Fixtures for every test layer. Servers are started, never skipped (tests/stack_fixtures.py)."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.stack_fixtures"]


@pytest.fixture(scope="session")
def text_parser():
    from autoglm.nlp.parsing import TextParser
    from autoglm.settings import Settings

    return TextParser(Settings().spacy_model)


@pytest.fixture(scope="session")
def text_encoder():
    from autoglm.models.text_encoder import TextEncoder

    return TextEncoder()
