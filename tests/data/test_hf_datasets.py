"""Data by its usual name: a saved `datasets` dataset trains like a file (class ids read as their names),
NER sequences of class ids become tags, and references that cannot be read are one line."""

from __future__ import annotations

import json
import random

import pytest

from bertx.cli import main
from bertx.data.hf_datasets import materialise
from bertx.errors import BertxError
from tests.conftest import toy_sentence


@pytest.fixture
def saved(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "cache"))
    rng = random.Random(0)
    labels = [rng.random() < 0.5 for _ in range(200)]
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    rows = {"sentence": [toy_sentence(rng, y) for y in labels], "label": [int(y) for y in labels]}
    for split, part in (("train", slice(0, 160)), ("validation", slice(160, 200))):
        datasets.Dataset.from_dict({k: v[part] for k, v in rows.items()}, features=features).save_to_disk(tmp_path / "toy" / split)
    return tmp_path / "toy"


def test_a_saved_dataset_trains_like_a_file(saved, tiny_bert, tmp_path):
    first = json.loads(open(materialise(str(saved / "train"))).readline())
    assert first["label"] in ("neg", "pos")
    assert (
        main(
            [
                "finetune",
                "--model",
                tiny_bert,
                "--train",
                str(saved / "train"),
                "--dev",
                str(saved / "validation"),
                "--epochs",
                "1",
                "--output",
                str(tmp_path / "run"),
                "model.freeze_word_embeddings=false",
                "data.max_length=32",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "run/metrics.json").read_text())["train_examples"] == 160


def test_ner_tag_ids_become_tag_names(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "cache"))
    features = datasets.Features(
        {"tokens": datasets.Sequence(datasets.Value("string")), "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"]))}
    )
    datasets.Dataset.from_dict({"tokens": [["Ada", "Lovelace", "wrote"]], "ner_tags": [[1, 2, 0]]}, features=features).save_to_disk(tmp_path / "ner")
    row = json.loads(open(materialise(str(tmp_path / "ner"))).readline())
    assert row["ner_tags"] == ["B-PER", "I-PER", "O"]


def test_unreadable_references_are_one_line(saved, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BertxError, match="write hf:NAME:SPLIT"):
        materialise("hf:glue")
    with pytest.raises(BertxError, match="a DatasetDict|not a readable"):
        import datasets

        datasets.DatasetDict({"train": datasets.load_from_disk(str(saved / "train"))}).save_to_disk(saved.parent / "dict")
        materialise(str(saved.parent / "dict" / "train" / ".."))
    with pytest.raises(BertxError, match="hf:bertx-no-such-dataset:train: cannot load the dataset"):
        materialise("hf:bertx-no-such-dataset:train")
