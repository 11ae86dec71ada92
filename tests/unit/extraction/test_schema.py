"""Schema files: names only, YAML/JSON with descriptions, and what is refused."""

from __future__ import annotations

import json

import pytest

from autoglm.errors import BadInputError
from autoglm.extraction.schema import load_schema, relation_words


def test_the_minimal_form_is_one_name_per_line(tmp_path):
    path = tmp_path / "schema.txt"
    path.write_text("# WebNLG predicates\nbirthPlace\n\nleader  # of a place\n")
    schema = load_schema(path)
    assert schema.names == ["birthPlace", "leader"]
    assert schema.relations[0].texts() == ["birth place"]


def test_rich_forms_carry_descriptions_types_and_aliases(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(
        json.dumps(
            {
                "relations": [
                    {
                        "name": "directed_by",
                        "description": "its director",
                        "aliases": "director",
                        "object_type": "Person",
                    },
                    {"name": "release_year", "object_type": "Year"},
                ]
            }
        )
    )
    schema = load_schema(path)
    directed = schema.by_name["directed_by"]
    assert directed.texts() == ["directed by / director: its director"]
    assert not directed.literal_object and schema.by_name["release_year"].literal_object


def test_the_default_schema_names_the_movie_kb_relations():
    names = set(load_schema(None).names)
    assert {
        "directed_by",
        "written_by",
        "starred_actors",
        "release_year",
        "in_language",
        "has_genre",
        "birthPlace",
    } <= names


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("", ".txt", "names no relation"),
        ("a\na\n", ".txt", "twice"),
        ("relations: {oops: 1}", ".yaml", "list of relations"),
        ("- {description: nameless}", ".yaml", "needs a name"),
        ("{not json", ".json", "not valid json"),
    ],
)
def test_bad_schemas_are_refused_with_the_reason(tmp_path, content, suffix, message):
    path = tmp_path / f"schema{suffix}"
    path.write_text(content)
    with pytest.raises(BadInputError, match=message):
        load_schema(path)


def test_relation_names_read_as_words():
    assert relation_words("associatedBand/associatedMusicalArtist") == (
        "associated band / associated musical artist"
    )
    assert relation_words("has_imdb_rating") == "has imdb rating"
