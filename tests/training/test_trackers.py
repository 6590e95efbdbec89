"""`train.report_to`: a run's losses, learning rate, dev metrics and config reach TensorBoard and MLflow,
read back with each tool's own reader."""

from __future__ import annotations

import pytest

import bertx
from tests.conftest import tiny_config


def test_tensorboard_and_mlflow_receive_the_run(tiny_bert, toy_data, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    mlflow = pytest.importorskip("mlflow")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, *toy_data, str(out), epochs=2, report_to=["tensorboard", "mlflow"], logging_steps=5)
    metrics = bertx.finetune(config, show_progress=False)

    events = [p for p in (out / "tensorboard").rglob("events.out.tfevents.*")]
    assert events
    scalars = {}
    for path in events:
        accumulator = EventAccumulator(str(path.parent))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars[tag] = accumulator.Scalars(tag)
    assert {"train/loss", "train/lr", "eval/accuracy"} <= set(scalars)
    assert scalars["eval/accuracy"][-1].value == pytest.approx(metrics["accuracy"], abs=1e-6)

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bertx")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run" and run.data.params["train.lr"] == "0.003"
    assert run.data.metrics["eval/accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) >= 2
