"""Models and a Ray cluster shared by the scale tests: a tiny classifier and a tiny tagger, trained once."""

from __future__ import annotations

import json

import pytest

import bertx
from tests.conftest import tiny_config, write_toy_classification
from tests.recipes.test_token_tasks import config as token_config, write_conll


@pytest.fixture(scope="session")
def classifier(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("scale-classifier")
    train = write_toy_classification(root / "train.tsv", 160, seed=1)
    bertx.finetune(tiny_config(tiny_bert, str(train), None, str(root / "run"), epochs=1), show_progress=False)
    return root / "run"


@pytest.fixture(scope="session")
def tagger(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("scale-tagger")
    train = write_conll(root / "train.txt", 120, 1)
    config = token_config(tiny_bert, "ner", train, None, root / "run")
    config["train"]["epochs"] = 2
    bertx.finetune(config, show_progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for every Ray test; jobs join it instead of starting their own."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'bertx[ray]'")
    from bertx.scale.cluster import connected

    with connected(cpus=2):
        yield ray


def read_parts(folder) -> list[dict]:
    """Every record of a corpus prediction, in (input, row) order."""
    records = []
    for part in sorted(folder.glob("part-*.jsonl")):
        records += [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines()]
    return sorted(records, key=lambda r: (r["input"], r["row"]))
