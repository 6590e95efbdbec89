"""Teacher labelling on Ray writes the cache the single-process path computes: the same outputs for every
example of the transfer set (sequence and per-token heads), so `--label-engine ray` trains the same student."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file

import bertx
from bertx.data.examples import Example
from bertx.data.features import tokenize
from bertx.recipes.distill import load_teacher
from bertx.training.teacher_cache import TeacherCache
from tests.conftest import write_toy_classification

pytest.importorskip("ray", reason="Ray is not installed: pip install 'bertx[ray]'")


def _features(tokenizer, n: int):
    import random

    from tests.conftest import toy_sentence

    rng = random.Random(0)
    return tokenize(tokenizer, [Example(toy_sentence(rng, i % 2 == 0), None, None, i + 1) for i in range(n)], 32)


def test_sequence_outputs_equal_the_local_cache(ray_cluster, classifier):
    from bertx.scale.labelling import label_on_ray

    teacher = load_teacher(str(classifier), None)
    features = _features(teacher.tokenizer, 3000)  # several tasks of 16 batches, unequal lengths
    local = TeacherCache(teacher.model, features, "class", teacher.pad_id, "cpu")
    remote = TeacherCache.from_outputs("class", label_on_ray(str(classifier), features, teacher.pad_id, workers=2))
    np.testing.assert_allclose(remote.rows, local.rows, rtol=0, atol=1e-6)
    assert (remote.labels() == local.labels()).all()


def test_per_token_outputs_equal_the_local_cache(ray_cluster, tagger):
    from bertx.scale.labelling import label_on_ray

    teacher = load_teacher(str(tagger), None)
    features = _features(teacher.tokenizer, 500)
    local = TeacherCache(teacher.model, features, "tags", teacher.pad_id, "cpu")
    remote = TeacherCache.from_outputs("tags", label_on_ray(str(tagger), features, teacher.pad_id, ("logits",)))
    assert len(remote.outputs["logits"]) == 500
    for a, b in zip(local.outputs["logits"], remote.outputs["logits"]):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)


def test_label_engine_ray_distils_the_same_student(ray_cluster, classifier, tmp_path):
    train = str(write_toy_classification(tmp_path / "train.tsv", 120, seed=8))
    (tmp_path / "extra.txt").write_text("\n".join(["lovely warm story", "dark cold plot"] * 10) + "\n")
    students = {}
    for engine in ("local", "ray"):
        config = {
            "teacher": str(classifier),
            "output": str(tmp_path / engine),
            "data": {"train": train, "max_length": 32},
            "student": {"layers": 1},
            "baseline": False,
            "augment": 2,
            "unlabelled": [str(tmp_path / "extra.txt")],
            "labelling": {"engine": engine, "store": False},
            "train": {"max_steps": 6, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 7},
        }
        final = bertx.distill(config, show_progress=False)
        assert final["train_examples"] == 120 and final["unlabelled_examples"] == 20 + 240
        students[engine] = load_file(tmp_path / engine / "model.safetensors")
    worst = max(float((students["local"][k] - students["ray"][k]).abs().max()) for k in students["local"])
    assert worst < 1e-5, worst
    assert json.loads((tmp_path / "ray/log.jsonl").read_text().splitlines()[0])["teacher_outputs"] == "cached"
