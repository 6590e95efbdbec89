"""Models by their usual names: a hub id resolves through the local Hugging Face cache (a fake cache
entry here); an id that is not cached while offline is one line naming it; local folders never touch
the hub."""

from __future__ import annotations

import shutil

import pytest

from bertx.cli import main
from bertx.errors import BertxError
from bertx.models.encoder import resolve_model_path


@pytest.fixture
def fake_cache(tiny_bert, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--bertx-test--tiny-bert"
    shutil.copytree(tiny_bert, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo / "snapshots" / commit


def test_a_cached_hub_id_resolves_to_its_snapshot(fake_cache, toy_data, tmp_path):
    assert resolve_model_path("bertx-test/tiny-bert") == str(fake_cache)
    assert (
        main(
            [
                "finetune",
                "--model",
                "bertx-test/tiny-bert",
                "--train",
                toy_data[0],
                "--dev",
                toy_data[1],
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


def test_an_uncached_id_offline_is_one_line(fake_cache, toy_data, capsys):
    with pytest.raises(BertxError, match="bert-base-uncased: no such local folder, and not in the Hugging Face cache"):
        resolve_model_path("bert-base-uncased")
    assert main(["rank", "google/bert-tiny", "--train", toy_data[0]]) == 2
    assert "HF_HUB_OFFLINE=1" in capsys.readouterr().err


def test_local_paths_are_never_hub_ids(tmp_path):
    assert resolve_model_path(str(tmp_path / "missing")) == str(tmp_path / "missing")  # checked later: folder not found
    assert resolve_model_path("./runs/x") == "runs/x"
