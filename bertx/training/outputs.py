"""The output folder: refuse to mix two runs, save the run config, publish the best model.

Layout of a finished run:
    OUTPUT/config.json, model.safetensors, tokenizer files   the best model, HF-compatible
    OUTPUT/bertx_run.yaml                                    the resolved run config
    OUTPUT/metrics.json                                      final dev metrics and run figures
    OUTPUT/log.jsonl                                         training and evaluation log
    OUTPUT/best/                                             the best model while training runs
    OUTPUT/checkpoints/                                      resumable state
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml

from bertx.errors import BertxError

RUN_FILE = "bertx_run.yaml"
# Fields a resumed run may change: they steer how long and how chattily it runs, not what it learns.
RESUMABLE_CHANGES = {"epochs", "max_steps", "early_stopping_patience", "eval_steps", "save_steps", "logging_steps"}
# Keys the run adds after reading its data (found columns, label names): not settings.
DERIVED = {"columns", "labels", "multitask", "distilled_from"}


def prepare_output(out: Path, run: dict, resume: bool, overwrite: bool) -> None:
    """Check the output folder suits this run; create it.

    Raises:
        BertxError: the folder holds another run (and neither --resume nor --overwrite was given),
            or --resume was given for a run with different settings.
    """
    run_file = out / RUN_FILE
    if resume:
        if not run_file.is_file():
            raise BertxError(f"{out}: nothing to resume (no {RUN_FILE}); drop --resume to start a new run")
        previous = yaml.safe_load(run_file.read_text(encoding="utf-8"))
        differences = _differences(previous, run)
        if differences:
            raise BertxError(f"{run_file}: --resume with other settings than the saved run: {'; '.join(differences)}")
        return
    if out.exists() and any(out.iterdir()):
        if overwrite:
            shutil.rmtree(out)
        elif run_file.is_file():
            raise BertxError(
                f"{out}: holds another run ({RUN_FILE}); pass --resume to continue it, --overwrite to replace it, "
                "or choose another --output"
            )
        else:
            raise BertxError(f"{out}: output folder is not empty and holds no bertx run; choose another --output")
    out.mkdir(parents=True, exist_ok=True)


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    found = []
    for key in sorted((set(old) | set(new)) - (DERIVED if not prefix else set())):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found.extend(_differences(a, b, f"{prefix}{key}."))
        elif a != b and key not in RESUMABLE_CHANGES:
            found.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return found


def write_run_config(out: Path, run: dict) -> None:
    (out / RUN_FILE).write_text(yaml.safe_dump(run, sort_keys=False), encoding="utf-8")


def read_run_config(model_dir: Path) -> dict | None:
    path = model_dir / RUN_FILE
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


def save_model_atomic(model, tokenizer, target: Path) -> None:
    """save_pretrained into a temporary folder, then swap it in: never a half-written model."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    old = target.with_name(target.name + ".old")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def publish(best: Path, out: Path) -> None:
    """Copy the best model's files into the output root, where `from_pretrained(OUTPUT)` finds them."""
    for file in best.iterdir():
        shutil.copy2(file, out / file.name)


def write_metrics(out: Path, metrics: dict) -> None:
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "metrics.json")
