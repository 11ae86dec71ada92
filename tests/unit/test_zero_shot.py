"""The zero-shot path scorer on a small hand-made subgraph."""

from __future__ import annotations

from autoglm.contracts import GraphNode, ParsedQuestion, Question, ReasoningInput, ResultStatus
from autoglm.models.serving import answer
from autoglm.models.zero_shot import ZeroShotPathScorer


def _input(text: str, hops: int = 1) -> ReasoningInput:
    rid = f"r-{text}"
    item = ReasoningInput(
        request_id=rid,
        hops=hops,
        top_k=3,
        status=ResultStatus.RESULT_STATUS_OK,
        question=ParsedQuestion(
            request_id=rid, normalized_text=text, question=Question(request_id=rid, text=text)
        ),
    )
    sub = item.subgraph
    for key in ("jaws", "steven spielberg", "1975", "roy scheider", "drama"):
        sub.nodes.append(GraphNode(key=key, name=key.title()))
    sub.relation_types.extend(["directed_by", "release_year", "starred_actors", "has_genre"])
    for source, target, relation in ((0, 1, 0), (0, 2, 1), (0, 3, 2), (0, 4, 3)):
        sub.edge_source.append(source)
        sub.edge_target.append(target)
        sub.edge_relation.append(relation)
    sub.anchor_indices.append(0)
    return item


def test_best_path_gives_the_answer_with_its_path(text_encoder):
    model = ZeroShotPathScorer(text_encoder)
    (prediction,) = model.predict([_input("who directed Jaws")])
    assert prediction.answers[0].name == "Steven Spielberg"
    assert prediction.reasoning_path[0].relation == "directed_by"
    assert 0.0 < prediction.confidence <= 1.0
    probabilities = [a.probability for a in prediction.answers]
    assert probabilities == sorted(probabilities, reverse=True)


def test_batch_answers_each_question(text_encoder):
    model = ZeroShotPathScorer(text_encoder)
    results = answer(model, [_input("what year was Jaws released"), _input("what genre is Jaws")])
    assert [r.answers[0].name for r in results] == ["1975", "Drama"]
    assert all(r.model_version == "zero-shot-minilm" for r in results)
    assert results[0].timings[-1].service == "inference"


def test_unanswerable_inputs_pass_through_with_their_status(text_encoder):
    model = ZeroShotPathScorer(text_encoder)
    item = _input("who directed Jaws")
    item.status = ResultStatus.RESULT_STATUS_NO_ENTITY
    item.error = "no mention"
    (result,) = answer(model, [item])
    assert result.status == ResultStatus.RESULT_STATUS_NO_ENTITY
    assert not result.answers
