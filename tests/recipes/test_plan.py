"""`bertx plan` on the tiny BERT and the toy sentiment data: every stage runs and leaves a run folder, each
decision is in plan.json and report.html, --dry-run trains nothing, a budget too small for a stage skips
it with the reason, a plan killed in its teacher stage continues there and ships the same model, and bad
plans are one line each."""

from __future__ import annotations

import html
import json
import random
from pathlib import Path

import pytest
import yaml

import bertx
from bertx.cli import main
from tests.conftest import toy_sentence, write_toy_classification
from tests.recipes.killing import kill_after_step


def plan_config(tiny_bert: str, root: Path, **changes) -> dict:
    """A plan with every input: a labelled draw, the rest and a text file as unlabelled text, a source
    task, two candidate encoders (the same tiny BERT twice), and fast students."""
    root.mkdir(parents=True, exist_ok=True)
    write_toy_classification(root / "train.tsv", 400, 1)
    write_toy_classification(root / "dev.tsv", 60, 2)
    write_toy_classification(root / "source.tsv", 200, 3)
    rng = random.Random(4)
    (root / "text.txt").write_text("".join(toy_sentence(rng, rng.random() < 0.5) + "\n" for _ in range(400)), encoding="utf-8")
    (root / "sources.yaml").write_text(
        yaml.safe_dump(
            {
                "output": str(root / "sources"),
                "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
                "tasks": [{"name": "toy", "kind": "classification", "train": str(root / "source.tsv"), "data": {"max_length": 32}}],
                "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "save_steps": None},
            }
        ),
        encoding="utf-8",
    )
    twin = root / "twin"
    if not twin.exists():
        twin.symlink_to(tiny_bert, target_is_directory=True)
    config = {
        "task": "classification",
        "train": str(root / "train.tsv"),
        "dev": str(root / "dev.tsv"),
        "labelled": 160,
        "unlabelled_rest": True,
        "unlabelled": [str(root / "text.txt")],
        "sources": str(root / "sources.yaml"),
        "encoders": [tiny_bert, str(twin)],
        "budget": "30m",
        "output": str(root / "plan"),
        "students": ["bert-1", "cnn"],
        "augment": 1,
        "seed": 3,
    }
    config.update(changes)
    return config


@pytest.fixture(scope="module")
def finished(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    config = plan_config(tiny_bert, root)
    return root, config, bertx.plan(config, show_progress=False)


def test_every_stage_runs_leaves_its_folder_and_ships(finished):
    root, config, ledger = finished
    out = Path(config["output"])
    stages = ledger["stages"]
    assert [s for s in ("profile", "baseline", "choose", "adapt", "teacher", "compress", "ship", "report") if stages[s]["status"] == "done"] == [
        "profile",
        "baseline",
        "choose",
        "adapt",
        "teacher",
        "compress",
        "ship",
        "report",
    ]
    for folder in (out / "baseline", out / "adapt", Path(stages["teacher"]["result"]["folder"]), out / "ship"):
        assert (folder / "bertx_run.yaml").is_file(), folder
    profile = stages["profile"]["result"]
    assert profile["profile"]["train_examples"] == 160 and profile["inputs"]["draws"]["unlabelled_rest"] == 240
    assert Path(profile["inputs"]["unlabelled"][-1]).parent == out / "profile" / "data"
    shipped = bertx.Predictor.load(out / "ship").predict(["a good film", "the plot was dull"])
    assert all(p["label"] in ("neg", "pos") for p in shipped)
    summary = ledger["summary"]
    assert summary["shipped_dir"] == str(out / "ship") and summary["latency_ratio"] > 0
    assert json.loads((out / "plan.json").read_text())["summary"]["shipped"] == summary["shipped"]


def test_each_decision_is_in_plan_json_and_the_report(finished):
    _, config, ledger = finished
    decided = {d["stage"] for d in ledger["decisions"]}
    assert {"choose", "adapt", "teacher", "compress"} <= decided
    page = (Path(config["output"]) / "report.html").read_text(encoding="utf-8")
    for decision in ledger["decisions"]:
        assert html.escape(decision["decision"].split(",")[0]) in page
    assert "Shipped against the baseline" in page and "Students" in page


def test_a_rerun_reuses_every_finished_stage(finished, capsys):
    _, config, ledger = finished
    again = bertx.plan(config, show_progress=False)
    assert again["summary"] == {**ledger["summary"], "wall_s": again["summary"]["wall_s"]}
    assert again["elapsed_s"] == pytest.approx(ledger["elapsed_s"], abs=1.0)  # the report rewritten, nothing trained


def test_dry_run_trains_nothing_and_prints_each_stage(tiny_bert, tmp_path, capsys):
    config = plan_config(tiny_bert, tmp_path)
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["plan", str(tmp_path / "plan.yaml"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert not Path(config["output"]).exists() and not (tmp_path / "sources").exists()
    for stage in ("baseline", "choose", "adapt", "teacher", "compress", "ship"):
        assert f"  {stage}" in printed
    assert "estimated total" in printed
    total = float(printed.split("estimated total ")[1].split(" min")[0])
    with_levers = float(printed.split("up to ")[1].split(" min if the best student does not beat the baseline")[0])
    assert with_levers > total  # the levers are priced apart: they run only when the best student does not beat the baseline


def test_a_budget_too_small_skips_stages_with_the_reason(tiny_bert, tmp_path):
    config = plan_config(tiny_bert, tmp_path, budget="1m")
    rows = {r["stage"]: r for r in bertx.plan(config, dry_run=True, show_progress=False)["schedule"]}
    assert not rows["choose"]["run"] and "does not fit the budget" in rows["choose"]["reason"]
    assert not rows["adapt"]["run"] and "budget" in rows["adapt"]["reason"]
    assert rows["teacher"]["run"] and rows["ship"]["run"]  # what every plan needs is kept, shortened
    little_text = plan_config(tiny_bert, tmp_path / "b", unlabelled=[], unlabelled_rest=False)
    rows = {r["stage"]: r for r in bertx.plan(little_text, dry_run=True, show_progress=False)["schedule"]}
    assert not rows["adapt"]["run"] and "too little unlabelled text" in rows["adapt"]["reason"]


def test_sigkill_in_the_teacher_stage_then_a_rerun_continues_there_and_ships_the_same_model(tiny_bert, tmp_path):
    # No latency target: which student ships depends on dev scores only, not on timings.
    config = plan_config(tiny_bert, tmp_path, sources=None, unlabelled=[], unlabelled_rest=False, encoders=[tiny_bert], students=["cnn"])
    whole = bertx.plan({**config, "output": str(tmp_path / "whole")}, show_progress=False)
    kill_after_step("plan", config, 120, inside="bertx.recipes.plan.stages:teacher")
    out = Path(config["output"])
    ledger = json.loads((out / "plan.json").read_text())
    assert ledger["stages"]["baseline"]["status"] == "done" and "teacher" not in ledger["stages"]
    assert (out / "teacher" / "checkpoints").is_dir()
    resumed = bertx.plan(config, show_progress=False)
    log = [json.loads(line) for line in (out / "teacher" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "resume" for r in log)
    assert resumed["summary"]["teacher"] == whole["summary"]["teacher"]
    assert resumed["summary"]["shipped"] == whole["summary"]["shipped"]
    texts = ["a good film", "the plot was dull", "it was superb and warm", "cold and weak"]
    ours = bertx.Predictor.load(out / "ship").predict(texts)
    reference = bertx.Predictor.load(tmp_path / "whole" / "ship").predict(texts)
    for a, b in zip(ours, reference):
        assert a["label"] == b["label"] and a["probs"] == pytest.approx(b["probs"], abs=1e-4)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"trian": "x.tsv"}, "trian"),
        ({"train": "missing.tsv"}, "missing.tsv: file not found"),
        ({"budget": "soon"}, "write a duration"),
        ({"budget": "1s"}, "at least a minute"),
        ({"ship": {"latency_ms": 0.0001}}, "no model can meet it"),
        ({"ship": {"size_mb": 0.0000001}}, "smallest student"),
        ({"regime": "fewshot", "task": "regression"}, "regime fewshot applies"),
        ({"unlabelled_rest": True, "labelled": None}, "unlabelled_rest needs"),
    ],
)
def test_bad_plans_are_one_line_before_any_work(tiny_bert, tmp_path, capsys, change, message):
    config = {**plan_config(tiny_bert, tmp_path), **change}
    config = {k: v for k, v in config.items() if v is not None}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["plan", str(tmp_path / "plan.yaml")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "plan" / "baseline").exists()


