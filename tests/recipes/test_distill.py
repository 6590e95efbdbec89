"""Distillation on the tiny BERT: every task kind, every loss, students of three kinds, the report,
and the bad inputs that must stop before training."""

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import bertx
from bertx.cli import app
from bertx.config import DistillConfig, validate_config
from bertx.models.bert_students import student_from_teacher_layers
from bertx.recipes.distill import distill, load_teacher
from tests.conftest import tiny_config, write_toy_classification
from tests.recipes.killing import kill_after_step
from tests.recipes.test_token_tasks import config as token_config
from tests.recipes.test_token_tasks import write_conll, write_qa


@pytest.fixture(scope="module")
def teacher(tiny_bert, tmp_path_factory):
    """A fine-tuned 2-layer toy sentiment teacher and its data."""
    tmp = tmp_path_factory.mktemp("teacher")
    train = str(write_toy_classification(tmp / "train.tsv", 240, 1))
    dev = str(write_toy_classification(tmp / "dev.tsv", 80, 2))
    metrics = bertx.finetune(tiny_config(tiny_bert, train, dev, str(tmp / "model")), show_progress=False)
    assert metrics["accuracy"] > 0.9
    return tmp, train, dev


def kd_config(tmp, train, dev, output, **changes) -> dict:
    config = {
        "teacher": str(tmp / "model"),
        "output": str(output),
        "data": {"train": train, "dev": dev, "max_length": 32},
        "student": {"layers": 1},
        "baseline": False,
        "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 7},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config.setdefault(section, {})[field] = value
        else:
            config[section] = value
    return config


def test_student_copies_the_kept_teacher_layers(teacher):
    tmp, _, _ = teacher
    model = load_teacher(str(tmp / "model"), None).model
    student = student_from_teacher_layers(model, [1])
    assert student.config.num_hidden_layers == 1 and len(student.bert.encoder.layer) == 1
    assert torch.equal(student.bert.encoder.layer[0].output.dense.weight, model.bert.encoder.layer[1].output.dense.weight)
    assert torch.equal(student.classifier.weight, model.classifier.weight)
    assert student.bert.encoder.layer[0].attention.self.config is student.config  # one config object


def test_all_losses_report_and_hf_folder(teacher, tmp_path):
    tmp, train, dev = teacher
    config = kd_config(
        tmp,
        train,
        dev,
        tmp_path / "kd",
        baseline=True,
        loss={"soft": 1.0, "hard": 0.5, "hidden": 1.0, "attention": 1.0, "embedding": 0.5, "value_relation": 1.0},
    )
    final = bertx.distill(config, show_progress=False)
    assert final["accuracy"] > 0.9 and final["baseline"]["accuracy"] > 0.5
    out = tmp_path / "kd"
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["teacher_outputs"] == "live" and log[0]["kept_layers"] == [1] and log[0]["layer_map"] == [[1, 2]]
    train_rows = [r for r in log if r["event"] == "train"]
    assert {"loss/soft", "loss/hard", "loss/hidden", "loss/attention", "loss/embedding", "loss/value_relation"} <= set(train_rows[0])
    report = json.loads((out / "report.json").read_text())
    assert list(report["models"]) == ["teacher", "student", "student without teacher"]
    student = report["models"]["student"]
    assert student["layers"] == 1 and student["parameters"] < report["models"]["teacher"]["parameters"]
    assert student["kept_pct"] == pytest.approx(100 * final["accuracy"] / report["models"]["teacher"]["metrics"]["accuracy"], abs=0.01)
    assert "| student | 1 x 32 |" in (out / "report.md").read_text()
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    # The student is an ordinary HF folder; the projection and hooks are not part of it.
    from transformers import pipeline

    assert pipeline("text-classification", model=str(out))("great superb lovely film")[0]["label"] == "pos"
    assert bertx.evaluate(out, dev)["accuracy"] == pytest.approx(final["accuracy"])
    assert not any("projection" in k for k in load_file(out / "model.safetensors"))


def test_cached_teacher_and_unlabelled_text(teacher, tmp_path):
    tmp, train, dev = teacher
    extra = tmp_path / "extra.txt"
    extra.write_text("\n".join(["lovely warm story", "dark cold plot", "superb bright film"] * 20) + "\n")
    config = kd_config(tmp, train, dev, tmp_path / "kd", unlabelled=[str(extra)])
    final = distill(validate_config(config, schema=DistillConfig), show_progress=False)
    assert final["accuracy"] > 0.9 and final["unlabelled_examples"] == 60 and final["train_examples"] == 240
    start = json.loads((tmp_path / "kd/log.jsonl").read_text().splitlines()[0])
    assert start["teacher_outputs"] == "cached"


def test_narrower_random_student_with_projected_hidden_loss(teacher, tmp_path):
    tmp, train, dev = teacher
    config = kd_config(
        tmp,
        train,
        dev,
        tmp_path / "narrow",
        student={"layers": 1, "hidden": 16, "heads": 2},
        loss={"soft": 1.0, "hard": 0.5, "hidden": 1.0, "cosine": 1.0, "patient": 1.0, "value_relation": 1.0, "relation_heads": 2},
    )
    final = bertx.distill(config, show_progress=False)
    assert json.loads((tmp_path / "narrow/config.json").read_text())["hidden_size"] == 16
    assert final["steps"] == 45 and 0 <= final["accuracy"] <= 1
    logged = [json.loads(line) for line in (tmp_path / "narrow/log.jsonl").read_text().splitlines()]
    assert any({"loss/cosine", "loss/patient"} <= set(row) for row in logged if row.get("event") == "train")


@pytest.mark.parametrize("task", ["ner", "qa"])
def test_token_and_span_tasks_distil(tiny_bert, tmp_path, task):
    data = {}
    if task == "ner":
        train, dev = write_conll(tmp_path / "train.txt", 300, 1), write_conll(tmp_path / "dev.txt", 60, 2)
    else:
        train, dev = write_qa(tmp_path / "train.jsonl", 300, 1), write_qa(tmp_path / "dev.jsonl", 60, 2)
        data = {"max_query_length": 8, "doc_stride": 8}
    teacher_metrics = bertx.finetune(token_config(tiny_bert, task, train, dev, tmp_path / "teacher", **data), show_progress=False)
    config = {
        "teacher": str(tmp_path / "teacher"),
        "output": str(tmp_path / "student"),
        "student": {"layers": 1},
        "data": {"train": train, "dev": dev, "max_length": 32, **data},
        "baseline": False,
        "loss": {"soft": 1.0, "hard": 0.5, "hidden": 1.0},
        "train": {"epochs": 6, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 3},
    }
    final = bertx.distill(config, show_progress=False)
    assert final["f1"] > 0.5 * teacher_metrics["f1"], (final, teacher_metrics)
    assert bertx.evaluate(tmp_path / "student", dev)["f1"] == pytest.approx(final["f1"])


def test_bad_inputs_stop_before_training(teacher, tiny_bert, tmp_path):
    tmp, train, dev = teacher
    runner = CliRunner()

    def fails(config: dict, message: str):
        result = runner.invoke(app, ["distill", *[f"{k}={json.dumps(v)}" for k, v in flatten(config).items()]])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output, result.output

    base = kd_config(tmp, train, dev, tmp_path / "bad")
    fails({**base, "task": "ner"}, "the teacher is fine-tuned for classification")
    fails({**base, "loss": {"hidden": 1.0, "layer_map": [[1, 7]]}}, "loss.layer_map pair (1, 7) is out of range")
    other_labels = write_toy_classification(tmp_path / "other.tsv", 40, 3, labels=("bad", "good"))
    fails({**base, "data": {**base["data"], "train": str(other_labels)}}, "labels ['bad', 'good'] are not among the teacher's (neg, pos)")
    fails({**base, "teacher": tiny_bert}, "holds no task head")

    # A student encoder with another vocabulary: refused unless asked for explicitly.
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path / "other-vocab"
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}).save_pretrained(folder)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)).save_pretrained(
        folder
    )
    fails({**base, "student": {"name_or_path": str(folder)}}, "the student's tokenizer differs from the teacher's")
    allowed = {**base, "student": {"name_or_path": str(folder), "allow_other_tokenizer": True}, "loss": {"soft": 1.0, "hard": 0.5}}
    assert "accuracy" in bertx.distill(allowed, show_progress=False)


def flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_killed_distillation_resumes_to_the_same_student(teacher, tmp_path):
    tmp, train, dev = teacher

    def config(name):
        return kd_config(tmp, train, dev, tmp_path / name, loss={"soft": 1.0, "hard": 0.5, "hidden": 1.0}, train__epochs=2, train__save_steps=5)

    whole = bertx.distill(config("whole"), show_progress=False)
    kill_after_step("distill", config("killed"), 12)
    resumed = bertx.distill(config("killed"), resume=True, show_progress=False)
    assert resumed["accuracy"] == whole["accuracy"] and resumed["steps"] == whole["steps"] == 30
    assert (tmp_path / "killed/model.safetensors").read_bytes() == (tmp_path / "whole/model.safetensors").read_bytes()
