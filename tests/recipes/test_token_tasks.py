"""NER and QA end to end on the tiny model: train, evaluate, predict (API and CLI), HF loaders.

Toy NER: positive words are PER, negative words LOC, neutral words O; adjacent entity words of one
type form one entity (B- then I-). Toy QA: the answer is the one positive word in the context.
Both are learnable by a 2-layer, 32-wide model in a few epochs, so the tests can assert learning.
"""

import json
import random

import pytest
from typer.testing import CliRunner

import bertx
from bertx.cli import app
from tests.conftest import NEGATIVE, NEUTRAL, POSITIVE


def toy_tagged(rng):
    words, tags = [], []
    for _ in range(rng.randint(3, 7)):
        roll = rng.random()
        if roll < 0.6:
            words.append(rng.choice(NEUTRAL))
            tags.append("O")
        else:
            kind, pool = ("PER", POSITIVE) if roll < 0.8 else ("LOC", NEGATIVE)
            for k in range(rng.randint(1, 2)):
                words.append(rng.choice(pool))
                tags.append(("B-" if k == 0 else "I-") + kind)
            words.append(rng.choice(NEUTRAL))  # a separator, so entities do not touch
            tags.append("O")
    return words, tags


def write_conll(path, n, seed):
    rng = random.Random(seed)
    blocks = ["-DOCSTART- O\n"]
    for _ in range(n):
        words, tags = toy_tagged(rng)
        blocks.append("".join(f"{w} X {t}\n" for w, t in zip(words, tags)))
    path.write_text("\n".join(blocks), encoding="utf-8")
    return str(path)


