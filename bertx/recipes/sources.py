"""Source tasks as encoders: each source fine-tuned once from the base encoder, its encoder kept, and
ranked for a target from frozen features.

    source task --finetune (once; a finished run is reused)--> sources/NAME/ --its encoder--> sources/NAME/encoder/
    target training file + [base encoder ("none"), every source encoder] --bertx rank--> ranking
    a source is *helpful* when it scores above "none": its fine-tuning moved the features towards the target

Used by `bertx rank --sources`, by `bertx intermediate` (the predicted ranking beside the measured
matrix) and by `bertx multitask` with `select:`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from bertx import runfolder
from bertx.config import DataConfig, SourcesConfig, TaskEntry
from bertx.errors import BertxError
from bertx.evaluation.rank import rank
from bertx.metrics.transferability import ESTIMATORS
from bertx.models.encoder import resolve_model_path, save_encoder, without_load_report
from bertx.recipes.finetune import finetune
from bertx.training import outputs
from bertx.console import say

BASE = "none"  # the candidate name of the encoder the sources started from


def train_sources(
    entries: list[TaskEntry], folder: Path, run_config: Callable[[TaskEntry, str], object], show_progress: bool = False, log=say
) -> dict[str, Path]:
    """Fine-tune every source into `folder/NAME` unless that run finished before; their encoders by name."""
    encoders = {}
    for entry in entries:
        run = folder / entry.name
        if not (run / "metrics.json").is_file():
            log(f"[sources] fine-tuning source {entry.name} ...")
            finetune(run_config(entry, str(run)), overwrite=True, show_progress=show_progress)
        encoders[entry.name] = source_encoder(run)
    return encoders


def source_encoder(folder: Path) -> Path:
    """The encoder of a fine-tuned source model, saved alone: targets put their own heads on it."""
    from transformers import AutoModel, AutoTokenizer

    encoder_dir = folder / "encoder"
    if (encoder_dir / "config.json").is_file():
        return encoder_dir
    if not (folder / runfolder.RUN_FILE).is_file():
        raise BertxError(f"{folder}: the source run did not finish")
    with without_load_report():  # the source's head is left behind on purpose
        encoder = AutoModel.from_pretrained(folder)
    save_encoder(encoder, AutoTokenizer.from_pretrained(folder), encoder_dir)
    return encoder_dir


def rank_encoders(
    base: str,
    encoders: dict[str, Path],
    train: str,
    task: str,
    estimators=ESTIMATORS,
    max_examples: int = 2000,
    max_length: int = 128,
    seed: int = 42,
    output: str | None = None,
    overwrite: bool = False,
    data: DataConfig | None = None,
    log=lambda line: None,
) -> dict:
    """Rank the base encoder and the source encoders for the target in `train`; marks the helpful sources."""
    report = rank(
        train,
        [base, *map(str, encoders.values())],
        task,
        tuple(estimators),
        max_examples,
        max_length,
        seed,
        output,
        overwrite,
        log,
        names=[BASE, *encoders],
        data=data,
    )
    return with_helpful(report)


def with_helpful(report: dict) -> dict:
    """Add `helpful` (scores above the base's, by the ranking estimator) and `sources_ranked` (best first)."""
    first = report["ranked_by"]
    base = next(r["scores"][first] for r in report["candidates"] if r["candidate"] == BASE)
    for r in report["candidates"]:
        r["helpful"] = r["candidate"] != BASE and r["scores"][first] is not None and r["scores"][first] > base
    report["sources_ranked"] = [r["candidate"] for r in report["candidates"] if r["candidate"] != BASE]
    report["helpful"] = [r["candidate"] for r in report["candidates"] if r["helpful"]]
    return report


def rank_sources(config: SourcesConfig, train: str, task: str, *ranking, show_progress: bool = False, log=say, **options) -> dict:
    """`bertx rank --sources`: train (or reuse) every source in `config.output`, then rank them for `train`;
    `ranking` and `options`: `rank_encoders`' (estimators, max_examples, max_length, seed, output, overwrite)."""
    if not Path(train).is_file():
        raise BertxError(f"{train}: file not found")
    cache = Path(config.output)
    reads = [config.model.name_or_path, train] + [path for t in config.tasks for _, path in t.files(config.data_dir)]
    with outputs.claimed_folder(cache, config.model_dump(mode="json"), False, reads):
        encoders = train_sources(config.tasks, cache, config.task_config, show_progress, log)
    return rank_encoders(resolve_model_path(config.model.name_or_path), encoders, train, task, *ranking, log=log, **options)


def write_predicted(out: Path, found: dict, targets: list[str], caption: str) -> None:
    """predicted.json and predicted.md of a measured matrix: per estimator and target, Kendall's tau of the
    predicted source ranking against the measured values and the regret of the top pick."""
    runfolder.write_text(out / "predicted.json", json.dumps(found, indent=2) + "\n")
    lines = [
        "| estimator | " + " | ".join(f"{t}: tau, regret" for t in targets) + " | mean tau | mean regret |",
        "|---|" + "---|" * (len(targets) + 2),
    ]
    for estimator, a in found["agreement"].items():
        cells = [f"{_num(a['targets'][t]['tau'])}, {_num(a['targets'][t]['regret'])}" if t in a["targets"] else "n/a" for t in targets]
        lines.append(f"| {estimator} | " + " | ".join(cells) + f" | {_num(a['mean_tau'])} | {_num(a['mean_regret'])} |")
    runfolder.write_text(out / "predicted.md", caption + "\n\n" + "\n".join(lines) + "\n")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