def test_a_plan_and_a_training_run_never_claim_each_others_folders(finished, tiny_bert, tmp_path, capsys):
    """A plan is its own folder kind: it neither runs inside a training run nor replaces one, a run or an
    export never replaces a plan, and a refused plan rerun leaves the plan's files as they were."""
    from tests.conftest import tiny_config

    root, config, _ = finished
    plan_dir = Path(config["output"])
    train = str(root / "train.tsv")
    bertx.finetune(tiny_config(tiny_bert, train, None, str(tmp_path / "run"), max_steps=2), show_progress=False)
    run_file = (tmp_path / "run" / "bertx_run.yaml").read_bytes()
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for extra in ([], ["--overwrite"]):
        assert main(["plan", str(tmp_path / "plan.yaml"), "--output", str(tmp_path / "run"), *extra]) == 2
        assert "holds a bertx run folder" in capsys.readouterr().err
        assert (tmp_path / "run" / "bertx_run.yaml").read_bytes() == run_file and (tmp_path / "run" / "model.safetensors").is_file()

    plan_files = {p.name: p.read_bytes() for p in plan_dir.iterdir() if p.is_file()}
    for extra in ([], ["--overwrite"]):
        assert main(["finetune", "--model", tiny_bert, "--train", train, "--output", str(plan_dir), "--max-steps", "1", *extra]) == 2
        assert "holds a bertx plan folder" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "run"), "--output", str(plan_dir), "--overwrite"]) == 2
    assert "holds a bertx plan folder" in capsys.readouterr().err
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({**config, "seed": 99}), encoding="utf-8")
    assert main(["plan", str(tmp_path / "other.yaml")]) == 2
    assert "a plan with other settings (seed)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in plan_dir.iterdir() if p.is_file()} == plan_files  # nothing rewritten


def test_a_bad_line_is_named_in_the_users_file_not_in_the_plans_draws(tiny_bert, tmp_path, capsys):
    config = plan_config(tiny_bert, tmp_path, dev=None)
    lines = (tmp_path / "train.tsv").read_bytes().split(b"\n")
    lines[41] = lines[41].replace(b"\t", b"\x00\t", 1)  # a NUL byte on the user's line 42
    (tmp_path / "train.tsv").write_bytes(b"\n".join(lines))
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({k: v for k, v in config.items() if v is not None}), encoding="utf-8")
    assert main(["plan", str(tmp_path / "plan.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'train.tsv'}:42: NUL byte" in err and "profile" not in err, err
