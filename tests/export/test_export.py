"""ONNX export of every task kind on tiny models: the export checks itself, predicts and evaluates like the
PyTorch folder, fails loudly below the agreement threshold, and never overwrites what it should not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bertx
from bertx.cli import main
from bertx.export.one_model import export
from bertx.errors import BertxError
from tests.conftest import tiny_config, write_toy_classification
from tests.recipes.test_token_tasks import config as token_config, write_conll, write_qa

pytest.importorskip("onnxruntime")


def _train(tiny_bert, root: Path, task: str) -> Path:
    out = root / f"run-{task}"
    if task in ("ner", "qa"):
        writer, suffix = (write_conll, "txt") if task == "ner" else (write_qa, "jsonl")
        train, dev = writer(root / f"train.{suffix}", 120, 1), writer(root / f"dev.{suffix}", 30, 2)
        extra = {"max_query_length": 8, "doc_stride": 8} if task == "qa" else {}
        config = token_config(tiny_bert, task, train, dev, out, **extra)
        config["train"]["epochs"] = 4
    else:
        train = write_toy_classification(root / f"train-{task}.tsv", 160, seed=1, pair=task == "pair-classification")
        dev = write_toy_classification(root / f"dev-{task}.tsv", 40, seed=2, pair=task == "pair-classification")
        if task in ("regression", "multilabel"):  # labels of the right kind from the toy sentiment
            for path in (train, dev):
                text = path.read_text().replace("\tpos\n", "\t0.9\n" if task == "regression" else "\tpos,good\n")
                path.write_text(text.replace("\tneg\n", "\t0.1\n" if task == "regression" else "\tneg\n"))
        config = tiny_config(tiny_bert, str(train), str(dev), str(out), epochs=2)
        config["task"] = task
    bertx.finetune(config, show_progress=False)
    return out


@pytest.fixture(scope="module")
def runs(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("export-runs")
    return root, {task: _train(tiny_bert, root, task) for task in ("classification", "pair-classification", "regression", "multilabel", "ner", "qa")}


@pytest.mark.parametrize("task", ["classification", "pair-classification", "regression", "multilabel", "ner", "qa"])
@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_every_kind_exports_and_predicts_like_pytorch(runs, tmp_path, task, quantize):
    _, folders = runs
    run = folders[task]
    target = tmp_path / "export"
    report = export(run, target, quantize=quantize, min_agreement=0.0)
    assert {p.name for p in target.iterdir()} >= {"model.onnx", "config.json", "bertx_run.yaml", "export_report.json"}
    assert json.loads((target / "export_report.json").read_text()) == report
    assert report["sample"]["examples"] > 0 and report["metrics"]["pytorch"] and report["metrics"]["onnx"]
    if quantize == "none":  # fp32: the same function up to float rounding
        assert report["agreement"] == 1.0 and report["max_abs_logit_diff"] < 1e-4, report
    dev = json.loads(json.dumps(report["sample"]["source"]))
    torch_metrics = bertx.evaluate(run, dev)
    onnx_metrics = bertx.evaluate(target, dev)
    main_metric = {"regression": "pearson", "multilabel": "micro_f1", "ner": "f1", "qa": "f1"}.get(task, "accuracy")
    tolerance = 1e-4 if quantize == "none" else 0.15  # int8 on a random-ish 32-wide model is coarse
    assert onnx_metrics[main_metric] == pytest.approx(torch_metrics[main_metric], abs=tolerance)


def test_export_predicts_through_the_cli_and_api_with_the_same_records(runs, tmp_path, capsys):
    root, folders = runs
    run, target = folders["classification"], tmp_path / "export"
    assert main(["export", str(run), "--output", str(target)]) == 0
    assert "agreement with PyTorch: 100.00%" in capsys.readouterr().out
    texts = ["a good film", "a bad dull story", "great"]
    a = bertx.Predictor.load(run).predict(texts)
    b = bertx.Predictor.load(target).predict(texts)
    assert [x["label"] for x in a] == [x["label"] for x in b]
    assert np.allclose([x["probs"]["pos"] for x in a], [x["probs"]["pos"] for x in b], atol=1e-5)
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n")
    for folder, name in ((run, "torch.jsonl"), (target, "onnx.jsonl")):
        assert main(["predict", str(folder), "--input", str(source), "--output", str(tmp_path / name)]) == 0
    read = lambda name: [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]  # noqa: E731
    assert [r["label"] for r in read("torch.jsonl")] == [r["label"] for r in read("onnx.jsonl")]
    # entities and answers through their own predictors
    ner_export = tmp_path / "ner-export"
    export(folders["ner"], ner_export)
    sentence = ["Anna was good and the film great"]
    got, expected = (bertx.EntityPredictor.load(folder).predict(sentence)[0] for folder in (ner_export, folders["ner"]))
    assert [{k: e[k] for k in ("type", "start", "end")} for e in got] == [{k: e[k] for k in ("type", "start", "end")} for e in expected]
    assert [e["score"] for e in got] == pytest.approx([e["score"] for e in expected], abs=1e-5)
    qa_export = tmp_path / "qa-export"
    export(folders["qa"], qa_export)
    question, context = ["which is good"], ["the film was superb and dark"]
    got, expected = (bertx.AnswerPredictor.load(folder).predict(question, context)[0] for folder in (qa_export, folders["qa"]))
    assert (got["answer"], got["start"]) == (expected["answer"], expected["start"])


def test_the_default_gate_is_the_task_metric_and_agreement_gates_only_when_asked(runs, tmp_path, monkeypatch):
    """Issue 26 (11): many near-ties flip labels without changing the score; the default gate is the
    main metric on the labelled sample (0.5 points), raw agreement only with --min-agreement."""
    _, folders = runs
    import bertx.export.parity as parity_module

    real = parity_module.parity

    def flips_without_loss(*args, **kwargs):
        return {**real(*args, **kwargs), "agreement": 0.9}

    monkeypatch.setattr(parity_module, "parity", flips_without_loss)
    report = export(folders["classification"], tmp_path / "ok")
    assert report["agreement"] == 0.9 and report["gate"]["min_agreement"] is None
    with pytest.raises(BertxError, match=r"agrees with PyTorch on 90.00% .* 9.00 points below --min-agreement 99%"):
        export(folders["classification"], tmp_path / "bad", min_agreement=0.99)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad*"))

    def loses_a_point(*args, **kwargs):
        found = real(*args, **kwargs)
        onnx = {k: (v - 0.02 if isinstance(v, float) else v) for k, v in found["metrics"]["onnx"].items()}
        return {**found, "metrics": {**found["metrics"], "onnx": onnx}}

    monkeypatch.setattr(parity_module, "parity", loses_a_point)
    with pytest.raises(BertxError, match=r"accuracy on the sample is .* 2.00 points below PyTorch's .* --max-metric-drop 0.5"):
        export(folders["classification"], tmp_path / "worse")
    assert not (tmp_path / "worse").exists() and not list(tmp_path.glob(".worse*"))


def test_export_refuses_to_overwrite_what_is_not_an_export(runs, tmp_path):
    _, folders = runs
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(BertxError, match="not empty"):
        export(folders["classification"], mine)
    with pytest.raises(BertxError, match="not a bertx run folder"):
        export(folders["classification"], mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(BertxError, match="already an ONNX export"):
        target = tmp_path / "e"
        export(folders["classification"], target)
        export(target, tmp_path / "e2")


def test_a_distilled_student_and_a_multitask_export_export_too(runs, tiny_bert, tmp_path):
    """Any bertx output: a student from `bertx distill` and a task written by `bertx multitask-export`."""
    root, folders = runs
    train, dev = str(root / "train-classification.tsv"), str(root / "dev-classification.tsv")
    student = tmp_path / "student"
    bertx.distill(
        {
            "teacher": str(folders["classification"]),
            "output": str(student),
            "baseline": False,
            "data": {"train": train, "dev": dev, "max_length": 32},
            "student": {"layers": 1},
            "train": {"epochs": 1, "batch_size": 16, "save_steps": None},
        },
        show_progress=False,
    )
    bertx.multitask(
        {
            "output": str(tmp_path / "mt"),
            "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
            "tasks": [{"name": "sent", "kind": "classification", "train": train, "dev": dev, "data": {"max_length": 32}}],
            "train": {"epochs": 1, "batch_size": 16, "save_steps": None},
        },
        show_progress=False,
    )
    task = bertx.export_task(tmp_path / "mt", "sent", tmp_path / "mt-sent")
    for source in (student, task):
        report = export(source, tmp_path / f"{source.name}-onnx")
        assert report["agreement"] == 1.0 and report["max_abs_logit_diff"] < 1e-4
        assert report["metrics"]["onnx"]["accuracy"] == pytest.approx(report["metrics"]["pytorch"]["accuracy"])


def test_a_run_folder_travels_and_missing_data_is_said(tiny_bert, tmp_path, monkeypatch, capsys):
    """Issue 26 (7): a run trained with relative paths, exported from another directory, checks on its own
    dev file; when that file is gone, a warning says what the check used instead (never a silent fallback)."""
    import shutil

    from bertx.cli import main
    from tests.conftest import write_toy_classification

    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    write_toy_classification(home / "data" / "train.tsv", 96, seed=1)
    write_toy_classification(home / "data" / "dev.tsv", 32, seed=2)
    monkeypatch.chdir(home)
    assert (
        main(
            [
                "finetune",
                "--model",
                tiny_bert,
                "--train",
                "data/train.tsv",
                "--dev",
                "data/dev.tsv",
                "--output",
                "run",
                "--epochs",
                "1",
                "--max-length",
                "32",
                "--show-examples",
                "0",
            ]
        )
        == 0
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["export", str(home / "run"), "--output", "e1", "--quantize", "int8"]) == 0
    report = json.loads((elsewhere / "e1" / "export_report.json").read_text())
    assert report["sample"]["source"] == str(home / "data" / "dev.tsv") and "warning" not in capsys.readouterr().err
    shutil.rmtree(home / "data")
    assert main(["export", str(home / "run"), "--output", "e2", "--quantize", "int8"]) == 0
    err = capsys.readouterr().err
    assert f"warning: the run's dev file {home / 'data' / 'dev.tsv'} is not there; the parity check uses sentences made" in err
    assert f"warning: the run's training file {home / 'data' / 'train.tsv'} is not there; int8 calibration" in err


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_an_openvino_export_predicts_like_pytorch_and_serves(runs, tmp_path, task, monkeypatch):
    pytest.importorskip("openvino")
    from fastapi.testclient import TestClient

    from bertx.serve.app import create_app
    from bertx.serve.main import load_models

    monkeypatch.setenv("BERTX_OPENVINO_PRECISION", "f32")  # the parity below is fp32's, whatever the CPU prefers
    _, folders = runs
    target = tmp_path / "ov"
    report = export(folders[task], target, format="openvino")
    assert (target / "openvino_model.xml").is_file() and (target / "openvino_model.bin").is_file()
    assert not list(target.glob("*.onnx"))  # the ONNX graph it was converted from is not left behind
    assert report["format"] == "openvino" and report["openvino_precision"] == "f32"
    assert report["agreement"] == 1.0 and report["max_abs_logit_diff"] < 1e-4, report
    dev = report["sample"]["source"]
    main_metric = "f1" if task == "ner" else "accuracy"
    assert bertx.evaluate(target, dev)[main_metric] == pytest.approx(bertx.evaluate(folders[task], dev)[main_metric], abs=1e-4)
    with TestClient(create_app(load_models({"m": str(target)}))) as client:
        assert client.get("/v1/models").json()["models"][0]["runtime"] == "openvino"
        answer = client.post("/v1/models/m/predict", json={"inputs": ["a good film", "it was dull"]})
        assert answer.status_code == 200 and len(answer.json()["outputs"]) == 2
    with pytest.raises(BertxError, match="--format openvino --quantize int8: not offered"):
        export(folders[task], tmp_path / "ov8", quantize="int8", format="openvino")
    with pytest.raises(BertxError, match="--format 'tflite'"):
        export(folders[task], tmp_path / "tfl", format="tflite")


def test_the_qa_calibration_counts_only_positions_a_span_could_start_or_end_at():
    from bertx.export.quantize import mean_squared, span_error

    reference = np.array([[8.0, 0.0, -3.0, -3.0, -1e4], [0.0, 6.0, 5.5, -2.0, -1.0]])
    far = reference.copy()
    far[0, 2] += 2.0  # a position the fp32 model gives ~0 probability
    near = reference.copy()
    near[1, 2] += 0.6  # the runner-up boundary: now nearly tied with the best
    assert mean_squared([reference], [far]) > mean_squared([reference], [near])  # what plain MSE ranks
    assert span_error([reference], [near]) > 20 * span_error([reference], [far])  # what decides spans
    assert span_error([reference], [reference + 5.0]) == pytest.approx(0.0, abs=1e-12)  # a shift moves no span
