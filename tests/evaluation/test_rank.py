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
