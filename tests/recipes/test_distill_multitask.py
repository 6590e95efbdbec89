"""A `bertx multitask` teacher distilled into one multi-task student (tiny random BERT): the student keeps the
teacher's heads over fewer layers, learns each head from its teacher head, shares the single-text tasks'
texts between their heads, labels once (a rerun reads the teacher store), and its folder predicts, exports
and serves every head as the teacher's does; what it cannot take is refused in one line."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bertx
from bertx.cli import app
from bertx.config import MultitaskConfig, validate_config
from bertx.errors import BertxError
from bertx.recipes.multitask import multitask
from tests.conftest import write_toy_classification
from tests.recipes.test_token_tasks import write_conll


def teacher_config(tiny_bert: str, tmp: Path) -> dict:
    files = {
        "sent": (write_toy_classification(tmp / "sent.tsv", 240, 1), write_toy_classification(tmp / "sent-dev.tsv", 80, 2)),
        "mood": (
            write_toy_classification(tmp / "mood.tsv", 160, 7, labels=("glum", "glad")),
            write_toy_classification(tmp / "mood-dev.tsv", 60, 8, labels=("glum", "glad")),
        ),
        "pair": (
            write_toy_classification(tmp / "pair.tsv", 120, 3, labels=("no", "yes"), pair=True),
            write_toy_classification(tmp / "pair-dev.tsv", 60, 4, labels=("no", "yes"), pair=True),
        ),
        "ner": (write_conll(tmp / "ner.txt", 160, 5), write_conll(tmp / "ner-dev.txt", 50, 6)),
    }
    kinds = {"sent": "classification", "mood": "classification", "pair": "pair-classification", "ner": "ner"}
    return {
        "output": str(tmp / "teacher"),
        "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
        "tasks": [
            {"name": name, "kind": kinds[name], "train": str(train), "dev": str(dev), "data": {"max_length": 32}}
            for name, (train, dev) in files.items()
        ],
        "train": {"epochs": 6, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 5},
    }


def student_config(teacher: Path, output: Path, **extra) -> dict:
    return {
        "teacher": str(teacher),
        "output": str(output),
        "student": {"layers": 1},
        "train": {"epochs": 4, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 3},
        **extra,
    }


@pytest.fixture(scope="module")
def distilled(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mt-distill")
    multitask(validate_config(teacher_config(tiny_bert, tmp), schema=MultitaskConfig), show_progress=False)
    final = bertx.distill(student_config(tmp / "teacher", tmp / "student"), show_progress=False)
    return tmp, final


def test_the_student_keeps_every_head_over_fewer_layers(distilled):
    tmp, final = distilled
    student, teacher = tmp / "student", tmp / "teacher"
    assert json.loads((student / "config.json").read_text())["num_hidden_layers"] == 1
    assert json.loads((teacher / "config.json").read_text())["num_hidden_layers"] == 2
    assert sorted(p.name for p in (student / "heads").iterdir()) == ["mood", "ner", "pair", "sent"]
    assert set(final["teacher"]) == set(final["kept"]) == {"sent", "mood", "pair", "ner"}
    # One layer of a two-layer teacher on toy tasks: the heads keep most of what the teacher scores.
    assert final["kept"]["sent"] > 0.85 and final["kept"]["mood"] > 0.85, final
    assert final["tasks"]["ner"]["f1"] > 0.4, final["tasks"]["ner"]
    report = (student / "report.md").read_text()
    assert "| sent | accuracy |" in report and "%" in report


def test_single_text_heads_learn_each_others_texts_and_pairs_keep_their_own(distilled):
    tmp, final = distilled
    from bertx.runfolder import read_run_config

    run = read_run_config(tmp / "student")
    labelled = run["transfer_set"]
    assert labelled["sent"]["texts"] == labelled["mood"]["texts"] == 240 + 160  # its own texts and the other's
    assert labelled["pair"]["texts"] == 120
    assert run["distilled_from"]["kept_layers"] == [1] and run["distilled_from"]["share_texts"] is True
    assert set(run["multitask"]) == {"sent", "mood", "pair", "ner"}


def test_a_second_student_reads_the_teacher_store(distilled, tmp_path):
    tmp, _ = distilled
    bertx.distill(student_config(tmp / "teacher", tmp_path / "again", train={"max_steps": 2, "save_steps": None}), show_progress=False)
    from bertx.runfolder import read_run_config

    labelled = read_run_config(tmp_path / "again")["transfer_set"]
    assert all(entry["from_store"] == entry["texts"] and entry["labelled"] == 0 for entry in labelled.values()), labelled


def test_the_student_folder_predicts_exports_and_serves_every_head(distilled, tmp_path):
    tmp, _ = distilled
    from fastapi.testclient import TestClient

    from bertx.inference.multitask_predictor import MultiTaskPredictor
    from bertx.serve.app import create_app
    from bertx.serve.main import load_models
    from bertx.serve.protocol import Limits

    texts = ["a good film", "the plot was awful"]
    answers = MultiTaskPredictor.load(tmp / "student").predict(texts)
    assert set(answers[0]) == {"sent", "mood"}

    exported = tmp_path / "onnx"
    result = CliRunner().invoke(app, ["export", str(tmp / "student"), "--output", str(exported), "--quantize", "none"])
    assert result.exit_code == 0, result.output
    from_graph = MultiTaskPredictor.load(exported).predict(texts)
    assert [a["sent"]["label"] for a in from_graph] == [a["sent"]["label"] for a in answers]

    one = tmp_path / "ner-alone"
    result = CliRunner().invoke(app, ["multitask-export", str(tmp / "student"), "--task", "ner", "--output", str(one)])
    assert result.exit_code == 0, result.output

    with TestClient(create_app(load_models({"mt": str(exported)}), Limits(max_wait_ms=20))) as client:
        response = client.post("/v1/models/mt/predict", json={"inputs": texts, "tasks": ["sent", "mood"]})
    assert response.status_code == 200, response.text
    assert [o["tasks"]["sent"]["label"] for o in response.json()["outputs"]] == [a["sent"]["label"] for a in answers]


def test_the_cli_prints_each_head_beside_its_teacher(distilled, tmp_path):
    tmp, _ = distilled
    args = ["distill", "--teacher", str(tmp / "teacher"), "--output", str(tmp_path / "cli"), "--student-layers", "1", "train.max_steps=2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| task | metric | teacher | student | kept |" in result.output and "| pair | accuracy |" in result.output


@pytest.mark.parametrize(
    "change, message",
    [
        ({"student": {"layers": 1, "hidden": 16}}, "a multi-task student keeps some of the teacher's layers"),
        ({"student": {"kind": "bag"}}, "task 'ner': student.kind bag: a bag of embeddings sees no context"),
        ({"student": {"kind": "bilstm", "tokenizer": "train"}}, "drop student.tokenizer"),
        ({"loss": {"hidden": 1.0}}, "loss.soft and loss.hard only"),
        ({"data": {"train": "x.tsv"}}, "drop --train and --dev"),
        ({"baseline": True}, "baseline: not trained"),
    ],
)
def test_what_a_multitask_student_cannot_take_is_refused_in_one_line(distilled, tmp_path, change, message):
    tmp, _ = distilled
    config = {**student_config(tmp / "teacher", tmp_path / "refused"), **change}
    with pytest.raises(BertxError, match=message):
        bertx.distill(config, show_progress=False)
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize("kind", ["bilstm", "cnn"])
def test_a_small_student_shares_one_encoder_under_every_head(distilled, tmp_path, kind):
    """A BiLSTM (CNN) multi-task student: one embedding table and BiLSTM, a head per task (a tagger for NER); its
    folder predicts every head from one pass, exports every sequence head in one graph, and writes a task alone."""
    tmp, _ = distilled
    from bertx.inference.multitask_predictor import MultiTaskPredictor
    from bertx.models.small_students import ENCODER_FILE, STUDENT_FILE, is_small_student

    out = tmp_path / kind
    config = student_config(tmp / "teacher", out, student={"kind": kind, "hidden": 32}, share_texts=False)
    config["train"] = {**config["train"], "epochs": 10, "lr": 1e-2}
    final = bertx.distill(config, show_progress=False)
    assert (out / ENCODER_FILE).is_file() and not is_small_student(out)  # the top folder is the shared encoder, not one student
    assert all((out / "heads" / head / STUDENT_FILE).is_file() for head in ("sent", "mood", "pair", "ner"))
    assert final["kept"]["sent"] > 0.8 and final["kept"]["mood"] > 0.8, final
    assert final["tasks"]["ner"]["f1"] > 0.2, final["tasks"]["ner"]

    texts = ["a good film", "the plot was awful"]
    answers = MultiTaskPredictor.load(out).predict(texts)
    assert set(answers[0]) == {"sent", "mood"}
    pairs = MultiTaskPredictor.load(out).predict(texts, pairs=["a fine film", "the plot was dull"])
    assert set(pairs[0]) == {"pair"}

    exported = tmp_path / "onnx"
    result = CliRunner().invoke(app, ["export", str(out), "--output", str(exported), "--quantize", "none"])
    assert result.exit_code == 0, result.output
    from_graph = MultiTaskPredictor.load(exported).predict(texts)
    assert [a["mood"]["label"] for a in from_graph] == [a["mood"]["label"] for a in answers]
    assert from_graph[0]["mood"]["probs"] == pytest.approx(answers[0]["mood"]["probs"], abs=1e-4)

    result = CliRunner().invoke(app, ["evaluate", str(out), "--data", str(tmp / "sent-dev.tsv")])
    assert result.exit_code == 2 and "a multi-task folder (tasks: " in result.output, result.output

    alone = tmp_path / "ner-alone"
    result = CliRunner().invoke(app, ["multitask-export", str(out), "--task", "ner", "--output", str(alone)])
    assert result.exit_code == 0, result.output
    assert is_small_student(alone)
    entities = bertx.EntityPredictor.load(alone).predict(["John lives in Paris"])
    assert isinstance(entities[0], list)


def test_a_multitask_student_is_not_taken_for_a_teacher_run(distilled, tmp_path):
    tmp, _ = distilled
    result = CliRunner().invoke(app, ["distill", "--teacher", str(tmp / "student"), "--output", str(tmp_path / "again")])
    assert result.exit_code == 2 and "a multi-task student of" in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "again").exists()


def test_augmented_variants_join_every_head_that_reads_their_shape(distilled, tmp_path):
    """`augment: 2`: two variants of each sequence task's texts, labelled by each head that reads that shape."""
    tmp, _ = distilled
    from bertx.runfolder import read_run_config

    config = student_config(tmp / "teacher", tmp_path / "augmented", augment=2)
    config["train"] = {**config["train"], "max_steps": 2}
    bertx.distill(config, show_progress=False)
    labelled = read_run_config(tmp_path / "augmented")["transfer_set"]
    assert labelled["sent"]["texts"] == labelled["mood"]["texts"] == 3 * (240 + 160)  # own, shared, and two variants of each
    assert labelled["pair"]["texts"] == 3 * 120
    assert "ner" not in labelled or labelled["ner"]["texts"] == 160
