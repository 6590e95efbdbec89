"""The distillation transfer set: labelled once by content for every student, by the fastest teacher that
agrees with fp32, and augmented with the teacher's nearest-neighbour word replacements."""

from __future__ import annotations

import numpy as np
import pytest

import bertx
from bertx.data.augment import augment, neighbours
from tests.conftest import count_teacher_passes
from tests.recipes.test_distill import kd_config, teacher  # noqa: F401  (the module's teacher fixture)


def test_a_transfer_set_is_labelled_once_for_two_student_kinds(teacher, tmp_path, monkeypatch):  # noqa: F811
    tmp, train, dev = teacher
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "cache"))  # an empty store (other modules label this teacher too)
    calls = count_teacher_passes(monkeypatch)
    first = kd_config(tmp, train, dev, tmp_path / "transformer", augment=2, train__max_steps=2)
    bertx.distill(first, show_progress=False)
    assert sum(calls) == 240 + 480  # the labelled text and its variants, once each
    summary = bertx.runfolder.read_run_config(tmp_path / "transformer")["transfer_set"]
    assert summary["labelled"] == 720 and summary["from_store"] == 0 and summary["teacher"] == "fp32"

    calls.clear()
    second = kd_config(tmp, train, dev, tmp_path / "cnn", augment=2, student={"name_or_path": "cnn"}, train__max_steps=2)
    bertx.distill(second, show_progress=False)
    assert sum(calls) == 0  # the CNN student learns from the outputs the first run stored
    summary = bertx.runfolder.read_run_config(tmp_path / "cnn")["transfer_set"]
    assert summary["from_store"] == 720 and summary["labelled"] == 0

    calls.clear()  # other text is other content: labelled, never a stale hit
    third = kd_config(tmp, train, dev, tmp_path / "seed", augment=2, train__max_steps=2, train__seed=99)
    bertx.distill(third, show_progress=False)
    assert sum(calls) == 480  # the labelled text is stored; the new variants are not


def test_a_faster_teacher_labels_only_when_it_agrees(teacher, tmp_path, monkeypatch):  # noqa: F811
    tmp, train, dev = teacher
    config = kd_config(tmp, train, dev, tmp_path / "bf16", labelling={"precision": "bf16", "store": False}, train__max_steps=2)
    bertx.distill(config, show_progress=False)
    summary = bertx.runfolder.read_run_config(tmp_path / "bf16")["transfer_set"]
    assert summary["agreement"]["bf16"] >= 0.99 and summary["teacher"] == "bf16"

    from bertx.recipes import teacher_labels

    monkeypatch.setattr(teacher_labels, "decisions_agree", lambda *args: 0.5)  # a teacher that disagrees
    config["output"] = str(tmp_path / "fallback")
    bertx.distill(config, show_progress=False)
    summary = bertx.runfolder.read_run_config(tmp_path / "fallback")["transfer_set"]
    assert summary["agreement"]["bf16"] == 0.5 and summary["teacher"] == "fp32"


def test_an_int8_export_of_the_teacher_labels_when_it_agrees(teacher, tmp_path):  # noqa: F811
    pytest.importorskip("onnxruntime")
    from bertx.export.one_model import export

    tmp, train, dev = teacher
    export(str(tmp / "model"), tmp_path / "int8", quantize="int8", min_agreement=0.0, max_metric_drop=100.0)
    config = kd_config(
        tmp, train, dev, tmp_path / "kd", augment=1, labelling={"teacher_export": str(tmp_path / "int8"), "store": False}, train__max_steps=2
    )
    bertx.distill(config, show_progress=False)
    summary = bertx.runfolder.read_run_config(tmp_path / "kd")["transfer_set"]
    assert summary["teacher"] == f"export {tmp_path / 'int8'}" and summary["agreement"]["export"] >= 0.99


class _Tokenizer:
    """A word-level vocabulary, as a tokenizer offers it to `neighbours`."""

    init_kwargs = {"do_lower_case": True}

    def __init__(self, words):
        self.vocab = {w: i for i, w in enumerate(words)}

    def get_vocab(self):
        return self.vocab


def test_neighbour_replacement_draws_from_the_teachers_nearest_words():
    words = ["good", "great", "fine", "bad", "awful", "poor", "film", "movie", "plot", "story"]
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    group = {"good": 0, "great": 0, "fine": 0, "bad": 1, "awful": 1, "poor": 1, "film": 2, "movie": 2, "plot": 3, "story": 3}
    embeddings = np.stack([centres[group[w]] + 0.05 * rng.normal(size=16) for w in words])
    texts = ["good film", "bad plot", "great movie", "awful story", "fine film", "poor plot"]
    near = neighbours(texts, _Tokenizer(words), embeddings, k=2)
    assert set(near["good"]) == {"great", "fine"} and set(near["bad"]) == {"awful", "poor"}
    assert set(near["film"]) == {"movie"} | set(near["film"]) and near["film"][0] == "movie"
    assert "good" not in near["good"]  # never the word itself

    made, _ = augment(texts, None, 5, seed=3, mask_token="[MASK]", p_mask=0.0, p_replace=1.0, p_ngram=0.0, near=near)
    for i, text in enumerate(texts):
        for variant in made[5 * i : 5 * i + 5]:
            for original, replaced in zip(text.split(), variant.split()):
                assert replaced in near[original]
    again, _ = augment(texts, None, 5, seed=3, mask_token="[MASK]", p_mask=0.0, p_replace=1.0, p_ngram=0.0, near=near)
    other, _ = augment(texts, None, 5, seed=4, mask_token="[MASK]", p_mask=0.0, p_replace=1.0, p_ngram=0.0, near=near)
    assert made == again and made != other


def test_the_neighbour_rule_reaches_the_recipe(teacher, tmp_path):  # noqa: F811
    tmp, train, dev = teacher
    config = kd_config(tmp, train, dev, tmp_path / "near", augment=1, augment_rule="neighbours", train__max_steps=1)
    final = bertx.distill(config, show_progress=False)
    assert final["unlabelled_examples"] == 240  # the variants themselves are checked above; here the option runs end to end
