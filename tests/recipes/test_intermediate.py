"""Intermediate-task transfer on the tiny BERT: the source x target matrix is complete, its files
agree, a rerun reuses finished runs, and target models are not kept unless asked."""

import json

from typer.testing import CliRunner

from bertx.cli import app
from bertx.config import IntermediateConfig, validate_config
from bertx.recipes import intermediate as recipe
from tests.conftest import write_toy_classification


def config(tiny_bert, tmp_path) -> dict:
    files = {
        "sent": (write_toy_classification(tmp_path / "s.tsv", 240, 1), write_toy_classification(tmp_path / "sd.tsv", 60, 2)),
        "pair": (
            write_toy_classification(tmp_path / "p.tsv", 120, 3, labels=("no", "yes"), pair=True),
            write_toy_classification(tmp_path / "pd.tsv", 60, 4, labels=("no", "yes"), pair=True),
        ),
    }
    kinds = {"sent": "classification", "pair": "pair-classification"}
    return {
        "output": str(tmp_path / "matrix"),
        "model": {"name_or_path": tiny_bert, "freeze_word_embeddings": False},
        "tasks": [{"name": n, "kind": kinds[n], "train": str(f[0]), "dev": str(f[1]), "data": {"max_length": 32}} for n, f in files.items()],
        "train": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "save_steps": None, "seed": 7},
    }


def test_matrix_is_complete_and_reruns_reuse_finished_runs(tiny_bert, tmp_path, monkeypatch):
    cfg = validate_config(config(tiny_bert, tmp_path), schema=IntermediateConfig)
    result = recipe.intermediate(cfg, show_progress=False)
    assert result["rows"] == ["sent", "pair"] and result["columns"] == ["sent", "pair"]
    assert all(isinstance(v, float) for row in result["values"] for v in row) and len(result["baseline"]) == 2
    assert result["values"][0][0] > 90  # sentiment after sentiment: accuracy in points
    assert result["gains"][1][0] == result["values"][1][0] - result["baseline"][0]
    # The toy pair task is too small to learn from scratch here; after the sentiment source it is easy.
    assert result["gains"][0][1] > 20
    out = tmp_path / "matrix"
    assert json.loads((out / "matrix.json").read_text())["values"] == result["values"]
    assert (out / "matrix.md").is_file() and (out / "matrix.png").stat().st_size > 2000
    assert (out / "sources/sent/encoder/config.json").is_file()
    assert not (out / "transfer/sent-to-pair/model.safetensors").exists()  # scores kept, weights not
    # The predicted ranking: each target's one other source, scored by every estimator, beside its gain.
    predicted = json.loads((out / "predicted.json").read_text())
    assert set(predicted["scores"]) == {"logme", "hscore", "knn", "probe"}
    assert list(predicted["scores"]["logme"]["pair"]) == ["sent"] and predicted["measured_gains"]["pair"]["sent"] == result["gains"][0][1]
    assert predicted["agreement"]["logme"]["targets"]["pair"]["regret"] == 0.0 and "| logme |" in (out / "predicted.md").read_text()

    calls = []
    monkeypatch.setattr(recipe, "finetune", lambda *a, **k: calls.append(a))
    assert recipe.intermediate(cfg, show_progress=False)["values"] == result["values"]
    assert calls == []


def test_intermediate_cli_rejects_an_unknown_target(tiny_bert, tmp_path):
    import yaml

    bad = config(tiny_bert, tmp_path)
    bad["targets"] = ["sent", "qnli"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = CliRunner().invoke(app, ["intermediate", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "target 'qnli' is not one of the tasks (sent, pair)" in result.output
