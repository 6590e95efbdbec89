"""The multi-task recipe on a tiny random BERT: three task kinds share one encoder and all learn; the
folder holds encoder + heads; each task exports to a standalone model that evaluates to the same
score; `finetune --model MT_DIR` starts from the shared encoder; a killed run resumes exactly; bad
configs stop with one line before training."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bertx
from bertx.cli import app
from bertx.config import MultitaskConfig, validate_config
from bertx.errors import BertxError
from bertx.recipes.multitask import multitask
from bertx.recipes.task_folders import export_task
from tests.conftest import write_toy_classification
from tests.recipes.killing import kill_after_step
from tests.recipes.test_token_tasks import write_conll


def toy_tasks(tmp: Path) -> dict:
    return {
        "sent": (write_toy_classification(tmp / "sent.tsv", 240, 1), write_toy_classification(tmp / "sent-dev.tsv", 80, 2)),
        "pair": (
            write_toy_classification(tmp / "pair.tsv", 120, 3, labels=("no", "yes"), pair=True),
            write_toy_classification(tmp / "pair-dev.tsv", 60, 4, labels=("no", "yes"), pair=True),
        ),
        "ner": (write_conll(tmp / "ner.txt", 200, 5), write_conll(tmp / "ner-dev.txt", 50, 6)),
    }


def mt_config(tiny_bert: str, tmp: Path, output: str, **train) -> dict:
    files = toy_tasks(tmp)
    kinds = {"sent": "classification", "pair": "pair-classification", "ner": "ner"}
    return {
        "output": output,
        "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
        "tasks": [
            {"name": name, "kind": kinds[name], "train": str(files[name][0]), "dev": str(files[name][1]), "data": {"max_length": 32}}
            for name in files
        ],
        "sampling": {"strategy": "temperature", "temperature": 2.0},
        "train": {"epochs": 6, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 5, **train},
    }


@pytest.fixture(scope="module")
def mt_run(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mt")
    config = validate_config(mt_config(tiny_bert, tmp, str(tmp / "run")), schema=MultitaskConfig)
    return tmp, multitask(config, show_progress=False)


def test_every_task_learns_on_one_shared_encoder(mt_run):
    tmp, final = mt_run
    assert final["tasks"]["sent"]["accuracy"] > 0.9 and final["tasks"]["pair"]["accuracy"] > 0.75
    assert final["tasks"]["ner"]["f1"] > 0.6, final["tasks"]["ner"]
    mean = (final["tasks"]["sent"]["accuracy"] + final["tasks"]["pair"]["accuracy"] + final["tasks"]["ner"]["f1"]) / 3
    assert final["mean"] == pytest.approx(mean)
    assert sum(final["batches_per_task"].values()) == final["steps"]
    # Temperature 2 over sizes 240/120/200 examples: every task drew batches, the biggest the most.
    assert final["batches_per_task"]["sent"] > final["batches_per_task"]["pair"] > 0

    run = tmp / "run"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "bertx_run.yaml", "metrics.json", "log.jsonl", "report.md"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "heads").iterdir()) == ["ner", "pair", "sent"]
    config = json.loads((run / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and "entailment" not in json.dumps(config)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    evals = [r for r in log if r["event"] == "eval"]
    assert evals and {"sent/accuracy", "pair/accuracy", "ner/f1", "mean"} <= set(evals[-1])
    assert any(k.startswith("loss/") for r in log if r["event"] == "train" for k in r)
    assert "| **mean** |" in (run / "report.md").read_text()


def test_exported_tasks_are_standalone_models_with_the_same_scores(mt_run):
    tmp, final = mt_run
    for name, dev, metric in (("pair", "pair-dev.tsv", "accuracy"), ("ner", "ner-dev.txt", "f1")):
        out = export_task(tmp / "run", name, tmp / f"export-{name}")
        assert bertx.evaluate(out, str(tmp / dev))[metric] == pytest.approx(final["tasks"][name][metric])

    from transformers import pipeline

    classify = pipeline("text-classification", model=str(tmp / "export-pair"))
    assert classify({"text": "great superb film", "text_pair": "lovely happy story"})["label"] in ("yes", "no")
    with pytest.raises(BertxError, match="no task 'nope'"):
        export_task(tmp / "run", "nope", tmp / "x")
    with pytest.raises(BertxError, match="a multi-task folder"):
        bertx.Predictor.load(tmp / "run")


def test_finetune_starts_from_the_shared_encoder(mt_run, tmp_path):
    tmp, _ = mt_run
    train, dev = tmp / "sent.tsv", tmp / "sent-dev.tsv"
    metrics = bertx.finetune(
        {
            "task": "classification",
            "output": str(tmp_path / "ft"),
            "model": {"name_or_path": str(tmp / "run"), "freeze_word_embeddings": False},
            "data": {"train": str(train), "dev": str(dev), "max_length": 32},
            "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "save_steps": None},
        },
        show_progress=False,
    )
    assert metrics["accuracy"] > 0.9  # one epoch from the multi-task encoder is already right


def test_multitask_cli_and_export(tiny_bert, tmp_path):
    import yaml

    config = mt_config(tiny_bert, tmp_path, str(tmp_path / "cli-run"), epochs=1)
    config["tasks"] = config["tasks"][:2]
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(config))
    runner = CliRunner()
    result = runner.invoke(app, ["multitask", str(tmp_path / "mt.yaml"), "sampling.strategy=round-robin"])
    assert result.exit_code == 0, result.output
    assert "| sent | accuracy |" in result.output and "| **mean** |" in result.output
    result = runner.invoke(app, ["multitask-export", str(tmp_path / "cli-run"), "--task", "sent", "--output", str(tmp_path / "sent")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["predict", str(tmp_path / "sent"), "--input", str(tmp_path / "sent-dev.tsv")])
    assert result.exit_code == 0 and result.output.count('"label"') == 80


def test_killed_multitask_run_resumes_to_the_same_result(tiny_bert, tmp_path):
    def config(name):
        c = mt_config(tiny_bert, tmp_path, str(tmp_path / name), epochs=2, save_steps=7, eval_steps=10)
        c["tasks"] = c["tasks"][:2]
        return c

    whole = bertx.multitask(config("whole"), show_progress=False)  # the Python API takes a dict too
    kill_after_step("multitask", config("killed"), 16)
    resumed = multitask(validate_config(config("killed"), schema=MultitaskConfig), resume=True, show_progress=False)
    assert resumed["tasks"] == whole["tasks"] and resumed["best_step"] == whole["best_step"]
    assert resumed["batches_per_task"] == whole["batches_per_task"]
    for name in ("model.safetensors", "heads/sent/head.safetensors", "heads/pair/head.safetensors"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def bad_config(tmp_path, tiny_bert, change) -> str:
    import yaml

    config = mt_config(tiny_bert, tmp_path, str(tmp_path / "bad-run"), epochs=1)
    change(config)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    return str(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: c["tasks"].append(dict(c["tasks"][0])), "task name 'sent' appears twice"),
        (lambda c: c["tasks"][1].update(train="/no/such/pair.tsv"), "task 'pair': train file /no/such/pair.tsv: file not found"),
        (lambda c: c["tasks"][0].update(kind="summarise"), "task 'sent': unknown kind 'summarise'"),
        (lambda c: c["sampling"].update(strategy="sometimes"), "sampling.strategy: Input should be"),
        (lambda c: c["sampling"].update(temperature=0), "sampling.temperature: Input should be greater than 0"),
        (lambda c: c["tasks"][1].update(head="sent", kind="classification"), "share head 'sent' but their label sets differ"),
        (lambda c: c["tasks"][2].update(head="sent"), "cannot share head 'sent': their kinds differ"),
        (lambda c: c["train"].update(metric_for_best="accuracy"), "set a task's `metric:` instead"),
    ],
)
def test_bad_configs_stop_with_one_line_before_training(tiny_bert, tmp_path, change, message):
    result = CliRunner().invoke(app, ["multitask", bad_config(tmp_path, tiny_bert, change)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "bad-run" / "log.jsonl").exists()  # stopped before any training


def test_one_task_multitask_run_is_fine_tuning(tiny_bert, tmp_path):
    """With one task, the multi-task loop must be exactly the fine-tuning loop: same batches, same steps,
    same evaluation, same weights (to float rounding)."""
    from safetensors.torch import load_file

    from tests.conftest import tiny_config

    train = str(write_toy_classification(tmp_path / "t.tsv", 160, 1))
    dev = str(write_toy_classification(tmp_path / "d.tsv", 60, 2))
    single = bertx.finetune(tiny_config(tiny_bert, train, dev, str(tmp_path / "ft"), epochs=2), show_progress=False)
    mt = bertx.multitask(
        {
            "output": str(tmp_path / "mt"),
            "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
            "tasks": [{"name": "only", "kind": "classification", "train": train, "dev": dev, "data": {"max_length": 32}}],
            "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 7},
        },
        show_progress=False,
    )
    assert mt["steps"] == single["steps"] and mt["best_step"] == single["best_step"]
    assert mt["tasks"]["only"]["accuracy"] == single["accuracy"]
    encoder, heads = load_file(tmp_path / "mt/model.safetensors"), load_file(tmp_path / "mt/heads/only/head.safetensors")
    reference = load_file(tmp_path / "ft/model.safetensors")
    worst = max((reference[f"bert.{k}"] - v).abs().max().item() for k, v in encoder.items())
    worst = max([worst] + [(reference[k] - v).abs().max().item() for k, v in heads.items()])
    assert worst < 1e-5, worst
