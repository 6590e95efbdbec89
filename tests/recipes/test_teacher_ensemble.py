"""Several teachers, one student: outputs averaged as probabilities for every output kind, the ensemble scored
as one model, a distillation from two teachers with each teacher, the ensemble and the student in its report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bertx
from bertx.errors import BertxError
from bertx.models.ensemble import EnsembleModel
from bertx.training.teacher_cache import TeacherCache, ensemble
from tests.conftest import tiny_config
from tests.recipes.test_distill import kd_config, teacher  # noqa: F401  (the module's teacher fixture)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_classes_tags_and_spans_average_as_probabilities_scores_as_numbers():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    mixed = ensemble([TeacherCache.from_outputs("class", a), TeacherCache.from_outputs("class", b)], [0.25, 0.75]).rows
    assert np.allclose(softmax(mixed), 0.25 * softmax(a) + 0.75 * softmax(b), atol=1e-6)
    same = ensemble([TeacherCache.from_outputs("class", a), TeacherCache.from_outputs("class", a)], [0.5, 0.5]).rows
    assert np.allclose(softmax(same), softmax(a), atol=1e-6)  # two identical teachers teach what one does
    scores = ensemble([TeacherCache.from_outputs("score", a[:, :1]), TeacherCache.from_outputs("score", b[:, :1])], [0.5, 0.5]).rows
    assert np.allclose(scores, (a[:, :1] + b[:, :1]) / 2)
    multi = ensemble([TeacherCache.from_outputs("classes", a), TeacherCache.from_outputs("classes", b)], [0.5, 0.5]).rows
    assert np.allclose(1 / (1 + np.exp(-multi)), (1 / (1 + np.exp(-a)) + 1 / (1 + np.exp(-b))) / 2, atol=1e-5)
    tags = [{"logits": [rng.normal(size=(n, 4)).astype(np.float32) for n in (3, 6)]} for _ in range(2)]
    mixed = ensemble([TeacherCache.from_outputs("tags", t) for t in tags], [0.5, 0.5]).outputs["logits"]
    assert [len(m) for m in mixed] == [3, 6]
    assert np.allclose(softmax(mixed[1]), (softmax(tags[0]["logits"][1]) + softmax(tags[1]["logits"][1])) / 2, atol=1e-6)
    spans = [{k: [rng.normal(size=n).astype(np.float32) for n in (7, 9)] for k in ("start_logits", "end_logits")} for _ in range(2)]
    mixed = ensemble([TeacherCache.from_outputs("span", s) for s in spans], [0.5, 0.5]).outputs
    assert np.allclose(softmax(mixed["end_logits"][0]), (softmax(spans[0]["end_logits"][0]) + softmax(spans[1]["end_logits"][0])) / 2, atol=1e-6)


def test_the_ensemble_model_scores_what_the_stored_ensemble_teaches():
    from transformers.modeling_outputs import SequenceClassifierOutput

    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits, self.config = logits, None

        def forward(self, **batch):
            return SequenceClassifierOutput(logits=self.logits)

    a, b = torch.randn(4, 3), torch.randn(4, 3)
    model = EnsembleModel([Fixed(a), Fixed(b)], [0.4, 0.6], "class")
    stored = ensemble([TeacherCache.from_outputs("class", a.numpy()), TeacherCache.from_outputs("class", b.numpy())], [0.4, 0.6]).rows
    assert torch.allclose(model().logits, torch.from_numpy(stored), atol=1e-5)


@pytest.fixture(scope="module")
def second_teacher(tiny_bert, teacher, tmp_path_factory):  # noqa: F811
    tmp, train, dev = teacher
    folder = tmp_path_factory.mktemp("second") / "model"
    bertx.finetune(tiny_config(tiny_bert, train, dev, str(folder), seed=11, epochs=2), show_progress=False)
    return str(folder)


def test_two_teachers_teach_one_student_and_the_report_shows_each(teacher, second_teacher, tmp_path, monkeypatch):  # noqa: F811
    tmp, train, dev = teacher
    monkeypatch.setenv("BERTX_CACHE", str(tmp_path / "cache"))
    config = kd_config(tmp, train, dev, tmp_path / "kd", teachers=[second_teacher], teacher_weights=[1.0, 3.0], baseline=True, train__max_steps=20)
    final = bertx.distill(config, show_progress=False)
    rows = final["report"]["models"]
    assert list(rows) == ["teacher", "teacher 2", "ensemble of 2", "student", "student without teacher"]
    assert rows["ensemble of 2"]["weights"] == [0.25, 0.75]
    assert rows["ensemble of 2"]["parameters"] == rows["teacher"]["parameters"] + rows["teacher 2"]["parameters"]
    run = bertx.runfolder.read_run_config(tmp_path / "kd")
    assert run["distilled_from"]["teachers"] == [str(tmp / "model"), second_teacher]
    summary = run["transfer_set"]
    assert summary["teacher"] == "ensemble of 2" and [t["weight"] for t in summary["teachers"]] == [0.25, 0.75]
    assert summary["labelled"] == 2 * 240  # each teacher labelled the training text once, into its own store entries
    again = kd_config(tmp, train, dev, tmp_path / "again", teachers=[second_teacher], teacher_weights=[1.0, 3.0], baseline=False, train__max_steps=2)
    bertx.distill(again, show_progress=False)
    reread = bertx.runfolder.read_run_config(tmp_path / "again")["transfer_set"]
    assert reread["combined_from_store"] == 240 and reread["labelled"] == reread["from_store"] == 0  # the average, stored once
    assert reread["texts"] == 240
    other = kd_config(tmp, train, dev, tmp_path / "other", teachers=[second_teacher], teacher_weights=[1.0, 1.0], baseline=False, train__max_steps=2)
    bertx.distill(other, show_progress=False)  # other weights: another average, from the members' own entries
    reweighted = bertx.runfolder.read_run_config(tmp_path / "other")["transfer_set"]
    assert reweighted["combined_from_store"] == 0 and reweighted["from_store"] == 2 * 240


def test_teachers_that_cannot_be_averaged_are_one_line(teacher, tiny_bert, tmp_path):  # noqa: F811
    tmp, train, dev = teacher
    three_way = tmp_path / "three.tsv"
    rows = ["sentence\tlabel"] + [
        f"{line.split(chr(9))[0]}\t{['neg', 'pos', 'meh'][i % 3]}" for i, line in enumerate(open(train).read().splitlines()[1:])
    ]
    three_way.write_text("\n".join(rows) + "\n")
    other = tmp_path / "other"
    bertx.finetune(tiny_config(tiny_bert, str(three_way), None, str(other), max_steps=2), show_progress=False)
    with pytest.raises(BertxError, match="its labels .* are not the first teacher's"):
        bertx.distill(kd_config(tmp, train, dev, tmp_path / "kd", teachers=[str(other)], baseline=False, train__max_steps=2), show_progress=False)
    with pytest.raises(BertxError, match="several teachers teach through their outputs only"):
        bertx.distill(kd_config(tmp, train, dev, tmp_path / "kd2", teachers=[str(other)], loss={"hidden": 1.0}), show_progress=False)
    with pytest.raises(BertxError, match="2 weights for 3 teachers"):
        bertx.distill(kd_config(tmp, train, dev, tmp_path / "kd3", teachers=[str(other), str(other)], teacher_weights=[1, 1]), show_progress=False)