def write_qa(path, n, seed):
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = [rng.choice(NEUTRAL + NEGATIVE) for _ in range(rng.randint(4, 12))]
        answer = rng.choice(POSITIVE)
        words.insert(rng.randint(0, len(words)), answer)
        context = " ".join(words)
        start = context.index(f" {answer}") + 1 if not context.startswith(answer + " ") else 0
        lines.append(
            json.dumps({"id": f"q{i}", "question": "which is good", "context": context, "answers": {"text": [answer], "answer_start": [start]}})
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def config(tiny_bert, task, train, dev, out, **data):
    return {
        "task": task,
        "output": str(out),
        "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
        "data": {"train": train, "dev": dev, "max_length": 32, **data},
        "train": {"epochs": 12, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 3},
    }


@pytest.fixture(scope="module")
def ner_run(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ner")
    train, dev = write_conll(tmp / "train.txt", 300, 1), write_conll(tmp / "dev.txt", 60, 2)
    metrics = bertx.finetune(config(tiny_bert, "ner", train, dev, tmp / "run"), show_progress=False)
    return tmp, metrics


def test_ner_learns_and_evaluate_agrees(ner_run):
    tmp, metrics = ner_run
    assert metrics["f1"] > 0.8, metrics
    again = bertx.evaluate(tmp / "run", str(tmp / "dev.txt"))
    assert again["f1"] == pytest.approx(metrics["f1"])
    assert set(again["per_type"]) == {"PER", "LOC"}


def test_ner_predicts_spans_with_character_offsets(ner_run):
    tmp, _ = ner_run
    text = "the film good great was bad"
    entities = bertx.EntityPredictor.load(tmp / "run").predict([text])[0]
    for entity in entities:
        assert text[entity["start"] : entity["end"]] == entity["text"] and 0 < entity["score"] <= 1
    assert ("PER", "good great") in {(e["type"], e["text"]) for e in entities}


def test_ner_cli_tags_a_conll_file(ner_run, tmp_path):
    tmp, _ = ner_run
    target = tmp_path / "tagged.txt"
    result = CliRunner().invoke(app, ["predict", str(tmp / "run"), "--input", str(tmp / "dev.txt"), "--format", "conll", "--output", str(target)])
    assert result.exit_code == 0, result.output
    original = (tmp / "dev.txt").read_text().splitlines()
    tagged = target.read_text().splitlines()
    assert len(tagged) == len(original)
    for before, after in zip(original, tagged):
        if before.split() and not before.startswith("-DOCSTART-"):
            assert after.startswith(before + " ") and len(after.split()) == len(before.split()) + 1
        else:
            assert after == before
    result = CliRunner().invoke(app, ["evaluate", str(tmp / "run"), "--data", str(tmp / "dev.txt"), "--json"])
    assert set(json.loads(result.output.strip().splitlines()[-1])) >= {"f1", "precision", "recall", "accuracy", "per_type"}


def test_ner_folder_loads_in_hf_pipeline(ner_run):
    from transformers import AutoModelForTokenClassification, pipeline

    tmp, _ = ner_run
    model = AutoModelForTokenClassification.from_pretrained(tmp / "run")
    assert set(model.config.id2label.values()) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}
    found = pipeline("token-classification", model=str(tmp / "run"), aggregation_strategy="simple")("the good film")
    assert isinstance(found, list)


def test_ner_long_sentences_are_windowed_and_every_word_tagged(ner_run, tmp_path):
    tmp, _ = ner_run
    words = ["good", "film", "bad", "plot"] * 30  # far longer than max_length=32 pieces
    ((tags, probs),) = bertx.EntityPredictor.load(tmp / "run").tag([words])
    assert len(tags) == len(words) == len(probs)


@pytest.fixture(scope="module")
def qa_run(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qa")
    train, dev = write_qa(tmp / "train.jsonl", 300, 1), write_qa(tmp / "dev.jsonl", 60, 2)
    cfg = config(tiny_bert, "qa", train, dev, tmp / "run", max_query_length=8, doc_stride=8)
    metrics = bertx.finetune(cfg, show_progress=False)
    return tmp, metrics


def test_qa_learns_and_evaluate_agrees(qa_run):
    tmp, metrics = qa_run
    assert metrics["f1"] > 0.6, metrics
    assert bertx.evaluate(tmp / "run", str(tmp / "dev.jsonl"))["exact_match"] == pytest.approx(metrics["exact_match"])


def test_qa_predict_cli_and_exact_spans(qa_run, tmp_path):
    tmp, _ = qa_run
    target = tmp_path / "answers.jsonl"
    result = CliRunner().invoke(app, ["predict", str(tmp / "run"), "--input", str(tmp / "dev.jsonl"), "--output", str(target)])
    assert result.exit_code == 0, result.output
    inputs = [json.loads(line) for line in (tmp / "dev.jsonl").read_text().splitlines()]
    outputs = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(outputs) == len(inputs)
    for given, answer in zip(inputs, outputs):
        assert given["context"][answer["start"] : answer["end"]] == answer["answer"]


def test_qa_folder_loads_in_hf_auto_class(qa_run):
    # transformers 5 removed pipeline("question-answering"); the folder loads in the Auto class, and
    # its logits are the ones bertx decodes.
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tmp, _ = qa_run
    model = AutoModelForQuestionAnswering.from_pretrained(tmp / "run").eval()
    tok = AutoTokenizer.from_pretrained(tmp / "run")
    enc = tok("which is good", "the film was great", return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
    assert out.start_logits.shape == out.end_logits.shape == enc["input_ids"].shape


def test_qa_rejects_a_window_too_small_for_the_question(tiny_bert, tmp_path):
    train = write_qa(tmp_path / "t.jsonl", 10, 1)
    cfg = config(tiny_bert, "qa", train, None, tmp_path / "run", max_length=16, max_query_length=8)
    with pytest.raises(bertx.BertxError, match="leaves no room for the context"):
        bertx.finetune(cfg, show_progress=False)


@pytest.mark.parametrize(
    "task, name, content, expected",
    [
        ("ner", "t.txt", "good B-PER\nfilm\n", "t.txt:2: word 'film' has no tag"),
        ("ner", "t.jsonl", '{"tokens": ["good", "film"], "tags": ["B-PER"]}\n', "t.jsonl:1: 2 tokens but 1 tags"),
        ("ner", "t.txt", "good B-PER\nfilm E-PER\n", "t.txt:2: tag 'E-PER' is not O, B-TYPE or I-TYPE"),
        (
            "qa",
            "t.jsonl",
            '{"question": "q", "context": "a good film", "answers": [{"text": "good", "answer_start": 3}]}\n',
            "t.jsonl:1: answer 'good' is not at answer_start 3",
        ),
        ("qa", "t.jsonl", '{"question": "q", "context": "", "answers": [{"text": "x", "answer_start": 0}]}\n', "t.jsonl:1: empty context"),
        ("qa", "t.jsonl", '{"context": "a good film", "answers": []}\n', "t.jsonl:1: missing 'question'"),
    ],
)
def test_bad_token_task_input_is_one_line(tiny_bert, tmp_path, task, name, content, expected):
    bad = tmp_path / name
    bad.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(app, ["finetune", "--task", task, "--train", str(bad), "--model", tiny_bert, "--output", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output


def test_repaired_tags_are_counted_and_printed(tiny_bert, tmp_path):
    train = tmp_path / "t.txt"
    train.write_text("the O\ngood I-PER\n\nbad B-LOC\nfilm O\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            "--task",
            "ner",
            "--train",
            str(train),
            "--model",
            tiny_bert,
            "--output",
            str(tmp_path / "o"),
            "--epochs",
            "1",
            "--show-examples",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 training tags were invalid BIO" in result.output
    start = json.loads((tmp_path / "o/log.jsonl").read_text().splitlines()[0])
    assert start["train_counts"]["repaired_tags"] == 1
