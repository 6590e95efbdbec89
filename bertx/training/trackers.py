"""Runs you can watch: the run log mirrored into TensorBoard and MLflow through Accelerate's trackers.

Every recipe already writes one `log.jsonl` line per event (start, train, eval, end); `train.report_to`
sends the numbers of the same lines to the trackers, so every recipe gets tracking without code of
its own, and the two can never disagree:

    train line {step, loss, lr, samples_per_s, ...} -> train/loss, train/lr, ... at that step
    eval line  {step, accuracy, ...} or {step, rte: {accuracy}} -> eval/accuracy, eval/rte/accuracy
    the resolved run config -> hyper-parameters (dotted keys; lists and None as text)

TensorBoard event files go to OUTPUT/tensorboard/. MLflow logs where $MLFLOW_TRACKING_URI points, or
to the local SQLite store OUTPUT/mlflow.db when it is unset; the experiment is `bertx`, the run is named after
the output folder.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

EXPERIMENT = "bertx"


def accelerator_options(report_to: list[str], out: str | Path | None) -> dict:
    """Keyword arguments of `Accelerator(...)` for the chosen trackers."""
    if not report_to:
        return {}
    if "mlflow" in report_to and not os.environ.get("MLFLOW_TRACKING_URI") and out is not None:
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{Path(out).resolve() / 'mlflow.db'}")  # MLflow 3's local default store
    return {"log_with": list(report_to), "project_dir": str(Path(out) / "tensorboard") if out is not None else None}


def flat(values: dict, prefix: str = "") -> dict:
    """Nested dicts as dotted keys; lists, None and other objects as text (what hparams accept)."""
    found = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(flat(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            found[name] = value
        else:
            found[name] = str(value)
    return found


def numbers(record: dict, prefix: str, top: bool = True) -> dict[str, float]:
    """The finite numbers of one log line, nested keys joined by '/' (the line's step and time left out)."""
    found = {}
    for key, value in record.items():
        if top and key in ("step", "time", "event"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(numbers(value, f"{name}/", top=False))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            found[name] = float(value)
    return found


class Trackers:
    """Started with the run's config; `write` takes every log line; `close` ends the tracker runs."""

    def __init__(self, accelerator, report_to: list[str], run_name: str):
        self.accelerator, self.report_to, self.run_name = accelerator, list(report_to), run_name
        self.started = False

    def start(self, run_config: dict) -> None:
        if not self.report_to or self.started:
            return
        init = {"mlflow": {"run_name": self.run_name}} if "mlflow" in self.report_to else {}
        self.accelerator.init_trackers(EXPERIMENT, config=flat(run_config), init_kwargs=init)
        self.started = True

    def write(self, record: dict) -> None:
        if not self.started or "step" not in record:
            return
        event = record.get("event", "train")
        values = numbers(record, f"{event}/")
        if values:
            self.accelerator.log(values, step=int(record["step"]))

    def close(self) -> None:
        if self.started:
            self.accelerator.end_training()
            self.started = False
