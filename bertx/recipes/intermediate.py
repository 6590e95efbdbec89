"""Intermediate-task transfer: which task's knowledge helps which? (STILTs-style source x target map)

    for each target:  fine-tune the base encoder on it                     -> the "none" row (baseline)
    for each source:  fine-tune the base encoder on it, keep its encoder
        for each target: fine-tune that encoder (new head) on the target   -> cell (source, target)
    -> matrix of the targets' main dev metric, with gains over "none": JSON, Markdown, heatmap PNG

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
from bertx.errors import BertxError
from bertx.evaluation.matrix_report import write_matrix
from bertx.models.encoder import save_encoder, without_load_report
from bertx.recipes.finetune import finetune
from bertx.recipes.multitask import check_task_files
from bertx.training import outputs

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
    check_task_files(config)
    out = Path(config.output)
    reads = [config.model.name_or_path] + [path for t in config.tasks for _, path in t.files(config.data_dir)]
    with outputs.claimed_folder(out, config.model_dump(mode="json"), overwrite, reads):
        return _matrix(config, out, show_progress)


def _matrix(config: IntermediateConfig, out: Path, show_progress: bool) -> dict:
    tasks = {entry.name: entry for entry in config.tasks}
    targets = [tasks[name] for name in (config.targets or list(tasks))]
    started = time.perf_counter()

    def run(entry: TaskEntry, folder: Path, model: str | None, stage: str) -> dict:
        """One fine-tuning run, or the metrics of the same run finished earlier."""
        done = folder / "metrics.json"
        if done.is_file():
            return json.loads(done.read_text(encoding="utf-8"))
        train = config.source_train if stage == "source" and config.source_train else config.train
        print(f"[intermediate] {folder.relative_to(out)} ...", flush=True)
        metrics = finetune(config.task_config(entry, str(folder), train, model), overwrite=True, show_progress=show_progress)
        if stage == "target" and not config.keep_models:
            for name in MODEL_FILES:  # the scores are the result; 16 copies of the encoder are not
                path = folder / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return metrics

    def score(metrics: dict) -> float:
        """The target's main dev metric in points (fine-tuning already checked it is one of its metrics)."""
        return 100 * metrics[metrics["metric_for_best"]]

    baseline = [score(run(t, out / "baseline" / t.name, None, "target")) for t in targets]
    values = []
    for source in config.tasks:
        folder = out / "sources" / source.name
        run(source, folder, None, "source")
        encoder = source_encoder(folder)
        values.append([score(run(t, out / "transfer" / f"{source.name}-to-{t.name}", str(encoder), "target")) for t in targets])
    metric_names = {t.name: t.metric or "main" for t in targets}
    return write_matrix(
        out, "matrix", [s.name for s in config.tasks], [t.name for t in targets], values,
        title="Intermediate-task transfer: target dev score after fine-tuning on the source first",
        baseline=baseline, baseline_label="none", extra={"metrics": metric_names, "wall_s": round(time.perf_counter() - started, 1)},
    )


def source_encoder(folder: Path) -> Path:
    """The encoder of a fine-tuned source model, saved alone: targets put their own heads on it."""
    from transformers import AutoModel, AutoTokenizer

    encoder_dir = folder / "encoder"
    if (encoder_dir / "config.json").is_file():
        return encoder_dir
    if not (folder / outputs.RUN_FILE).is_file():
        raise BertxError(f"{folder}: the source run did not finish")
    with without_load_report():  # the source's head is left behind on purpose
        encoder = AutoModel.from_pretrained(folder)
    save_encoder(encoder, AutoTokenizer.from_pretrained(folder), encoder_dir)
    return encoder_dir
