"""The fine-tuning recipe on a tiny random BERT: it learns, saves an HF folder, repeats exactly."""

import json

import pytest

import bertx
from bertx.errors import BertxError
from tests.conftest import tiny_config, write_toy_classification


def test_learns_and_saves_hf_folder(tiny_bert, toy_data, tmp_path):
    train, dev = toy_data
    out = tmp_path / "run"
    metrics = bertx.finetune(tiny_config(tiny_bert, train, dev, str(out)), show_progress=False)
    assert metrics["accuracy"] > 0.9  # chance is 0.5
    assert {"macro_f1", "mcc", "f1"} <= set(metrics)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "bertx_run.yaml", "metrics.json", "log.jsonl"):
        assert (out / name).is_file(), name

    from transformers import AutoModelForSequenceClassification, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "neg", 1: "pos"} and model.config.label2id == {"neg": 0, "pos": 1}
    classify = pipeline("text-classification", model=str(out))
    assert classify("great superb lovely film")[0]["label"] == "pos"
    assert classify("awful dull sad film")[0]["label"] == "neg"

    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "start" and log[-1]["event"] == "end"
    assert sum(r["event"] == "eval" for r in log) == 3  # one per epoch

    predictor = bertx.Predictor.load(out)
    preds = predictor.predict(["happy bright story", "cold dark plot"])
    assert [p["label"] for p in preds] == ["pos", "neg"]
    assert all(abs(sum(p["probs"].values()) - 1) < 1e-5 for p in preds)
    assert bertx.evaluate(out, dev)["accuracy"] == pytest.approx(metrics["accuracy"])
    fast = bertx.Predictor.load(out, bf16=True).predict(["happy bright story", "cold dark plot"])
    assert [p["label"] for p in fast] == ["pos", "neg"]
    assert fast[0]["probs"]["pos"] == pytest.approx(preds[0]["probs"]["pos"], abs=0.05)


def test_same_seed_same_result(tiny_bert, toy_data, tmp_path):
    train, dev = toy_data
    runs = [bertx.finetune(tiny_config(tiny_bert, train, dev, str(tmp_path / f"r{i}"), epochs=1), show_progress=False) for i in range(2)]
    assert runs[0]["accuracy"] == runs[1]["accuracy"] and runs[0]["mcc"] == runs[1]["mcc"]
    a = (tmp_path / "r0/model.safetensors").read_bytes()
    assert a == (tmp_path / "r1/model.safetensors").read_bytes()


def test_pair_regression_and_multilabel(tiny_bert, tmp_path):
    pair = write_toy_classification(tmp_path / "pair.tsv", 60, seed=3, pair=True)
    m = bertx.finetune(
        {**tiny_config(tiny_bert, str(pair), str(pair), str(tmp_path / "p"), epochs=1), "task": "pair-classification"}, show_progress=False
    )
    assert "accuracy" in m

    lines = ["sentence1\tsentence2\tlabel"] + [f"good film {i % 5}\tbad plot\t{(i % 5) * 1.25}" for i in range(40)]
    (tmp_path / "sts.tsv").write_text("\n".join(lines) + "\n")
    m = bertx.finetune(
        {**tiny_config(tiny_bert, str(tmp_path / "sts.tsv"), str(tmp_path / "sts.tsv"), str(tmp_path / "r"), epochs=1), "task": "regression"},
        show_progress=False,
    )
    assert {"pearson", "spearman"} <= set(m)
    pred = bertx.Predictor.load(tmp_path / "r").predict(["good film"], ["bad plot"])
    assert isinstance(pred[0]["score"], float)

    rows = [
        {"text": "good great", "label": ["pos"]},
        {"text": "bad sad", "label": ["neg"]},
        {"text": "good bad", "label": ["pos", "neg"]},
        {"text": "the film", "label": []},
    ] * 10
    (tmp_path / "ml.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = bertx.finetune(
        {**tiny_config(tiny_bert, str(tmp_path / "ml.jsonl"), str(tmp_path / "ml.jsonl"), str(tmp_path / "m"), epochs=1), "task": "multilabel"},
        show_progress=False,
    )
    assert {"micro_f1", "macro_f1"} <= set(m)
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(tmp_path / "m").problem_type == "multi_label_classification"


def test_early_stopping_and_eval_steps(tiny_bert, toy_data, tmp_path):
    train, dev = toy_data
    cfg = tiny_config(
        tiny_bert, train, dev, str(tmp_path / "e"), epochs=20, eval_steps=3, early_stopping_patience=2, lr=1e-9
    )  # a learning rate this small never improves: stops after 1 + 2 evaluations
    m = bertx.finetune(cfg, show_progress=False)
    assert m["stopped_early"] and m["steps"] == 9


def test_output_folder_holding_another_run(tiny_bert, toy_data, tmp_path):
    train, dev = toy_data
    cfg = tiny_config(tiny_bert, train, dev, str(tmp_path / "o"), epochs=1)
    bertx.finetune(cfg, show_progress=False)
    before = (tmp_path / "o/model.safetensors").read_bytes()
    with pytest.raises(BertxError, match="holds another run"):
        bertx.finetune(cfg, show_progress=False)
    assert (tmp_path / "o/model.safetensors").read_bytes() == before  # nothing trained is lost
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk/notes.txt").write_text("mine")
    with pytest.raises(BertxError, match="not empty"):
        bertx.finetune({**cfg, "output": str(tmp_path / "junk")}, show_progress=False)


def test_unseen_dev_label_stops_before_training(tiny_bert, toy_data, tmp_path):
    train, _ = toy_data
    dev = write_toy_classification(tmp_path / "dev3.tsv", 10, seed=5, labels=("neg", "meh"))
    with pytest.raises(BertxError, match=r"dev3.tsv:\d+: label 'meh' was never seen in training"):
        bertx.finetune(tiny_config(tiny_bert, train, str(dev), str(tmp_path / "u")), show_progress=False)


def test_model_folder_must_be_a_bert_encoder(toy_data, tmp_path):
    train, dev = toy_data
    folder = tmp_path / "gpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(BertxError, match=r"config.json: model_type 'gpt2' is not a BERT-family encoder"):
        bertx.finetune(tiny_config(str(folder), train, dev, str(tmp_path / "g")), show_progress=False)
    with pytest.raises(BertxError, match="model folder not found"):
        bertx.finetune(tiny_config(str(tmp_path / "missing"), train, dev, str(tmp_path / "g")), show_progress=False)
    for name in ("student.json", "small_encoder.json"):  # a BiLSTM/CNN student, single or multi-task
        small = tmp_path / name.split(".")[0]
        small.mkdir()
        (small / name).write_text("{}")
        with pytest.raises(BertxError, match=rf"a small student \({name}\), not a BERT-family encoder"):
            bertx.finetune(tiny_config(str(small), train, dev, str(tmp_path / "g")), show_progress=False)


def test_long_texts_are_truncated_and_counted(tiny_bert, toy_data, tmp_path):
    train, dev = toy_data
    cfg = tiny_config(tiny_bert, train, dev, str(tmp_path / "t"), epochs=1)
    cfg["data"]["max_length"] = 8  # [CLS] + 6 words + [SEP]: the longer toy sentences do not fit
    metrics = bertx.finetune(cfg, show_progress=False)
    start = json.loads((tmp_path / "t/log.jsonl").read_text().splitlines()[0])
    assert start["train_counts"]["truncated"] == metrics["truncated_train"] > 0
    assert start["dev_counts"]["truncated"] > 0
