"""Bilingual continued pretraining on the tiny BERT: per-file document layouts, per-file sampling weights
that hold, instances that never mix two files, and held-out MLM accuracy per language."""

from __future__ import annotations

import json
import random

import numpy as np

from bertx.config import PretrainConfig
from bertx.data.pretrain_instances import mixed_instances
from bertx.data.token_cache import build_cache
from bertx.models.encoder import load_tokenizer
from bertx.recipes import pretrain as recipe
from tests.models.test_vocab_transfer import WORDS
from tests.recipes.test_pretrain import tiny_pretrain_config, write_patterned_text


def write_one_per_line(path, n=120, seed=3):
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choices(WORDS, k=rng.randint(6, 12))) + " ." for _ in range(n)) + "\n", encoding="utf-8")
    return str(path)


def test_weights_scale_each_files_share_and_blocks_stay_in_their_file(tiny_bert, tmp_path):
    english, other = write_patterned_text(tmp_path / "en.txt"), write_one_per_line(tmp_path / "pt.txt")
    cache = build_cache([english, other], load_tokenizer(tiny_bert), ["blank", "line"], tmp_path / "cache", show_progress=False)
    ranges = cache.file_ranges()
    assert len(ranges) == 2 and ranges[0][1] == 60 and ranges[1] == (60, 180)  # 60 blank-separated documents, 120 lines
    _, _, plain = mixed_instances(cache, ranges, [1.0, 1.0], 32, "none", 0, 0)
    instances, _, weighted = mixed_instances(cache, ranges, [1.0, 2.5], 32, "none", 0, 0)
    assert weighted[0] == plain[0] and weighted[1] == 2 * plain[1] + round(0.5 * plain[1]) and len(instances) == sum(weighted)
    boundary = cache.document_tokens(*ranges[1])[0]
    starts, ends = instances[:, 0], np.maximum(instances[:, 1], instances[:, 3])  # rows: a start, a end, b start, b end, label
    assert np.all((ends <= boundary) | (starts >= boundary))  # no block spans the two files
    again, _, _ = mixed_instances(cache, ranges, [1.0, 2.5], 32, "none", 0, 0)
    assert np.array_equal(instances, again)  # a pure function of (seed, epoch): resume sees the same epoch


def test_bilingual_run_reports_each_languages_accuracy(tiny_bert, tmp_path):
    english, other = write_patterned_text(tmp_path / "en.txt"), write_one_per_line(tmp_path / "pt.txt")
    config = tiny_pretrain_config(tiny_bert, english, str(tmp_path / "run"), max_steps=20, eval_steps=None)
    config["objective"]["sentence_task"] = "none"
    config["data"]["train"] = [{"path": english, "language": "en"}, {"path": other, "documents": "line", "weight": 2.0, "language": "pt"}]
    metrics = recipe.pretrain(PretrainConfig.model_validate(config), show_progress=False)
    assert {"mlm_accuracy", "mlm_accuracy_en", "mlm_accuracy_pt"} <= set(metrics)
    start = next(json.loads(line) for line in open(tmp_path / "run/log.jsonl") if '"start"' in line)
    counts = list(start["sequences_per_file"].values())
    assert counts[1] % 2 == 0 and counts[1] > 0 and counts[0] > 0
