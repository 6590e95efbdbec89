"""Source tasks ranked for a target (`bertx rank --sources`) and multi-task with `select:` on the tiny BERT:
sources are trained once and reused, the ranking marks what beats the plain encoder, the selected run
ends in a fine-tuned target model, and bad configs are one line."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from bertx.cli import main
from bertx.config import MultitaskConfig, SourcesConfig, validate_config
from bertx.errors import BertxError
from bertx.recipes import sources as sources_recipe
from tests.conftest import write_toy_classification


def write_noise(path, n, seed):
    """Labels unrelated to the text: a source whose fine-tuning teaches the encoder nothing useful."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    path.write_text("sentence\tlabel\n" + "".join(f"{' '.join(rng.choices(words, k=6))}\t{rng.choice('ab')}\n" for _ in range(n)))
    return path


def tasks(tmp_path) -> list[dict]:
    return [
        {
            "name": "sent",
            "kind": "classification",
            "train": str(write_toy_classification(tmp_path / "s.tsv", 200, 1)),
            "dev": str(write_toy_classification(tmp_path / "sd.tsv", 60, 2)),
            "data": {"max_length": 32},
        },
        {
            "name": "pair",
            "kind": "pair-classification",
            "train": str(write_toy_classification(tmp_path / "p.tsv", 200, 3, pair=True)),
            "data": {"max_length": 32},
        },
        {"name": "noise", "kind": "classification", "train": str(write_noise(tmp_path / "n.tsv", 200, 5)), "data": {"max_length": 32}},
    ]


def settings(tiny_bert) -> dict:
    return {
        "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
        "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 7},
    }


def test_sources_are_trained_once_and_ranked_against_the_plain_encoder(tiny_bert, tmp_path, monkeypatch):
    entries = tasks(tmp_path)
    config = validate_config({"output": str(tmp_path / "cache"), "tasks": entries[1:], **settings(tiny_bert)}, schema=SourcesConfig)
    report = sources_recipe.rank_sources(config, entries[0]["train"], "classification", output=str(tmp_path / "rank"), log=lambda s: None)
    assert [r["candidate"] for r in report["candidates"]][0] == "pair"  # the same toy sentiment, seen as pairs
    assert report["sources_ranked"] == ["pair", "noise"] and report["helpful"][0] == "pair"
    plain = next(r for r in report["candidates"] if r["candidate"] == "none")
    assert not plain["helpful"] and all(r["helpful"] == (r["scores"]["logme"] > plain["scores"]["logme"]) for r in report["candidates"][:2])
    assert (tmp_path / "cache/pair/encoder/config.json").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("a cached source was trained again")

    monkeypatch.setattr(sources_recipe, "finetune", no_training)
    again = sources_recipe.rank_sources(config, entries[0]["train"], "classification", log=lambda s: None)
    assert again["sources_ranked"] == report["sources_ranked"]


def test_multitask_select_trains_on_the_helpful_sources_then_the_target(tiny_bert, tmp_path):
    config = {
        "output": str(tmp_path / "mt"),
        "tasks": tasks(tmp_path),
        **settings(tiny_bert),
        "select": {"target": "sent", "top_k": 1, "finetune_epochs": 1},
    }
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(config))
    assert main(["multitask", str(tmp_path / "mt.yaml")]) == 0
    summary = json.loads((tmp_path / "mt/summary.json").read_text())
    assert summary["selected"] == ["pair"] and summary["metric"] == "accuracy" and summary["final"]["accuracy"] > 0.9
    run = yaml.safe_load((tmp_path / "mt/multitask/bertx_run.yaml").read_text())
    assert [t["name"] for t in run["tasks"]] == ["sent", "pair"]  # the noise task was left out
    assert (tmp_path / "mt/target/model.safetensors").is_file()
    assert main(["evaluate", str(tmp_path / "mt/target"), "--data", config["tasks"][0]["dev"]]) == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"target": "qnli"}, "select.target 'qnli' is not one of the tasks"),
        ({"target": "pair"}, "select.target 'pair' needs a dev file"),
        ({"estimator": "leep"}, "estimator"),
    ],
)
def test_bad_select_is_one_line(tiny_bert, tmp_path, capsys, change, message):
    config = {"output": str(tmp_path / "mt"), "tasks": tasks(tmp_path), **settings(tiny_bert), "select": {"target": "sent", **change}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    assert main(["multitask", str(tmp_path / "bad.yaml")]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(BertxError):  # the schema is the one the CLI used
        validate_config(config, schema=MultitaskConfig)


def test_python_api_ranks_sources_and_runs_the_selected_multitask(tiny_bert, tmp_path):
    import bertx

    entries = tasks(tmp_path)
    cache = str(tmp_path / "cache")
    report = bertx.rank(entries[0]["train"], sources={"output": cache, "tasks": entries[1:], **settings(tiny_bert)}, estimators=("logme",))
    assert report["helpful"][:1] == ["pair"]
    with pytest.raises(bertx.BertxError, match="not both or neither"):
        bertx.rank(entries[0]["train"])
    by_folder = bertx.rank(entries[0]["train"], candidates=[tiny_bert, tmp_path / "cache/pair/encoder"], estimators=("knn",))
    assert by_folder["candidates"][0]["folder"].endswith("encoder")  # the source's encoder suits the target better
    summary = bertx.multitask(
        {
            "output": str(tmp_path / "mt"),
            "tasks": entries,
            **settings(tiny_bert),
            "select": {"target": "sent", "top_k": 1, "finetune_epochs": 1, "sources_cache": cache},
        },
        show_progress=False,
    )
    assert summary["selected"] == ["pair"] and summary["final"]["accuracy"] > 0.9
