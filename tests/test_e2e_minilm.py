"""End to end on the real packaged all-MiniLM-L6-v2 and a slice of real SST-2 (skipped, with the
reason, where ../shared/data is absent)."""

import json

import pytest

import bertx
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory):
    train, dev = shared_data("sst2", "train.tsv"), shared_data("sst2", "dev.tsv")
    out = tmp_path_factory.mktemp("minilm") / "run"
    config = {"task": "classification", "output": str(out),
              "data": {"train": str(train), "dev": str(dev), "max_train_examples": 600, "max_dev_examples": 200},
              "train": {"epochs": 1, "save_steps": None}}
    return out, dev, bertx.finetune(config, show_progress=False)


def test_minilm_learns_sst2_slice(minilm_run):
    out, _, metrics = minilm_run
    # 600 sentences, one epoch (19 steps): well above the 50% of chance on the first 200 dev sentences
    assert metrics["accuracy"] > 0.7
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert" and config["hidden_size"] == 384 and config["num_hidden_layers"] == 6
    assert config["id2label"] == {"0": "0", "1": "1"}


def test_minilm_pipeline_and_predictor_agree(minilm_run):
    from transformers import pipeline

    out, _, _ = minilm_run
    texts = ["a warm , funny and moving film .", "a tedious , joyless mess ."]
    ours = bertx.Predictor.load(out).predict(texts)
    theirs = pipeline("text-classification", model=str(out))(texts)
    assert [p["label"] for p in ours] == [t["label"] for t in theirs] == ["1", "0"]
    for p, t in zip(ours, theirs):
        assert p["probs"][t["label"]] == pytest.approx(t["score"], abs=1e-4)
