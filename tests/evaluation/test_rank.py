"""`bertx rank` on tiny encoders: an encoder trained on the task outranks an untrained one; files; bad input."""

from __future__ import annotations

import json

import pytest

import bertx
from bertx.cli import main
from bertx.errors import BertxError
from tests.conftest import tiny_config


def test_a_trained_encoder_outranks_a_random_one(tiny_bert, toy_data, tmp_path):
    from bertx.evaluation.rank import rank

    bertx.finetune(tiny_config(tiny_bert, *toy_data, str(tmp_path / "tuned"), epochs=4), show_progress=False)
    report = rank(toy_data[0], [tiny_bert, str(tmp_path / "tuned")], output=str(tmp_path / "rank"))
    assert [r["candidate"] for r in report["candidates"]][0] == str(tmp_path / "tuned")
    tuned, random_ = report["candidates"]
    for name in ("logme", "hscore", "knn", "probe"):
        assert tuned["scores"][name] > random_["scores"][name], name
    assert json.loads((tmp_path / "rank" / "rank.json").read_text())["ranked_by"] == "logme"
    assert (tmp_path / "rank" / "rank.png").stat().st_size > 0 and "| 1 |" in (tmp_path / "rank" / "rank.md").read_text()


def test_bad_input_is_one_line(tiny_bert, toy_data, tmp_path):
    from bertx.evaluation.rank import rank

    with pytest.raises(BertxError, match="no candidate encoders"):
        rank(toy_data[0], [])
    with pytest.raises(BertxError, match="needs at least two classes"):
        one = tmp_path / "one.tsv"
        one.write_text("sentence\tlabel\na\tpos\nb\tpos\n")
        rank(str(one), [tiny_bert])
    with pytest.raises(BertxError, match="unknown estimator 'leep'"):
        rank(toy_data[0], [tiny_bert], estimators=("leep",))
    assert main(["rank", str(tmp_path), "--train", toy_data[0]]) == 2  # not an encoder folder


def test_ner_is_ranked_per_word(tiny_bert, tmp_path):
    """One feature row per word (its first piece), whatever the windows; a tagger trained on the task
    outranks the untrained encoder."""
    from bertx.evaluation.rank import rank
    from tests.recipes.test_token_tasks import config as ner_config, write_conll

    train = write_conll(tmp_path / "train.conll", 120, 1)
    cfg = ner_config(tiny_bert, "ner", train, write_conll(tmp_path / "dev.conll", 30, 2), tmp_path / "tagger")
    cfg["train"]["epochs"] = 6
    bertx.finetune(cfg, show_progress=False)
    report = rank(train, [tiny_bert, str(tmp_path / "tagger")], task="ner", names=["plain", "tagger"], max_length=32)
    words = sum(1 for line in open(train) if line.strip() and not line.startswith("-DOCSTART-"))
    assert {r["rows"] for r in report["candidates"]} == {words}
    assert report["candidates"][0]["candidate"] == "tagger" and report["candidates"][0]["folder"] == str(tmp_path / "tagger")
    assert report["candidates"][0]["scores"]["knn"] > report["candidates"][1]["scores"]["knn"]


def test_agreement_tau_and_regret_by_hand():
    from bertx.metrics.transferability import agreement, kendall_tau, regret

    measured = {"a": 3.0, "b": 1.0, "c": -2.0}
    assert kendall_tau({"a": 0.9, "b": 0.5, "c": 0.1}, measured) == 1.0
    assert kendall_tau({"a": 0.1, "b": 0.5, "c": 0.9}, measured) == -1.0
    assert regret({"a": 0.1, "b": 0.5, "c": 0.9}, measured) == 5.0 and regret({"a": 1, "b": 0, "c": 0}, measured) == 0.0
    found = agreement({"t": {"a": 0.2, "b": 0.9, "c": 0.1}}, {"t": measured})
    assert found["targets"]["t"]["picked"] == "b" and found["mean_regret"] == 2.0 and abs(found["mean_tau"] - 1 / 3) < 1e-9
