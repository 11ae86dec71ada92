"""Facts that only a text states, answered through every hop (issue 10, point 6): a film
paragraph ingested as free text, then asked about in both directions, with the sentence that
states the fact shown as the evidence of the path."""

from __future__ import annotations

import pytest

from autoglm.bus import topics
from autoglm.bus.client import PipelineClient, new_request_id
from autoglm.cli.requests import text_documents
from autoglm.contracts import GraphCommit, Question, Result, ResultStatus
from autoglm.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

PARAGRAPHS = PROJECT_ROOT / "samples" / "texts" / "glass_orchard.txt"


async def _ask(settings, text: str) -> Result:
    question = Question(request_id=new_request_id(), text=text, hops=1)
    async with PipelineClient(settings) as client:
        client.expect([question.request_id])
        await client.publish(topics.QUESTIONS, question, key=question.request_id)
        reply = await client.reply(question.request_id, 60.0)
    assert isinstance(reply, Result), reply
    return reply


async def test_a_film_paragraph_answers_questions_about_it(stack_settings, services):
    (document,) = text_documents(PARAGRAPHS)
    async with PipelineClient(stack_settings) as client:
        client.expect([document.request_id])
        await client.publish(topics.DOCUMENTS, document, key=document.document_id)
        commit = await client.reply(document.request_id, 120.0)
    assert isinstance(commit, GraphCommit), commit
    assert commit.triples >= 6

    directed = await _ask(stack_settings, "who directed [The Glass Orchard]")
    assert directed.status == ResultStatus.RESULT_STATUS_OK, directed.error
    assert directed.answers[0].name == "Mara Okafor"
    (edge,) = directed.reasoning_path
    assert edge.relation == "directed_by"
    assert edge.evidence and "directed by Mara Okafor" in edge.evidence[0].text
    assert edge.evidence[0].document_id == document.document_id

    films = await _ask(stack_settings, "which films did [Mara Okafor] direct")
    assert films.status == ResultStatus.RESULT_STATUS_OK, films.error
    assert films.answers[0].name == "The Glass Orchard"

    cast = await _ask(stack_settings, "who acted in [The Glass Orchard]")
    assert {a.name for a in cast.answers[:3]} == {"Helena Voss", "Tomas Brandt", "Ada Lindqvist"}
