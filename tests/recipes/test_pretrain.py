"""Pretraining end to end on a tiny BERT: it learns, saves a model HF and bertx load, resumes exactly,
continues an existing encoder, and refuses bad input with one clear line."""

import json
import random

import pytest
import torch
from typer.testing import CliRunner

from bertx.cli import app
from bertx.config import PretrainConfig
from bertx.recipes import pretrain as recipe
from tests.conftest import NEGATIVE, POSITIVE

runner = CliRunner()


def write_patterned_text(path, documents: int = 60, seed: int = 0):
    """Documents of near-templated sentences: an MLM learns the template words within a few dozen steps."""
    rng = random.Random(seed)
    docs = []
    for _ in range(documents):
        words = POSITIVE if rng.random() < 0.5 else NEGATIVE
        sentences = [f"The film was very {rng.choice(words)} and the story was {rng.choice(words)}." for _ in range(rng.randint(2, 5))]
        docs.append(" ".join(sentences))
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return str(path)


def tiny_pretrain_config(tokenizer: str, text: str, output: str, **train) -> dict:
    train_cfg = {"max_steps": 200, "batch_size": 16, "lr": 3e-3, "eval_steps": 100, "save_steps": None, "seed": 5, "warmup_ratio": 0.1}
    train_cfg.update(train)
    return {
        "output": output,
        "data": {"train": [text], "max_length": 32, "eval_fraction": 0.1, "cache_dir": str(output) + "-cache"},
        "model": {"layers": 2, "hidden": 64, "heads": 2, "tokenizer": tokenizer},
        "objective": {"sentence_task": "sop", "whole_word_mask": True},
        "train": train_cfg,
    }


@pytest.fixture
def text(tmp_path):
    return write_patterned_text(tmp_path / "corpus.txt")


def test_pretraining_learns_and_saves_an_hf_model(tiny_bert, text, tmp_path):
    out = tmp_path / "pt"
    metrics = recipe.pretrain(PretrainConfig.model_validate(tiny_pretrain_config(tiny_bert, text, str(out))), show_progress=False)
    assert metrics["mlm_accuracy"] > 0.5  # chance is ~1/85: the template words are learnt
    assert metrics["perplexity"] < 8 and 0 <= metrics["sentence_accuracy"] <= 1
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [100, 200] and evals[-1]["mlm_loss"] < evals[0]["mlm_loss"] + 1e-6

    from transformers import BertForPreTraining, pipeline

    model, info = BertForPreTraining.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"]
    fill = pipeline("fill-mask", model=str(out))
    assert fill("the film was [MASK] good and the story was bad.")[0]["token_str"] == "very"


