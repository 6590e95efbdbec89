"""Fine-tuning with an auxiliary masked-LM loss on unlabelled text."""

import json

import pytest

import bertx
from bertx.errors import BertxError
from tests.conftest import tiny_config
from tests.recipes.test_pretrain import write_patterned_text


def test_finetune_with_aux_mlm_logs_both_losses_and_saves_the_task_model_only(tiny_bert, toy_data, tmp_path):
    # (No accuracy bar here: a random 2-layer toy BERT learns the task only by reshaping its encoder,
    # which any comparable MLM gradient swamps. Real encoders are measured in benchmarks/.)
    train, dev = toy_data
    text = write_patterned_text(tmp_path / "unlabelled.txt")
    config = tiny_config(tiny_bert, train, dev, str(tmp_path / "ft"), epochs=2, logging_steps=5)
    config["aux_mlm"] = {"text": [text], "weight": 0.5, "documents": "blank", "max_length": 32}
    metrics = bertx.finetune(config, show_progress=False)
    assert 0 <= metrics["accuracy"] <= 1

    events = [json.loads(line) for line in (tmp_path / "ft" / "log.jsonl").read_text().splitlines()]
    mlm = [e["aux_mlm_loss"] for e in events if e["event"] == "train"]
    assert len(mlm) == 6 and mlm[-1] < mlm[0]  # the MLM loss is optimised too

    from safetensors import safe_open

    with safe_open(tmp_path / "ft" / "model.safetensors", "pt") as handle:
        keys = list(handle.keys())
    assert keys and not any("mlm_head" in k or k.startswith("task_model") for k in keys)
    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(tmp_path / "ft")


def test_aux_mlm_text_must_exist(tiny_bert, toy_data, tmp_path):
    train, dev = toy_data
    config = tiny_config(tiny_bert, train, dev, str(tmp_path / "ft"))
    config["aux_mlm"] = {"text": [str(tmp_path / "nope.txt")]}
    with pytest.raises(BertxError, match="nope.txt: text file not found"):
        bertx.finetune(config, show_progress=False)


def test_mlm_head_warmup_keeps_the_mlm_gradient_out_of_the_encoder(tiny_bert):
    """During the warm-up the MLM loss trains its head only; afterwards it reaches the encoder too."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from bertx.training.aux_mlm import TaskWithAuxMLM

    torch.manual_seed(0)
    model = TaskWithAuxMLM(AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2), weight=1.0)
    ids = torch.randint(5, 30, (2, 8))
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    mlm = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids), "labels": labels}
    layer = model.encoder.encoder.layer[0].output.dense.weight
    for head_only, reaches_encoder in ((True, False), (False, True)):
        model.zero_grad()
        out = model(
            mlm=mlm, mlm_head_only=head_only, input_ids=ids[:, :4], attention_mask=torch.ones(2, 4, dtype=torch.long), labels=torch.tensor([0, 1])
        )
        out["mlm_loss"].backward()  # the MLM loss alone
        assert (layer.grad is not None and layer.grad.abs().sum() > 0) == reaches_encoder
        assert model.mlm_head.head.transform.dense.weight.grad.abs().sum() > 0
