"""`bertx tune` on the tiny BERT: trials run and are scored, poor trials are pruned, best.yaml fine-tunes
as it is, a second call continues the same study, bad spaces are one line."""

from __future__ import annotations

import json

import pytest
import yaml

from bertx.cli import main
from tests.conftest import tiny_config

SPACE = {"train.lr": {"type": "float", "low": 1e-4, "high": 5e-3, "log": True}, "train.batch_size": {"type": "categorical", "choices": [8, 16]}}


def test_trials_run_prune_and_continue(tiny_bert, toy_data, tmp_path):
    pytest.importorskip("optuna")
    config = tiny_config(tiny_bert, *toy_data, str(tmp_path / "final"), epochs=2, eval_steps=10)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    args = ["tune", str(tmp_path / "c.yaml"), "--trials", "5", "--space", str(tmp_path / "space.yaml"), "--output", str(tmp_path / "t")]
    assert main(args) == 0
    summary = json.loads((tmp_path / "t/tune.json").read_text())
    assert summary["complete"] + summary["pruned"] == 5 and summary["complete"] >= 3  # 3 startup trials are never pruned
    assert 0 <= summary["best_value"] <= 1 and set(summary["best_params"]) == set(SPACE)
    best = yaml.safe_load((tmp_path / "t/best.yaml").read_text())
    assert best["train"]["lr"] == summary["best_params"]["train.lr"] and best["output"] == str(tmp_path / "final")

    assert main(args[:3] + ["7"] + args[4:]) == 0  # the same study, two more trials
    assert json.loads((tmp_path / "t/tune.json").read_text())["trials"] == 7
    assert main(["finetune", str(tmp_path / "t/best.yaml")]) == 0


@pytest.mark.parametrize(
    "space, message",
    [
        ({"train.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3}}, "'train.learning_rate' is not a key"),
        ({"train.lr": {"type": "float", "low": 1e-3, "high": 1e-5}}, "needs numbers low < high"),
        ({"train.batch_size": {"type": "categorical"}}, "needs `choices`"),
    ],
)
def test_bad_space_is_one_line(tiny_bert, toy_data, tmp_path, capsys, space, message):
    pytest.importorskip("optuna")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_config(tiny_bert, *toy_data, str(tmp_path / "x"))))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    assert main(["tune", str(tmp_path / "c.yaml"), "--space", str(tmp_path / "space.yaml"), "--output", str(tmp_path / "t")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "space, message",
    [
        ({"train.batch_size": {"type": "categorical", "choices": [0, -5]}}, "train.batch_size = 0 is not a valid setting"),
        ({"train.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "a log-scaled dimension needs low > 0"),
        ({"train.epochs": {"type": "int", "low": 0.5, "high": 3}}, "needs whole numbers"),
        ({"train.lr": {"type": "float", "low": 1e-5, "high": 1e-3, "scale": "log"}}, "unknown fields ['scale']"),
    ],
)
def test_a_space_is_checked_against_the_schema_before_any_trial(tiny_bert, toy_data, tmp_path, capsys, space, message):
    """Issue 26 (3): a space that samples invalid values ran 3,449 failing trials in 400 s."""
    test_bad_space_is_one_line(tiny_bert, toy_data, tmp_path, capsys, space, message)
    assert not (tmp_path / "t").exists()


def test_failing_trials_stop_the_search_after_three_in_a_row(tiny_bert, toy_data, tmp_path, capsys, monkeypatch):
    pytest.importorskip("optuna")
    import bertx.recipes.tune as tune_module
    from bertx.errors import BertxError

    calls = []

    def failing(config, **kwargs):
        calls.append(config.output)
        raise BertxError("out of memory (simulated)")

    monkeypatch.setattr(tune_module, "finetune", failing)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_config(tiny_bert, *toy_data, str(tmp_path / "x"))))
    assert main(["tune", str(tmp_path / "c.yaml"), "--trials", "50", "--output", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert len(calls) == 3 and "3 trials in a row failed" in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [line for line in err.splitlines() if "trials in a row" in line]


def test_a_stop_inside_a_trial_ends_the_study_without_a_traceback(tiny_bert, toy_data, tmp_path, capsys, monkeypatch):
    """SIGTERM during a trial: no optuna traceback, and the hint is to rerun the same command (tune has no --resume)."""
    pytest.importorskip("optuna")
    import signal

    import bertx.recipes.tune as tune_module
    from bertx.errors import RunStopped

    def stopped(config, **kwargs):
        raise RunStopped(signal.SIGTERM, 4, tmp_path / "t" / "trial-0")

    monkeypatch.setattr(tune_module, "finetune", stopped)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_config(tiny_bert, *toy_data, str(tmp_path / "x"))))
    assert main(["tune", str(tmp_path / "c.yaml"), "--trials", "5", "--output", str(tmp_path / "t")]) == 143
    err = capsys.readouterr().err
    assert "run the same command again to continue the study" in err and "--resume" not in err and "Traceback" not in err