def test_pretrained_folder_fine_tunes(tiny_bert, text, tmp_path, toy_data):
    import bertx
    from tests.conftest import tiny_config

    out = tmp_path / "pt"
    # bf16 pretraining, then fp32 fine-tuning in the same process (Accelerate's state is reset in between)
    config = tiny_pretrain_config(tiny_bert, text, str(out), max_steps=5, precision="bf16")
    recipe.pretrain(PretrainConfig.model_validate(config), show_progress=False)
    train, dev = toy_data
    metrics = bertx.finetune(tiny_config(str(out), train, dev, str(tmp_path / "ft"), epochs=1), show_progress=False)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["steps"] == 15


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_bert, text, tmp_path, monkeypatch):
    whole = tiny_pretrain_config(tiny_bert, text, str(tmp_path / "whole"), max_steps=12, save_steps=4, eval_steps=6)
    recipe.pretrain(PretrainConfig.model_validate(whole), show_progress=False)

    cut = tiny_pretrain_config(tiny_bert, text, str(tmp_path / "cut"), max_steps=12, save_steps=4, eval_steps=6)

    from bertx.training import fit as loop

    class Interrupting(loop.tqdm):
        def update(self, n=1):
            super().update(n)
            if self.n == 7:  # after the checkpoint of step 4: steps 5-7 must be replayed
                raise KeyboardInterrupt

    monkeypatch.setattr(loop, "tqdm", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        recipe.pretrain(PretrainConfig.model_validate(cut), show_progress=True)
    monkeypatch.undo()
    recipe.pretrain(PretrainConfig.model_validate(cut), resume=True, show_progress=False)

    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_continued_pretraining_of_an_encoder_folder(tiny_bert, text, tmp_path):
    config = tiny_pretrain_config(tiny_bert, text, str(tmp_path / "dapt"), max_steps=3)
    config["model"] = {"name_or_path": tiny_bert}
    metrics = recipe.pretrain(PretrainConfig.model_validate(config), show_progress=False)
    start = json.loads((tmp_path / "dapt" / "log.jsonl").read_text().splitlines()[0])
    assert start["start"] == tiny_bert
    assert any(key.startswith("cls.predictions") for key in start["new_weights"])  # the encoder folder has no MLM head
    assert not any(key.startswith("bert.encoder") for key in start["new_weights"])
    assert metrics["steps"] == 3


def cli(*args):
    return runner.invoke(app, list(args))


def test_bad_input_gives_one_line(tiny_bert, text, tmp_path):
    base = [
        "pretrain",
        "--tokenizer",
        tiny_bert,
        "--layers",
        "1",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--max-steps",
        "2",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result = cli(*base, "--train", str(empty), "--output", str(tmp_path / "o1"))
    assert result.exit_code == 2 and "empty.txt: the file holds no text" in result.output

    binary = tmp_path / "model.bin"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary")
    result = cli(*base, "--train", str(binary), "--output", str(tmp_path / "o2"))
    assert result.exit_code == 2 and "model.bin:1: NUL byte" in result.output

    small = tmp_path / "small.txt"
    small.write_text("The film was good.\n")
    result = cli(*base, "--train", str(small), "--output", str(tmp_path / "o3"), "--batch-size", "8")
    assert result.exit_code == 2 and "fewer than one batch (8)" in result.output

    result = cli("pretrain", "--train", text, "--preset", "mini", "--output", str(tmp_path / "o4"))
    assert result.exit_code == 2 and "needs a tokenizer folder" in result.output

    result = cli(*base, "--train", text, "--preset", "huge", "--output", str(tmp_path / "o5"))
    assert result.exit_code == 2 and "unknown size preset 'huge'" in result.output


def test_tokenizer_that_does_not_fit_the_model_is_refused(tiny_bert, text, tmp_path):
    bigger = tmp_path / "tok"
    result = cli("tokenizer", "train", "--input", text, "--output", str(bigger), "--vocab-size", "400", "--min-frequency", "1")
    assert result.exit_code == 0, result.output
    result = cli(
        "pretrain",
        "--model",
        tiny_bert,
        "--tokenizer",
        str(bigger),
        "--train",
        text,
        "--output",
        str(tmp_path / "o"),
        f"data.cache_dir={tmp_path / 'cache'}",
    )
    assert result.exit_code == 2 and "embeddings; use the tokenizer the model was trained with" in result.output


def test_long_sentences_are_cut_and_counted_and_eval_file_is_used(tiny_bert, text, tmp_path):
    long_text = tmp_path / "long.txt"
    long_text.write_text(("The film was very good and the story was happy " * 20 + ".\n\n") * 30, encoding="utf-8")
    held_out = write_patterned_text(tmp_path / "held_out.txt", documents=10, seed=3)
    result = cli(
        "pretrain",
        "--train",
        str(long_text),
        "--eval",
        held_out,
        "--tokenizer",
        tiny_bert,
        "--layers",
        "1",
        "--hidden",
        "32",
        "--heads",
        "2",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--max-length",
        "32",
        "--sentence-task",
        "nsp",
        "--output",
        str(tmp_path / "o"),
        f"data.cache_dir={tmp_path / 'cache'}",
    )
    assert result.exit_code == 0, result.output
    assert "30 sentences are longer than max_length=32 tokens and were cut into pieces" in result.output
    start = json.loads((tmp_path / "o" / "log.jsonl").read_text().splitlines()[0])
    assert start["train_documents"] == 30 and start["eval_sequences"] > 0
    assert "sentence_accuracy" in json.loads((tmp_path / "o" / "metrics.json").read_text())


def test_head_warmup_leaves_the_encoder_layers_alone(tiny_bert, text, tmp_path):
    """During the warm-up only the new MLM head (and the word embeddings it shares) learn."""
    from safetensors.torch import load_file

    config = tiny_pretrain_config(tiny_bert, text, str(tmp_path / "warm"), max_steps=4, head_warmup_steps=4)
    config["model"] = {"name_or_path": tiny_bert}
    config["objective"]["sentence_task"] = "none"
    recipe.pretrain(PretrainConfig.model_validate(config), show_progress=False)
    before = load_file(f"{tiny_bert}/model.safetensors")
    after = load_file(str(tmp_path / "warm" / "model.safetensors"))
    layer = "encoder.layer.1.output.dense.weight"
    assert torch.equal(before[layer], after[f"bert.{layer}"])
    config["output"], config["train"]["head_warmup_steps"] = str(tmp_path / "cold"), 2  # then the encoder learns too
    recipe.pretrain(PretrainConfig.model_validate(config), show_progress=False)
    assert not torch.equal(before[layer], load_file(str(tmp_path / "cold" / "model.safetensors"))[f"bert.{layer}"])
