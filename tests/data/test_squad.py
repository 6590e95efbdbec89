"""QA readers and features: SQuAD JSON / JSONL, answer checks, windows and exact character offsets."""

import json

import numpy as np
import pytest

from bertx.data.qa_features import answer_tokens, qa_features
from bertx.data.squad import read_qa
from bertx.errors import DataError
from bertx.models.encoder import load_tokenizer
from bertx.tasks.span_decoding import best_answers

CONTEXT = "the film was good and the plot was bad"


def squad(tmp_path, qas, context=CONTEXT, name="s.json", articles=1):
    doc = {"version": "1.1", "data": [{"title": f"t{a}", "paragraphs": [{"context": context, "qas": qas}]} for a in range(articles)]}
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def qa(qid="q1", question="how was the film", text="good", start=13):
    return {"id": qid, "question": question, "answers": [{"text": text, "answer_start": start}]}


def test_squad_json_and_article_ranges(tmp_path):
    path = squad(tmp_path, [qa()], articles=3)
    assert len(read_qa(path)) == 3
    examples = read_qa(path, articles="1:")
    assert [ex.title for ex in examples] == ["t1", "t2"]
    assert examples[0].answers == [("good", 13)]


def test_jsonl_both_answer_layouts(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps({"question": "how?", "context": CONTEXT, "answers": {"text": ["good"], "answer_start": [13]}})
        + "\n"
        + json.dumps({"id": "x", "question": "what?", "context": CONTEXT, "answers": [{"text": "bad", "answer_start": 35}]})
        + "\n",
        encoding="utf-8",
    )
    examples = read_qa(path)
    assert [ex.answers for ex in examples] == [[("good", 13)], [("bad", 35)]]
    assert examples[1].id == "x"


@pytest.mark.parametrize(
    "item, context, problem",
    [
        (qa(start=14), CONTEXT, r"question q1\): answer 'good' is not at answer_start 14"),
        (qa(), "   ", r"question q1\): empty context"),
        ({"id": "q1", "question": "why", "answers": [], "is_impossible": True}, CONTEXT, "unanswerable"),
        ({"id": "q1", "answers": []}, CONTEXT, "missing 'question'"),
        ({"id": "q1", "question": "why", "answers": []}, CONTEXT, "no answer"),
    ],
)
def test_bad_questions_name_their_id(tmp_path, item, context, problem):
    with pytest.raises(DataError, match=problem):
        read_qa(squad(tmp_path, [item], context=context))


def test_jsonl_bad_line_is_named(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "q", "context": CONTEXT, "answers": [{"text": "goat", "answer_start": 13}]}) + "\n")
    with pytest.raises(DataError, match=r"q.jsonl:1: answer 'goat' is not at answer_start 13"):
        read_qa(path)


def test_answer_tokens_from_offsets():
    offsets = [None, None, (0, 3), (4, 8), (9, 12), (13, 17), None]  # the film was good
    assert answer_tokens(offsets, ("good", 13)) == (5, 5)
    assert answer_tokens(offsets, ("film was", 4)) == (3, 4)
    assert answer_tokens(offsets, ("and", 18)) == (0, 0)  # outside this window


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return load_tokenizer(tiny_bert)


def test_windows_overlap_and_targets_point_at_the_answer(tokenizer, tmp_path):
    context = " ".join(["good film"] * 20 + ["bad"] + ["dull plot"] * 20)
    start = context.index("bad")
    examples = read_qa(squad(tmp_path, [qa(text="bad", start=start)], context=context))
    features = qa_features(tokenizer, examples, max_length=32, doc_stride=8, max_query_length=8, with_targets=True)
    assert features.windowed == 1 and len(features.example) > 2
    hits = [f for f, span in enumerate(features.features.spans) if span != (0, 0)]
    assert hits
    for f in hits:
        s, e = features.features.spans[f]
        offsets = features.offsets[f]
        assert context[offsets[s][0] : offsets[e][1]] == "bad"


def test_long_questions_are_cut_and_counted(tokenizer, tmp_path):
    examples = read_qa(squad(tmp_path, [qa(question="how was the film " * 10)]))
    features = qa_features(tokenizer, examples, max_length=64, doc_stride=8, max_query_length=6, with_targets=True)
    assert features.truncated_questions == 1
    assert sum(t == 1 for t in features.features.token_type_ids[0]) > 0


def test_best_answer_maps_back_to_exact_characters(tokenizer, tmp_path):
    context = "  the film  was good and the plot was bad"  # odd spacing: spans must still be exact
    examples = read_qa(squad(tmp_path, [qa(start=context.index("good"))], context=context))
    features = qa_features(tokenizer, examples, max_length=64, doc_stride=8, max_query_length=16, with_targets=True)
    s, e = features.features.spans[0]
    n = features.features.lengths[0]
    start_logits, end_logits = np.zeros(n), np.zeros(n)
    start_logits[s], end_logits[e] = 5.0, 5.0
    start_logits[0] = end_logits[0] = 50.0  # [CLS] is not a context token: never an answer
    found = best_answers(features, examples, [start_logits], [end_logits])
    assert found[0]["answer"] == "good" and context[found[0]["start"] : found[0]["end"]] == "good"
    assert 0 < found[0]["score"] <= 1
