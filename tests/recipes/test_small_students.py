"""Non-transformer students (BiLSTM, CNN, bag of embeddings) distilled from a tiny teacher: they learn the
toy task, reload to identical predictions, evaluate and predict like any bertx model, and the combinations
they cannot take are refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import bertx
from tests.conftest import count_teacher_passes
from bertx.cli import main
from bertx.errors import BertxError
from bertx.models.small_students import load_small_student, project
from tests.recipes.test_distill import kd_config, teacher  # noqa: F401  (the module-scoped tiny teacher)


@pytest.mark.parametrize("kind", ["bilstm", "cnn", "bag"])
def test_each_kind_learns_reloads_and_predicts(teacher, tmp_path, kind):  # noqa: F811
    tmp, train, dev = teacher
    out = tmp_path / kind
    config = kd_config(tmp, train, dev, out, student={"kind": kind, "hidden": 32}, baseline=True)
    config["train"]["epochs"] = 6
    final = bertx.distill(config, show_progress=False)
    assert final["accuracy"] > 0.85, final  # the toy sentiment is separable by its words
    assert json.loads((out / "student.json").read_text())["kind"] == kind
    assert "student without teacher" in final["report"]["models"]
    texts = ["a good film", "the story was dull and sad"]
    a = bertx.Predictor.load(out).predict(texts)
    b = bertx.Predictor.load(out).predict(texts)
    assert a == b and [x["label"] for x in a] == ["pos", "neg"]
    again = bertx.evaluate(out, dev)
    assert again["accuracy"] == pytest.approx(final["accuracy"])
    assert main(["evaluate", str(out), "--data", dev, "--json"]) == 0


def test_the_state_round_trips_and_padding_is_ignored(teacher, tmp_path):  # noqa: F811
    tmp, train, dev = teacher
    out = tmp_path / "s"
    bertx.distill(kd_config(tmp, train, dev, out, student={"kind": "bilstm", "hidden": 16, "layers": 2}), show_progress=False)
    student = load_small_student(out)
    ids = torch.tensor([[2, 8, 9, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    same = load_small_student(out)
    assert torch.equal(student(ids, mask).logits, same(ids, mask).logits)
    # padding is ignored: the same sentence without its padding gives the same logits
    assert torch.allclose(student(ids[:, :4], mask[:, :4]).logits, student(ids, mask).logits, atol=1e-6)


def test_embedding_projection_keeps_the_largest_directions():
    table = torch.randn(50, 8) @ torch.diag(torch.tensor([10.0, 5, 1, 1, 1, 1, 1, 1]))
    reduced = project(table, 2)
    assert reduced.shape == (50, 2)
    assert torch.equal(project(table, 8), table)


def test_projections_of_each_width_keep_the_directions_in_order():
    torch.manual_seed(0)
    table = torch.randn(400, 16) @ torch.diag(torch.linspace(8, 1, 16))
    centred = table - table.mean(0)
    errors = []
    for width in (2, 4, 8, 12):
        reduced = project(table, width)
        variances = reduced.var(0)
        assert reduced.shape == (400, width) and bool((variances[:-1] >= variances[1:] * 0.99).all())
        assert float(reduced.norm(dim=1).mean()) == pytest.approx(float(table.norm(dim=1).mean()), rel=1e-4)  # the teacher's scale
        basis = torch.linalg.lstsq(reduced, centred).solution  # how much of the table the width can explain
        errors.append(float((reduced @ basis - centred).norm()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 2


def test_a_cnn_student_defaults_to_a_narrow_projected_embedding(teacher):  # noqa: F811
    from bertx.models.small_students import DEFAULT_EMBEDDING, build_small_student
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(teacher[0] / "model")
    cnn = build_small_student("cnn", model, None, None, None, [3], 0.0, True, 0)
    bilstm = build_small_student("bilstm", model, None, 8, None, [3], 0.0, True, 0)
    width = model.config.hidden_size
    assert cnn.config.embedding_dim == min(DEFAULT_EMBEDDING["cnn"], width) and bilstm.config.embedding_dim == width
    assert build_small_student("cnn", model, 8, None, None, [3], 0.0, True, 0).config.embedding_dim == 8


def test_an_int8_student_export_decides_as_the_student(teacher, tmp_path):  # noqa: F811
    pytest.importorskip("onnxruntime")
    from bertx.export.one_model import export

    tmp, train, dev = teacher
    out = tmp_path / "cnn"
    bertx.distill(kd_config(tmp, train, dev, out, student={"kind": "cnn", "hidden": 16}), show_progress=False)
    report = export(out, tmp_path / "cnn-int8", quantize="int8")
    assert report["quantize"] == "int8" and report["agreement"] >= 0.95, report
    texts = ["a good film", "the story was dull and sad", "fine", "awful plot"]
    assert [p["label"] for p in bertx.Predictor.load(tmp_path / "cnn-int8").predict(texts)] == [
        p["label"] for p in bertx.Predictor.load(out).predict(texts)
    ]


@pytest.mark.parametrize(
    "change,message",
    [
        ({"loss": {"hidden": 1.0}}, "has no transformer layers to match"),
        ({"student": {"kind": "cnn", "heads": 2}}, "apply to transformer students only"),
    ],
)
def test_refused_combinations(teacher, tmp_path, change, message):  # noqa: F811
    tmp, train, dev = teacher
    config = kd_config(tmp, train, dev, tmp_path / "x", student={"kind": "bilstm"})
    for key, value in change.items():
        config[key] = {**config.get(key, {}), **value}
    with pytest.raises(BertxError, match=message):
        bertx.distill(config, show_progress=False)
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def ner_teacher(tiny_bert, tmp_path_factory):
    from tests.recipes.test_token_tasks import config as token_config, write_conll

    tmp = tmp_path_factory.mktemp("ner-teacher")
    train, dev = write_conll(tmp / "train.txt", 300, 1), write_conll(tmp / "dev.txt", 60, 2)
    run = token_config(tiny_bert, "ner", train, dev, tmp / "ner")
    teacher_f1 = bertx.finetune(run, show_progress=False)["f1"]
    return tmp, train, dev, teacher_f1


@pytest.mark.parametrize("kind", ["bilstm", "cnn"])
def test_a_tagger_learns_ner_reloads_and_exports(ner_teacher, tmp_path, kind):
    tmp, train, dev, teacher_f1 = ner_teacher
    out = tmp_path / kind
    final = bertx.distill(
        {
            "teacher": str(tmp / "ner"),
            "output": str(out),
            "baseline": True,
            "student": {"kind": kind, "hidden": 32},
            "data": {"train": train, "dev": dev, "max_length": 32},
            "train": {"epochs": 20, "batch_size": 16, "lr": 5e-3, "save_steps": None, "seed": 3},
        },
        show_progress=False,
    )
    assert final["f1"] > 0.7 * teacher_f1, (final, teacher_f1)
    student = json.loads((out / "student.json").read_text())
    assert student["per_token"] and student["kind"] == kind
    assert bertx.evaluate(out, dev)["f1"] == pytest.approx(final["f1"])
    assert "student without teacher" in final["report"]["models"]
    words = next(b for b in Path(dev).read_text().split("\n\n") if "B-" in b and "DOCSTART" not in b)
    sentence = " ".join(line.split()[0] for line in words.splitlines() if line.strip())
    tagged = bertx.EntityPredictor.load(out).predict([sentence])
    assert tagged[0] and tagged == bertx.EntityPredictor.load(out).predict([sentence])  # finds the entities, twice alike
    if kind == "bilstm":
        pytest.importorskip("onnxruntime")
        from bertx.export.one_model import export

        report = export(out, tmp_path / "onnx")
        assert report["agreement"] >= 0.99, report
        exported = bertx.EntityPredictor.load(tmp_path / "onnx").predict([sentence])
        # The same entities; scores to float32 noise (ONNX Runtime's kernels differ from PyTorch's by CPU).
        assert [[{k: v for k, v in e.items() if k != "score"} for e in s] for s in exported] == [
            [{k: v for k, v in e.items() if k != "score"} for e in s] for s in tagged
        ]
        assert [e["score"] for e in exported[0]] == pytest.approx([e["score"] for e in tagged[0]], abs=1e-5)


def test_a_tagger_learns_from_unlabelled_sentences_the_teacher_tags(ner_teacher, tmp_path, monkeypatch):
    """Unlabelled sentences join a NER student's training data with the teacher's per-token outputs as soft
    targets and its most probable tag (at each word's first piece) as the hard one."""
    tmp, train, dev, teacher_f1 = ner_teacher
    sentences = [
        " ".join(line.split()[0] for line in block.splitlines() if line.strip())
        for block in Path(dev).read_text().split("\n\n")
        if block.strip() and "DOCSTART" not in block
    ]
    text = tmp_path / "text.txt"
    text.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    labelled = count_teacher_passes(monkeypatch, "token_outputs")
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "cache"))  # an empty teacher store: every text is labelled here
    out = tmp_path / "with-text"
    final = bertx.distill(
        {
            "teacher": str(tmp / "ner"),
            "output": str(out),
            "baseline": False,
            "unlabelled": [str(text)],
            "student": {"kind": "bilstm", "hidden": 32},
            "data": {"train": train, "dev": dev, "max_length": 32},
            "train": {"epochs": 10, "batch_size": 16, "lr": 5e-3, "save_steps": None, "seed": 3},
        },
        show_progress=False,
    )
    assert labelled[1] >= len(sentences)  # the teacher labelled every unlabelled sentence (its windows), after the training file
    assert final["steps"] == 10 * -(-(labelled[0] + labelled[1]) // 16)  # the unlabelled windows were trained on
    assert final["f1"] > 0.6 * teacher_f1, (final, teacher_f1)


def test_a_bag_cannot_tag_and_qa_is_refused(ner_teacher, tiny_bert, tmp_path):
    from tests.recipes.test_token_tasks import config as token_config, write_qa

    tmp, train, dev, _ = ner_teacher
    with pytest.raises(BertxError, match="cannot tag tokens"):
        bertx.distill(
            {"teacher": str(tmp / "ner"), "output": str(tmp_path / "s"), "data": {"train": train}, "student": {"kind": "bag"}}, show_progress=False
        )
    with pytest.raises(BertxError, match="augmented distillation text works for sequence tasks"):
        bertx.distill(
            {"teacher": str(tmp / "ner"), "output": str(tmp_path / "s"), "data": {"train": train}, "student": {"kind": "bilstm"}, "augment": 2},
            show_progress=False,
        )
    qa = write_qa(tmp_path / "qa.jsonl", 40, 1)
    run = token_config(tiny_bert, "qa", qa, None, tmp_path / "qa", max_query_length=8, doc_stride=8)
    run["train"]["epochs"] = 1
    bertx.finetune(run, show_progress=False)
    with pytest.raises(BertxError, match="the teacher is a qa model"):
        bertx.distill(
            {"teacher": str(tmp_path / "qa"), "output": str(tmp_path / "s"), "data": {"train": qa}, "student": {"kind": "bilstm"}},
            show_progress=False,
        )
    assert not (tmp_path / "s").exists()


def test_the_cli_names_a_student_kind(teacher, tmp_path):  # noqa: F811
    tmp, train, dev = teacher
    out = tmp_path / "cli-cnn"
    code = main(
        [
            "distill",
            "--teacher",
            str(tmp / "model"),
            "--train",
            train,
            "--dev",
            dev,
            "--student",
            "cnn",
            "--student-hidden",
            "16",
            "--epochs",
            "2",
            "--no-baseline",
            "--output",
            str(out),
            "--max-length",
            "32",
        ]
    )
    assert code == 0 and json.loads((out / "student.json").read_text())["kind"] == "cnn"


@pytest.mark.parametrize("kind", ["bilstm", "cnn", "bag"])
def test_students_export_to_onnx(teacher, tmp_path, kind):  # noqa: F811
    pytest.importorskip("onnxruntime")
    from bertx.export.one_model import export

    tmp, train, dev = teacher
    out = tmp_path / kind
    bertx.distill(kd_config(tmp, train, dev, out, student={"kind": kind, "hidden": 16}), show_progress=False)
    report = export(out, tmp_path / f"{kind}-onnx")
    assert report["agreement"] == 1.0 and report["max_abs_logit_diff"] < 1e-4, report
    texts = ["a good film", "the story was dull and sad", "fine"]
    assert [p["label"] for p in bertx.Predictor.load(tmp_path / f"{kind}-onnx").predict(texts)] == [
        p["label"] for p in bertx.Predictor.load(out).predict(texts)
    ]


def test_augmented_transfer_set_is_labelled_by_the_teacher_once(teacher, tmp_path, monkeypatch):  # noqa: F811
    tmp, train, dev = teacher
    sizes = count_teacher_passes(monkeypatch)
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "cache"))  # an empty teacher store: every text is labelled here
    out = tmp_path / "aug"
    final = bertx.distill(kd_config(tmp, train, dev, out, student={"kind": "bag", "hidden": 16}, augment=2), show_progress=False)
    assert sizes == [240, 480]  # the training set, then its 2 x 240 variants: each labelled once
    assert final["unlabelled_examples"] == 480


