"""Locating gold WebNLG elements in their texts (the span supervision)."""

from __future__ import annotations

from autoglm.extraction.align import element_forms, find_spans


def _found(text: str, element: str) -> list[str]:
    return [text[a:b] for a, b in find_spans(text, element)]


def test_case_punctuation_and_accents_do_not_hide_a_name():
    assert _found("Aarhus airport serves the city of Aarhus.", "Aarhus_Airport") == [
        "Aarhus airport"
    ]
    assert _found("N.R. Pogson was an English national.", "N._R._Pogson") == ["N.R. Pogson"]
    assert _found(
        "Adolfo Suarez Madrid-Barajas airport is in Madrid.",
        "Adolfo_Suárez_Madrid–Barajas_Airport",
    ) == ["Adolfo Suarez Madrid-Barajas airport"]


def test_matches_sit_on_word_boundaries():
    assert _found("Aarhus airport serves the city of Aarhus.", "Aarhus") == ["Aarhus", "Aarhus"]
    assert _found("The Danes live in Denmark.", "Dane") == []


def test_values_are_found_as_a_writer_writes_them():
    assert _found("He was born on November 18th, 1923 in Ohio.", "1923-11-18") == [
        "November 18th, 1923"
    ]
    assert _found("Its runway is 2,014 metres long.", "2014.0") == ["2,014"]
    assert _found("The runway name is 14L/32R.", '"14L/32R"') == ["14L/32R"]


def test_disambiguations_and_qualifiers_are_dropped_when_the_text_omits_them():
    assert "Aleksey Chirikov" in element_forms("Aleksey_Chirikov_(icebreaker)")
    assert _found("It serves Lake Placid and Saranac Lake.", "Lake_Placid,_New_York") == [
        "Lake Placid"
    ]
    assert _found("It has an orbital period of 2368.05 days.", "2368.05 (days)") == ["2368.05 days"]
    assert _found("Its period is 2368.05.", "2368.05 (days)") == ["2368.05"]
