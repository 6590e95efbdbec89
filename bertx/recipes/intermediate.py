"""Intermediate-task transfer: which task's knowledge helps which? (STILTs-style source x target map)

    for each target:  fine-tune the base encoder on it                     -> the "none" row (baseline)
    for each source:  fine-tune the base encoder on it, keep its encoder
        for each target: fine-tune that encoder (new head) on the target   -> cell (source, target)
    -> matrix of the targets' main dev metric, with gains over "none": JSON, Markdown, heatmap PNG
    with `predict:` estimators, also each target's predicted ranking of the sources (`bertx rank` on the
    target's training file, seconds per source) beside the measured gains: predicted.json / .md

Every run is plain single-task fine-tuning (`recipes.finetune`) with the config's settings, so a cell
differs from the baseline by one thing only: the encoder it started from. Runs that finished are
not repeated when the command is run again (their metrics.json is read), so an interrupted matrix
continues where it stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from bertx.config import IntermediateConfig, TaskEntry
from bertx.evaluation.matrix_report import write_matrix
from bertx.metrics.transferability import agreement
from bertx.models.encoder import resolve_model_path
from bertx.recipes.finetune import finetune
from bertx.recipes.task_folders import claimed_task_folder
from bertx.recipes.sources import rank_encoders, train_sources, write_predicted
from bertx.console import say

MODEL_FILES = ("model.safetensors", "best", "checkpoints")


def intermediate(config: IntermediateConfig, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Run the source x target matrix and write it into `config.output` (matrix.json / .md / .png).

    Args:
        config: the validated config (tasks, targets, settings of both stages).
        overwrite: start again instead of reusing finished runs in `config.output`.
        show_progress: progress bars of the individual runs.

    Returns:
        The matrix JSON object (rows = sources, columns = targets, values in points, gains over "none").
    """
    with claimed_task_folder(config, overwrite) as out:
        return _matrix(config, out, show_progress)


def _matrix(config: IntermediateConfig, out: Path, show_progress: bool) -> dict:
    tasks = {entry.name: entry for entry in config.tasks}
    targets = [tasks[name] for name in (config.targets or list(tasks))]
    started = time.perf_counter()

    def run(entry: TaskEntry, folder: Path, model: str | None) -> dict:
        """One target fine-tuning run, or the metrics of the same run finished earlier."""
        done = folder / "metrics.json"
        if done.is_file():
            return json.loads(done.read_text(encoding="utf-8"))
        say(f"[intermediate] {folder.relative_to(out)} ...")
        metrics = finetune(config.task_config(entry, str(folder), config.train, model), overwrite=True, show_progress=show_progress)
        if not config.keep_models:
            for name in MODEL_FILES:  # the scores are the result; 16 copies of the encoder are not
                path = folder / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return metrics

    def score(metrics: dict) -> float:
        """The target's main dev metric in points (fine-tuning already checked it is one of its metrics)."""
        return 100 * metrics[metrics["metric_for_best"]]

    baseline = [score(run(t, out / "baseline" / t.name, None)) for t in targets]
    source_train = config.source_train or config.train
    encoders = train_sources(config.tasks, out / "sources", lambda entry, folder: config.task_config(entry, folder, source_train), show_progress)
    values = [[score(run(t, out / "transfer" / f"{s.name}-to-{t.name}", str(encoders[s.name]))) for t in targets] for s in config.tasks]
    metric_names = {t.name: t.metric or "main" for t in targets}
    result = write_matrix(
        out,
        "matrix",
        [s.name for s in config.tasks],
        [t.name for t in targets],
        values,
        title="Intermediate-task transfer: target dev score after fine-tuning on the source first",
        baseline=baseline,
        baseline_label="none",
        extra={"metrics": metric_names, "wall_s": round(time.perf_counter() - started, 1)},
    )
    if config.predict:
        result["predicted"] = predicted_ranking(config, targets, encoders, result, out)
    return result


def predicted_ranking(
    config: IntermediateConfig, targets: list[TaskEntry], encoders: dict[str, Path], result: dict, out: Path, max_examples: int = 2000
) -> dict:
    """Rank each target's sources (the target itself left out) from frozen features and set the ranking
    beside the measured gains: Kendall's tau and top-1 regret per estimator -> predicted.json / .md."""
    base = resolve_model_path(config.model.name_or_path)
    scores: dict[str, dict[str, dict[str, float]]] = {e: {} for e in config.predict}  # estimator -> target -> source
    measured, seconds = {}, {}
    for j, target in enumerate(targets):
        sources = {name: path for name, path in encoders.items() if name != target.name}
        train = target.files(config.data_dir)[0][1]
        report = rank_encoders(base, sources, train, target.kind, config.predict, max_examples, max_length=target.data.max_length, data=target.data)
        for estimator in config.predict:
            scores[estimator][target.name] = {r["candidate"]: r["scores"][estimator] for r in report["candidates"] if r["candidate"] in sources}
        seconds[target.name] = round(sum(r["seconds"] for r in report["candidates"]), 1)
        measured[target.name] = {name: result["gains"][result["rows"].index(name)][j] for name in sources}
    found = {
        "scores": scores,
        "measured_gains": measured,
        "rank_seconds": seconds,
        "agreement": {e: agreement(scores[e], measured) for e in config.predict},
    }
    write_predicted(
        out,
        found,
        [t.name for t in targets],
        "Predicted source ranking (frozen features of each source's "
        "encoder on the target's training data) against the measured gains; regret in points.",
    )
    return found