def test_a_student_is_served(teacher, tmp_path):  # noqa: F811
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bertx.serve.app import create_app
    from bertx.serve.main import load_models

    tmp, train, dev = teacher
    out = tmp_path / "served"
    bertx.distill(kd_config(tmp, train, dev, out, student={"kind": "cnn", "hidden": 16}), show_progress=False)
    with TestClient(create_app(load_models({"cnn": str(out)}))) as client:
        answer = client.post("/v1/models/cnn/predict", json={"inputs": ["a good film"]})
        assert answer.status_code == 200 and answer.json()["outputs"][0]["label"] in ("pos", "neg")


@pytest.mark.parametrize("task", ["regression", "pair-classification", "multilabel"])
def test_other_sequence_kinds(tiny_bert, tmp_path, task):
    from tests.export.test_export import _train

    run = _train(tiny_bert, tmp_path, task)
    suffix = {"pair-classification": "pair-classification"}.get(task, task)
    train, dev = tmp_path / f"train-{suffix}.tsv", tmp_path / f"dev-{suffix}.tsv"
    out = tmp_path / "student"
    final = bertx.distill(
        {
            "teacher": str(run),
            "output": str(out),
            "baseline": False,
            "student": {"kind": "bilstm", "hidden": 16},
            "data": {"train": str(train), "dev": str(dev), "max_length": 32},
            "train": {"epochs": 2, "batch_size": 16, "save_steps": None},
        },
        show_progress=False,
    )
    key = {"regression": "pearson", "multilabel": "micro_f1"}.get(task, "accuracy")
    assert key in final
    pairs = ["a story"] if task == "pair-classification" else None
    record = bertx.Predictor.load(out).predict(["a good film"], pairs)[0]
    assert ("score" if task == "regression" else "labels" if task == "multilabel" else "label") in record


def test_a_student_saved_before_the_shared_encoder_still_loads(tmp_path):
    """Folders written before the BiLSTM/CNN moved under `body` (keys embeddings.*, encoder.*) load unchanged."""
    from safetensors.torch import load_file, save_file

    from bertx.models.small_students import SequenceStudent, SmallStudentConfig

    config = SmallStudentConfig("bilstm", 50, 8, 6, 1, [3], 0.0, 0, {0: "neg", 1: "pos"}, "single_label_classification")
    student = SequenceStudent(config).eval()
    student.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    save_file({k.removeprefix("body."): v for k, v in weights.items()}, str(tmp_path / "model.safetensors"))
    assert "embeddings.weight" in load_file(str(tmp_path / "model.safetensors"))
    ids = torch.tensor([[2, 7, 9, 3]])
    assert torch.equal(load_small_student(tmp_path)(ids).logits, student(ids).logits)
