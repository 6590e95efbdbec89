"""Multi-task PEFT on a tiny BERT: one adapter and head per task over one frozen encoder held once in
memory. Every task learns, the base folder is untouched, the adapters stay separate, each task exports to
an ordinary PEFT run folder that evaluates to the run's score and serves beside the others over one base,
a killed run resumes exactly, and a config that combines peft with select stops with one line."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import bertx
from bertx.cli import app
from bertx.config import MultitaskConfig, validate_config
from bertx.recipes.multitask import multitask
from bertx.recipes.task_folders import export_task
from tests.recipes.killing import kill_after_step
from tests.recipes.test_multitask import mt_config
from tests.recipes.test_peft import lora_lr

pytest.importorskip("peft")


def peft_mt_config(tiny_bert, tmp: Path, output: str, method: str = "lora", **train) -> dict:
    config = mt_config(tiny_bert, tmp, output, **{"lr": lora_lr(4) if method == "lora" else 1e-2, **train})
    config["peft"] = {"method": method, "r": 4}
    return config


@pytest.fixture(scope="module")
def lora_run(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mt-lora")
    config = validate_config(peft_mt_config(tiny_bert, tmp, str(tmp / "run")), schema=MultitaskConfig)
    return tmp, multitask(config, show_progress=False)


def base_weights(tiny_bert):
    from safetensors.torch import load_file

    return load_file(str(Path(tiny_bert) / "model.safetensors"))


def test_each_task_learns_its_own_adapter_over_one_frozen_encoder(lora_run, tiny_bert):
    tmp, final = lora_run
    assert final["tasks"]["sent"]["accuracy"] > 0.7 and final["tasks"]["ner"]["f1"] > 0.3, final["tasks"]
    run = tmp / "run"
    assert sorted(p.name for p in (run / "adapters").iterdir()) == ["ner", "pair", "sent"]
    assert not (run / "model.safetensors").exists()  # no copy of the encoder anywhere
    for head in ("ner", "pair", "sent"):
        assert (run / "adapters" / head / "adapter_model.safetensors").is_file()
    start = json.loads((run / "log.jsonl").read_text().splitlines()[0])
    base = sum(t.numel() for t in base_weights(tiny_bert).values())
    # Three task models, but the encoder's weights are counted once (copies would make it over 3x the base);
    # what is added: the adapters, the heads and the pooler each sequence head trains (the tiny base lacks one).
    assert start["total_parameters"] < 2 * base, (start["total_parameters"], base)
    assert 0 < start["trainable_parameters"] < 0.5 * start["total_parameters"]
    assert all(start["heads"][head]["peft"] == "lora" for head in ("ner", "pair", "sent"))


def test_adapters_stay_separate_and_export_as_peft_run_folders(lora_run, tiny_bert):
    from safetensors.torch import load_file

    tmp, final = lora_run
    before = base_weights(tiny_bert)
    sent = load_file(str(tmp / "run/adapters/sent/adapter_model.safetensors"))
    pair = load_file(str(tmp / "run/adapters/pair/adapter_model.safetensors"))
    shared = [k for k in sent if "lora_B" in k and k in pair]
    assert shared and all(not torch.equal(sent[k], pair[k]) for k in shared)  # each task trained its own pair
    for name, dev, metric in (("sent", "sent-dev.tsv", "accuracy"), ("ner", "ner-dev.txt", "f1")):
        out = export_task(tmp / "run", name, tmp / f"export-{name}")
        assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
        assert bertx.evaluate(out, str(tmp / dev))[metric] == pytest.approx(final["tasks"][name][metric])
    after = base_weights(tiny_bert)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the base folder is untouched


def test_exported_adapters_serve_over_one_base(lora_run):
    from bertx.serve.shared_adapters import shared_groups
    from bertx.training.outputs import read_run_config

    tmp, _ = lora_run
    for name in ("sent", "pair"):
        if not (tmp / f"export-{name}").exists():
            export_task(tmp / "run", name, tmp / f"export-{name}")
    groups = shared_groups({"a": str(tmp / "export-sent"), "b": str(tmp / "export-pair")}, read_run_config)
    assert [sorted(name for name, _ in group) for group in groups] == [["a", "b"]]


def test_bitfit_keeps_each_tasks_biases_apart(tiny_bert, tmp_path):
    from safetensors.torch import load_file

    config = peft_mt_config(tiny_bert, tmp_path, str(tmp_path / "run"), method="bitfit", epochs=2)
    config["tasks"] = config["tasks"][:2]
    bertx.multitask(config, show_progress=False)
    sent = load_file(str(tmp_path / "run/adapters/sent/bitfit_model.safetensors"))
    pair = load_file(str(tmp_path / "run/adapters/pair/bitfit_model.safetensors"))
    biases = [k for k in sent if k.endswith(".bias") and ".encoder." in k]
    assert biases and all(not torch.equal(sent[k], pair[k]) for k in biases)
    assert all(k.endswith(".bias") or k.startswith(("classifier.", "bert.pooler.")) for k in sent), sorted(sent)


def test_killed_peft_multitask_run_resumes_to_the_same_result(tiny_bert, tmp_path):
    def config(name):
        c = peft_mt_config(tiny_bert, tmp_path, str(tmp_path / name), epochs=2, save_steps=7, eval_steps=10)
        c["tasks"] = c["tasks"][:2]
        return c

    whole = bertx.multitask(config("whole"), show_progress=False)
    kill_after_step("multitask", config("killed"), 16)
    resumed = multitask(validate_config(config("killed"), schema=MultitaskConfig), resume=True, show_progress=False)
    assert resumed["tasks"] == whole["tasks"] and resumed["best_step"] == whole["best_step"]
    for name in ("adapters/sent/adapter_model.safetensors", "adapters/pair/adapter_model.safetensors"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--peft", "lora", "--select", "sent"], "select: and peft: do not combine"),
        (["--select", "nope"], "select.target 'nope' is not one of the tasks"),
        (["--peft", "adapterdrop"], "peft.method: Input should be"),
    ],
)
def test_bad_adapter_and_selection_flags_stop_with_one_line(tiny_bert, tmp_path, flags, message):
    import yaml

    config = mt_config(tiny_bert, tmp_path, str(tmp_path / "bad-run"), epochs=1)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["multitask", str(tmp_path / "bad.yaml"), *flags])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "bad-run").exists()


def test_cli_override_turns_adapters_on(tiny_bert, tmp_path):
    import yaml

    config = mt_config(tiny_bert, tmp_path, str(tmp_path / "cli-run"), epochs=1)
    config["tasks"] = config["tasks"][:1]
    (tmp_path / "mt.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["multitask", str(tmp_path / "mt.yaml"), "peft.method=ia3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli-run/adapters/sent/adapter_config.json").is_file()
    assert json.loads((tmp_path / "cli-run/adapters/sent/adapter_config.json").read_text())["peft_type"] == "IA3"
