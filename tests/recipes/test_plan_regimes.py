"""Every teacher regime the plan can choose hands the compress stage a teacher it can read: a few-shot
teacher (a sentence encoder with a head on mean-pooled tokens) and an adapter teacher (LoRA, merged as it
loads) distil into a BERT student and a CNN, and whole plans in those regimes ship."""

from __future__ import annotations

from pathlib import Path

import pytest

import bertx
from tests.conftest import write_toy_classification
from tests.recipes.test_plan_honest import lean_plan


def teacher_of(regime: str, tiny_bert: str, root: Path) -> Path:
    train, dev = write_toy_classification(root / "train.tsv", 120, 1), write_toy_classification(root / "dev.tsv", 40, 2)
    data = {"train": str(train), "dev": str(dev)}
    if regime == "fewshot":
        from bertx.config import FewshotConfig
        from bertx.recipes.fewshot import fewshot

        fewshot(
            FewshotConfig(task="classification", output=str(root / "teacher"), model={"name_or_path": tiny_bert}, data=data, train={"seed": 1}),
            show_progress=False,
        )
    else:
        bertx.finetune(
            {
                "task": "classification",
                "output": str(root / "teacher"),
                "model": {"name_or_path": tiny_bert},
                "peft": {"method": "lora"},
                "data": data,
                "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "save_steps": None},
            },
            show_progress=False,
        )
    return root / "teacher"


@pytest.mark.parametrize("regime", ["fewshot", "adapters"])
@pytest.mark.parametrize("student", [{"layers": 1}, {"kind": "cnn"}])
def test_a_teacher_of_every_regime_distils_into_every_student_kind(tiny_bert, tmp_path, regime, student):
    teacher = teacher_of(regime, tiny_bert, tmp_path)
    out = tmp_path / "student"
    metrics = bertx.distill(
        {
            "teacher": str(teacher),
            "output": str(out),
            "student": student,
            "baseline": False,
            "data": {"train": str(tmp_path / "train.tsv"), "dev": str(tmp_path / "dev.tsv")},
            "train": {"epochs": 1, "batch_size": 8},
        },
        show_progress=False,
    )
    assert 0.0 <= metrics["accuracy"] <= 1.0
    predicted = bertx.Predictor.load(out).predict(["a good film", "the plot was dull"])
    assert all(p["label"] in ("neg", "pos") for p in predicted)


@pytest.mark.parametrize("regime", ["fewshot", "adapters"])
def test_plans_in_the_fewshot_and_adapter_regimes_ship_a_student(tiny_bert, tmp_path, regime):
    ledger = bertx.plan(lean_plan(tiny_bert, tmp_path, regime=regime, students=["bert-1"]), show_progress=False)
    assert ledger["stages"]["teacher"]["status"] == "done" and ledger["stages"]["compress"]["status"] == "done"
    assert [r["student"] for r in ledger["stages"]["compress"]["result"]["students"]][:1] == ["bert-1"]
    assert bertx.Predictor.load(ledger["summary"]["shipped_dir"]).predict(["a good film"])[0]["label"] in ("neg", "pos")


def test_a_rerun_refuses_inputs_that_changed_and_one_class_data_is_refused_first(tiny_bert, tmp_path):
    from bertx.errors import BertxError

    config = lean_plan(tiny_bert, tmp_path, students=["cnn"])
    bertx.plan(config, show_progress=False)
    train = Path(config["train"])
    train.write_text(train.read_text(encoding="utf-8").replace("\tpos\n", "\tneg\n", 1), encoding="utf-8")  # the user fixed a label
    with pytest.raises(BertxError, match=f"{train}: changed since this plan read it"):
        bertx.plan(config, show_progress=False)
    one_class = tmp_path / "one.tsv"
    one_class.write_text("sentence\tlabel\n" + "".join(f"a good film {i}\tpos\n" for i in range(300)), encoding="utf-8")
    with pytest.raises(BertxError, match=f"{one_class}: the plan's training examples hold one class only"):
        bertx.plan({**config, "train": str(one_class), "output": str(tmp_path / "other")}, dry_run=True, show_progress=False)


