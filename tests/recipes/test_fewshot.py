"""Few-shot classification on a tiny BERT: the K-per-class sampler and the pair builder (balance,
determinism, no self-pairs), a toy task learnt from 8 examples per class, a folder that evaluates,
predicts, exports and resumes, and the bad inputs as one line each."""

from __future__ import annotations

import json

import pytest

import bertx
from bertx.cli import main
from bertx.data.fewshot import contrastive_pairs, sample_per_class
from bertx.errors import BertxError
from tests.conftest import write_toy_classification

NAMES = ["neg", "pos", "mixed"]


def test_k_per_class_is_balanced_seeded_and_in_file_order():
    labels = [0] * 30 + [1] * 20 + [2] * 10
    a = sample_per_class(labels, 8, seed=3, names=NAMES, source="f")
    assert a == sorted(a) and [sum(labels[i] == c for i in a) for c in range(3)] == [8, 8, 8]
    assert a == sample_per_class(labels, 8, seed=3, names=NAMES, source="f")
    assert a != sample_per_class(labels, 8, seed=4, names=NAMES, source="f")
    with pytest.raises(BertxError, match="--shots 11 but class 'mixed' has only 10 examples"):
        sample_per_class(labels, 11, seed=3, names=NAMES, source="f")


def test_pairs_are_balanced_deterministic_and_never_self():
    labels = [0, 0, 0, 1, 1, 1, 2, 2]
    pairs = contrastive_pairs(labels, rounds=5, seed=1, names=NAMES, source="f")
    assert len(pairs) == 2 * 5 * len(labels)
    assert sum(t for _, _, t in pairs) == len(pairs) / 2  # half positive, half negative
    assert all(i != j for i, j, _ in pairs)
    assert all((labels[i] == labels[j]) == (t == 1.0) for i, j, t in pairs)
    assert pairs == contrastive_pairs(labels, rounds=5, seed=1, names=NAMES, source="f")
    with pytest.raises(BertxError, match="class 'mixed' has one example"):
        contrastive_pairs([0, 0, 1, 1, 2], 2, 1, NAMES, "f")
    with pytest.raises(BertxError, match="at least two classes"):
        contrastive_pairs([0, 0, 0], 2, 1, NAMES, "f")


def config(tiny_bert, train, dev, out, **extra):
    return {
        "output": str(out),
        "model": {"name_or_path": tiny_bert},
        "data": {"train": train, "dev": dev, "max_length": 32},
        "shots": 8,
        "rounds": 20,
        "train": {"lr": 3e-3, "seed": 5, "save_steps": 10},
        **extra,
    }


@pytest.fixture
def files(tmp_path):
    return (str(write_toy_classification(tmp_path / "train.tsv", 200, seed=1)), str(write_toy_classification(tmp_path / "dev.tsv", 80, seed=2)))


@pytest.mark.parametrize("loss", ["cosine", "contrastive"])
def test_a_toy_task_is_learnt_from_eight_per_class(tiny_bert, files, tmp_path, loss):
    out = tmp_path / loss
    final = bertx.fewshot(config(tiny_bert, *files, out, loss=loss), show_progress=False)
    assert final["examples"] == 16 and final["pairs"] == 2 * 20 * 16
    assert final["accuracy"] >= 0.7, final  # chance is 0.5; a random 2-layer encoder, 16 examples
    predictor = bertx.Predictor.load(out)
    assert [p["label"] for p in predictor.predict(["a good film", "the story was dull and sad"])] == ["pos", "neg"]
    assert bertx.evaluate(out, files[1])["accuracy"] == pytest.approx(final["accuracy"])


def test_same_seed_same_model_and_resume_is_exact(tiny_bert, files, tmp_path):
    from safetensors.torch import load_file

    from tests.recipes.killing import kill_after_step

    whole = config(tiny_bert, *files, tmp_path / "whole")
    bertx.fewshot(whole, show_progress=False)
    cut = {**whole, "output": str(tmp_path / "cut")}
    kill_after_step("fewshot", cut, 12)
    bertx.fewshot(cut, resume=True, show_progress=False)
    for name in ("model.safetensors", "sentence_head.safetensors"):
        a, b = load_file(str(tmp_path / "whole" / name)), load_file(str(tmp_path / "cut" / name))
        assert all(a[k].equal(b[k]) for k in a), name


def test_the_folder_exports_and_the_cli_runs(tiny_bert, files, tmp_path):
    pytest.importorskip("onnxruntime")
    from bertx.export.one_model import export

    out = tmp_path / "cli"
    assert (
        main(
            [
                "fewshot",
                "--model",
                tiny_bert,
                "--train",
                files[0],
                "--dev",
                files[1],
                "--shots",
                "8",
                "--rounds",
                "5",
                "--lr",
                "3e-3",
                "--max-length",
                "32",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads((out / "sentence_head.json").read_text())["labels"] == ["neg", "pos"]
    report = export(out, tmp_path / "onnx")
    assert report["agreement"] == 1.0, report
    texts = ["a good film", "dull"]
    assert [p["label"] for p in bertx.Predictor.load(tmp_path / "onnx").predict(texts)] == [
        p["label"] for p in bertx.Predictor.load(out).predict(texts)
    ]
    assert main(["fewshot", "--model", tiny_bert, "--train", files[0], "--shots", "500", "--output", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_end_to_end_stage_trains_encoder_and_head_and_resumes_exactly(tiny_bert, files, tmp_path):
    from safetensors.torch import load_file

    from tests.recipes.killing import kill_after_step

    plain = bertx.fewshot(config(tiny_bert, *files, tmp_path / "plain"), show_progress=False)
    whole = config(tiny_bert, *files, tmp_path / "whole", end_to_end_epochs=3)
    final = bertx.fewshot(whole, show_progress=False)
    assert final["end_to_end_steps"] == 3 * 1 and plain["end_to_end_steps"] == 0  # 16 examples, batch 16
    assert final["accuracy"] >= 0.7, final
    log = [json.loads(line) for line in (tmp_path / "whole/log.jsonl").read_text().splitlines()]
    assert [r["end_to_end_step"] for r in log if r.get("stage") == "end_to_end"][-1] == 3
    a, b = load_file(str(tmp_path / "plain/sentence_head.safetensors")), load_file(str(tmp_path / "whole/sentence_head.safetensors"))
    assert not a["weight"].equal(b["weight"])  # the fitted head moved in the end-to-end stage
    cut = {**whole, "output": str(tmp_path / "cut")}
    kill_after_step("fewshot", cut, 12)
    bertx.fewshot(cut, resume=True, show_progress=False)
    for name in ("model.safetensors", "sentence_head.safetensors"):
        x, y = load_file(str(tmp_path / "whole" / name)), load_file(str(tmp_path / "cut" / name))
        assert all(x[k].equal(y[k]) for k in x), name


def test_the_end_to_end_stage_is_on_by_default_from_sixteen_per_class(tiny_bert, files, tmp_path):
    from bertx.config.fewshot import END_TO_END_FROM, end_to_end_epochs

    assert end_to_end_epochs(None, END_TO_END_FROM - 1) == 0 and end_to_end_epochs(None, END_TO_END_FROM) == 2
    assert end_to_end_epochs(0, 64) == 0 and end_to_end_epochs(1.5, 4) == 1.5  # as configured, whatever K
    final = bertx.fewshot(config(tiny_bert, *files, tmp_path / "k16", shots=16, rounds=2), show_progress=False)
    assert final["end_to_end_steps"] == 2 * 2  # 32 examples, batch 16, 2 epochs
