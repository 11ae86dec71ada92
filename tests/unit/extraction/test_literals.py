"""Literals as the graph stores them, and the forms a text writes them in."""

from __future__ import annotations

import pytest

from autoglm.extraction.literals import (
    normalise_date,
    normalise_literal,
    normalise_number,
    surface_forms,
)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("November 18th, 1923", "1923-11-18"),
        ("18 November 1923", "1923-11-18"),
        ("the 3rd of May, 2001", "2001-05-03"),
        ("Sept. 9, 1999", "1999-09-09"),
        ("1923-11-18", "1923-11-18"),
        ("18/11/1923", "1923-11-18"),
        ("March 1950", "1950-03"),
        ("November 31st", None),
        ("Mara Okafor", None),
        ("31 Smarch 1999", None),
    ],
)
def test_dates_become_iso(text, iso):
    assert normalise_date(text) == iso


def test_numbers_lose_their_separators_and_names_stay_names():
    assert normalise_number("1,219") == "1219"
    assert normalise_number("-3.3528") == "-3.3528"
    assert normalise_number("12 dogs") is None
    assert normalise_literal("2019") == ("2019", True)
    assert normalise_literal("Quebec") == ("Quebec", False)


def test_surface_forms_of_a_date_and_a_double():
    forms = surface_forms("1923-11-18")
    assert "November 18th, 1923" in forms and "18 November 1923" in forms
    assert surface_forms("2014.0")[:3] == ["2014.0", "2014", "2,014"]
    assert surface_forms("Aarhus") == ["Aarhus"]