def test_with_a_latency_ratio_the_candidate_students_are_measured_not_predicted(tiny_bert, tmp_path):
    ledger = bertx.plan(lean_plan(tiny_bert, tmp_path, students=["bert-1", "cnn"], ship={"latency_ratio": 0.9}), show_progress=False)
    measured = ledger["stages"]["compress"]["result"]["measured"]
    assert measured and all(m["latency_ratio"] > 0 and m["baseline_ms_beside"] > 0 for m in measured.values())
    first = next(iter(measured))
    assert first == "cnn"  # the best expected student is measured first (the CNN before a 1-layer BERT)
    assert (Path(ledger["summary"]["shipped_dir"]).parent / "compress" / "probe" / f"{first}.export" / "model.onnx").is_file()
    why = next(d["why"] for d in ledger["decisions"] if d["decision"].startswith("try "))
    assert "measured (int8, beside the baseline)" in why


@pytest.mark.parametrize("student", [{"layers": 1}, {"kind": "bilstm"}])
def test_an_adapter_ner_teacher_distils_into_a_bert_and_a_bilstm_tagger(tiny_bert, tmp_path, student):
    """The regime matrix's token row: a LoRA tagger (what `regime: adapters` trains for NER) teaches a BERT
    student and a BiLSTM tagger, and both reload and tag."""
    from tests.recipes.test_token_tasks import config as token_config
    from tests.recipes.test_token_tasks import write_conll

    train, dev = write_conll(tmp_path / "train.txt", 80, 1), write_conll(tmp_path / "dev.txt", 20, 2)
    teacher = token_config(tiny_bert, "ner", train, dev, tmp_path / "teacher")
    teacher["peft"], teacher["train"]["epochs"] = {"method": "lora"}, 2
    bertx.finetune(teacher, show_progress=False)
    out = tmp_path / "student"
    metrics = bertx.distill(
        {
            "teacher": str(tmp_path / "teacher"),
            "output": str(out),
            "student": student,
            "baseline": False,
            "data": {"train": train, "dev": dev, "max_length": 32},
            "train": {"epochs": 1, "batch_size": 8},
        },
        show_progress=False,
    )
    assert 0.0 <= metrics["f1"] <= 1.0
    tagged = bertx.EntityPredictor(bertx.inference.loading.load_trained(out)).tag([["a", "good", "film"]])
    assert len(tagged[0][0]) == 3


def test_a_plan_in_the_multitask_regime_distils_its_selected_multitask_teacher(tiny_bert, tmp_path, monkeypatch):
    """Issue 40's matrix, its last row: a selected multi-task teacher (the target trained jointly with a source,
    then alone) hands the compress stage a teacher it can read, and the plan ships a student of it."""
    from bertx.recipes.plan import choose, stages
    from tests.recipes.test_plan import plan_config

    def chosen(ctx, source_examples=stages.SOURCE_EXAMPLES, closest=None):  # LogME on a tiny random encoder picks at random
        ctx.decide("choose", "sources toy", "forced by the test")
        return {"encoder": tiny_bert, "encoder_scores": None, "sources": {"toy": 0.0, "none": -1.0}, "helpful": ["toy"]}

    monkeypatch.setattr(choose, "choose", chosen)
    config = plan_config(tiny_bert, tmp_path, regime="multitask", encoders=[tiny_bert], students=["bert-1"], unlabelled=[])
    ledger = bertx.plan(config, show_progress=False)
    assert any(d["stage"] == "teacher" and d["decision"].startswith("regime multitask") for d in ledger["decisions"])
    teacher = ledger["stages"]["teacher"]["result"]["folder"]
    assert "multitask" in Path(teacher).parent.name or Path(teacher).name == "target", teacher
    assert ledger["stages"]["compress"]["result"]["students"][0]["student_kind"] == "bert-1"
    assert bertx.Predictor.load(ledger["summary"]["shipped_dir"]).predict(["a good film"])[0]["label"] in ("neg", "pos")
