"""Parameter-efficient fine-tuning (LoRA, IA3, BitFit) on a tiny BERT: only the adapter and the head train,
the base weights stay as they were, the saved folder reloads to identical predictions (head included),
peft's own classes read it, a merged folder gives the same logits, and the bad options are one line each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import bertx
from bertx.cli import main
from bertx.errors import BertxError
from tests.conftest import tiny_config

peft = pytest.importorskip("peft")

TEXTS = ["a good film", "the story was dull and sad", "fine acting , great plot"]


def lora_lr(r: int = 8) -> float:
    """The tiny model's LoRA step: rsLoRA (the default) scales updates by alpha / sqrt(r), sqrt(r) times
    the alpha / r these tests were tuned with at lr 1e-2."""
    return 1e-2 / r**0.5


def peft_config(tiny_bert, toy_data, out, method, **options):
    lr = lora_lr(options.get("r", 8)) if method == "lora" else 1e-2
    config = tiny_config(tiny_bert, *toy_data, str(out), epochs=4, lr=lr)
    config["peft"] = {"method": method, **options}
    return config


def base_weights(tiny_bert):
    from safetensors.torch import load_file

    return load_file(str(Path(tiny_bert) / "model.safetensors"))


@pytest.mark.parametrize("method", ["lora", "ia3", "bitfit"])
def test_only_the_adapter_and_head_train_and_the_folder_reloads(tiny_bert, toy_data, tmp_path, method):
    before = base_weights(tiny_bert)
    out = tmp_path / method
    final = bertx.finetune(peft_config(tiny_bert, toy_data, out, method), show_progress=False)
    if method == "lora":  # a frozen random 2-layer encoder's [CLS] says little; biases or scales alone cannot fix that
        assert final["accuracy"] > 0.8, final
    start = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()][0]
    assert start["peft"] == method and 0 < start["trainable_parameters"] < start["total_parameters"]
    assert start["trainable_pct"] < (60 if method != "lora" else 80)  # the tiny model's head is a large share
    after = base_weights(tiny_bert)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the base folder is untouched
    files = {p.name for p in out.iterdir()}
    assert "model.safetensors" not in files  # no copy of the encoder
    assert ("bitfit_model.safetensors" if method == "bitfit" else "adapter_model.safetensors") in files
    a = bertx.Predictor.load(out).predict(TEXTS)
    b = bertx.Predictor.load(out).predict(TEXTS)
    assert a == b  # nothing random is left: the head and the base's missing pooler are saved
    if method == "lora":
        assert [x["label"] for x in a][:2] == ["pos", "neg"]
    assert bertx.evaluate(out, toy_data[1])["accuracy"] == pytest.approx(final["accuracy"])


def test_lora_trains_exactly_the_expected_tensors(tiny_bert, toy_data, tmp_path):
    from bertx.config import FinetuneConfig
    from bertx.models.adapters import add_adapters
    from bertx.models.heads import build_classifier
    from bertx.tasks import get_task

    model = build_classifier(tiny_bert, get_task("classification"), ["neg", "pos"])
    options = FinetuneConfig.model_validate({"peft": {"method": "lora", "r": 4, "target_modules": ["query", "value"]}}).peft
    wrapped = add_adapters(model, options, "AutoModelForSequenceClassification")
    trainable = {name for name, p in wrapped.named_parameters() if p.requires_grad}
    # the tiny base was saved without a pooler: it starts random, so it trains and is saved with the head
    assert trainable and all("lora_" in name or ".classifier." in name or ".pooler.dense." in name for name in trainable)
    assert any(".pooler.dense." in name for name in trainable) and any(".classifier." in name for name in trainable)
    # rank 4 on q and v of 2 layers of width 32: 2 layers x 2 maps x (4 x 32 + 32 x 4), plus the 2 x 32 + 2 head
    assert sum(p.numel() for name, p in wrapped.named_parameters() if "lora_" in name and p.requires_grad) == 2 * 2 * 256


def test_peft_reads_the_folder_and_the_merged_folder_matches(tiny_bert, toy_data, tmp_path):
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "lora"
    bertx.finetune(peft_config(tiny_bert, toy_data, out, "lora", r=4), show_progress=False)
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    ours = bertx.Predictor.load(out).model
    with torch.no_grad():
        expected = ours(**batch).logits
        theirs = AutoPeftModelForSequenceClassification.from_pretrained(out, num_labels=2).eval()
        assert torch.allclose(theirs(**batch).logits, expected, atol=1e-5)  # peft's own class, the head included
    assert main(["merge", str(out), "--output", str(tmp_path / "merged")]) == 0
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert torch.allclose(merged(**batch).logits, expected, atol=1e-4)
    assert merged.config.id2label == {0: "neg", 1: "pos"}
    assert bertx.evaluate(tmp_path / "merged", toy_data[1])["accuracy"] == pytest.approx(bertx.evaluate(out, toy_data[1])["accuracy"])
    pytest.importorskip("onnxruntime")
    from bertx.export.one_model import export

    report = export(out, tmp_path / "onnx")  # the adapter folder itself exports (merged on load)
    assert report["agreement"] == 1.0, report
    assert [p["label"] for p in bertx.Predictor.load(tmp_path / "onnx").predict(TEXTS)] == [
        p["label"] for p in bertx.Predictor.load(out).predict(TEXTS)
    ]


@pytest.mark.parametrize("task", ["ner", "qa"])
def test_token_and_span_tasks_take_lora(tiny_bert, tmp_path, task):
    from tests.recipes.test_token_tasks import config as token_config, write_conll, write_qa

    data = {}
    if task == "ner":
        train, dev = write_conll(tmp_path / "train.txt", 200, 1), write_conll(tmp_path / "dev.txt", 40, 2)
    else:
        train, dev = write_qa(tmp_path / "train.jsonl", 200, 1), write_qa(tmp_path / "dev.jsonl", 40, 2)
        data = {"max_query_length": 8, "doc_stride": 8}
    config = token_config(tiny_bert, task, train, dev, tmp_path / "run", **data)
    config["peft"] = {"method": "lora", "r": 8}
    config["train"].update(epochs=8, lr=lora_lr(8))
    final = bertx.finetune(config, show_progress=False)
    assert final["f1"] > 0.3, final
    # Loading merges LoRA into the weights (logits move by ~1e-6) and must score what training scored; the
    # QA model must also read the token types (peft's QA wrapper drops them: models/adapters.py).
    assert bertx.evaluate(tmp_path / "run", dev)["f1"] == pytest.approx(final["f1"], abs=0 if task == "ner" else 0.02)
    if task == "qa":
        import json

        assert json.loads((tmp_path / "run/adapter_config.json").read_text())["task_type"] is None


def test_a_killed_lora_run_resumes_to_the_same_adapter(tiny_bert, toy_data, tmp_path):
    from safetensors.torch import load_file

    from tests.recipes.killing import kill_after_step

    whole = peft_config(tiny_bert, toy_data, tmp_path / "whole", "lora", r=4)
    whole["train"]["save_steps"] = 5
    bertx.finetune(whole, show_progress=False)
    cut = {**whole, "output": str(tmp_path / "cut")}
    kill_after_step("finetune", cut, 7)
    bertx.finetune(cut, resume=True, show_progress=False)
    a = load_file(str(tmp_path / "whole" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"method": "prefix"}, "peft.method"),
        ({"target_modules": ["attn_q"]}, "no linear layer of this model is named 'attn_q'"),
    ],
)
def test_bad_peft_options_are_one_line(tiny_bert, toy_data, tmp_path, change, message):
    with pytest.raises((BertxError, ValueError), match=message):
        bertx.finetune(peft_config(tiny_bert, toy_data, tmp_path / "x", **{"method": "lora", **change}), show_progress=False)
    assert (
        main(
            [
                "finetune",
                "--model",
                tiny_bert,
                "--train",
                toy_data[0],
                "--output",
                str(tmp_path / "y"),
                *[f"peft.{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in change.items()],
            ]
        )
        == 2
    )


def test_two_adapters_are_served_from_one_base(tiny_bert, toy_data, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from bertx.serve.app import create_app
    from bertx.serve.main import load_models

    for name, seed in (("a", 1), ("b", 2)):
        config = peft_config(tiny_bert, toy_data, tmp_path / name, "lora", r=4)
        config["train"]["seed"] = seed
        bertx.finetune(config, show_progress=False)
    models = load_models({"a": str(tmp_path / "a"), "b": str(tmp_path / "b")})
    view_a, view_b = models["a"].trained.model, models["b"].trained.model
    assert view_a.shared is view_b.shared and models["a"].info["shared_base"]  # one encoder in memory
    with TestClient(create_app(models)) as client:
        for name in ("a", "b"):
            served = client.post(f"/v1/models/{name}/predict", json={"inputs": TEXTS}).json()["outputs"]
            alone = bertx.Predictor.load(tmp_path / name).predict(TEXTS)  # loaded on its own, merged
            assert [o["label"] for o in served] == [o["label"] for o in alone]
            for o, p in zip(served, alone):
                assert o["probs"] == pytest.approx(p["probs"], abs=1e-4)
    assert models["a"].trained.tokenizer is models["b"].trained.tokenizer  # same tokenizer files: loaded once
    # Both adapters' batches from their own threads at once, as their micro-batchers run them: the shared
    # model and tokenizer take turns, and every answer is still the adapter's own.
    from concurrent.futures import ThreadPoolExecutor

    expected = {name: [o["label"] for o in models[name].predict([(t, None) for t in TEXTS])] for name in ("a", "b")}
    with ThreadPoolExecutor(4) as pool:
        jobs = [(name, pool.submit(models[name].predict, [(t, None) for t in TEXTS])) for name in ("a", "b") * 20]
        assert all([o["label"] for o in job.result()] == expected[name] for name, job in jobs)


def test_lora_variants_rslora_biases_and_lora_plus(tiny_bert):
    from bertx.config import FinetuneConfig
    from bertx.models.adapters import add_adapters, lr_scales
    from bertx.models.heads import build_classifier
    from bertx.tasks import get_task
    from bertx.training.optim import build_optimizer

    model = build_classifier(tiny_bert, get_task("classification"), ["neg", "pos"])
    options = FinetuneConfig.model_validate({"peft": {"method": "lora", "r": 4, "rslora": True, "bias": "all", "b_lr_ratio": 16}}).peft
    wrapped = add_adapters(model, options, "AutoModelForSequenceClassification")
    trainable = {name for name, p in wrapped.named_parameters() if p.requires_grad}
    assert any(".attention.self.query.base_layer.bias" in name for name in trainable)  # bias: all
    assert wrapped.peft_config["default"].use_rslora
    layer = wrapped.base_model.model.bert.encoder.layer[0].attention.self.query
    assert layer.scaling["default"] == pytest.approx(16 / 4**0.5)  # alpha / sqrt(r), not alpha / r
    optimizer = build_optimizer(wrapped, 1e-3, 0.01, lr_scales=lr_scales(options))
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    named = dict(wrapped.named_parameters())
    assert [round(lr, 6) for lr in {lr_of[id(p)] for n, p in named.items() if "lora_B" in n}] == [0.016]
    assert [round(lr, 6) for lr in {lr_of[id(p)] for n, p in named.items() if "lora_A" in n}] == [0.001]
    assert FinetuneConfig.model_validate({"peft": {"method": "lora"}}).peft.rslora  # the default (measured on GLUE)
    plain = FinetuneConfig.model_validate({"peft": {"method": "lora", "r": 4, "rslora": False}}).peft
    original = add_adapters(build_classifier(tiny_bert, get_task("classification"), ["neg", "pos"]), plain, "AutoModelForSequenceClassification")
    assert original.base_model.model.bert.encoder.layer[0].attention.self.query.scaling["default"] == pytest.approx(16 / 4)
