"""What the recipes over a list of tasks share: checking the tasks' files, claiming the folder that holds
their runs (multi-task, intermediate-task matrices, selected multi-task), and exporting one task of a
multi-task folder as a standalone model folder (`bertx multitask-export`, and the recipes that start a
target's fine-tuning from it)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bertx import runfolder
from bertx.errors import BertxError
from bertx.models.encoder import load_tokenizer
from bertx.models.multitask import load_task_model
from bertx.models.multitask_adapters import ADAPTERS_DIR, is_adapter_multitask
from bertx.tasks import get_task
from bertx.training import outputs


def check_task_files(config) -> None:
    """Every task's files exist (of a multi-task or an intermediate-task config): one line naming the task and the file, before anything is read."""
    for entry in config.tasks:
        for role, path in entry.files(config.data_dir):
            if not Path(path).is_file():
                raise BertxError(f"task {entry.name!r}: {role} file {path}: file not found")


def claimed_task_folder(config, overwrite: bool):
    """Check a task-list config's files and claim its output folder for the many runs it will hold
    (intermediate matrices, selected multi-task); the model and every task file are protected."""
    check_task_files(config)
    reads = [config.model.name_or_path] + [path for t in config.tasks for _, path in t.files(config.data_dir)]
    return outputs.claimed_folder(Path(config.output), config.model_dump(mode="json"), overwrite, reads)


def export_task(mt_dir: str | Path, task: str, output: str | Path, overwrite: bool = False) -> Path:
    """Write one task of a multi-task folder as a standalone HF model folder (encoder + its head).

    The result is what `bertx finetune` would have written for that task: `from_pretrained`, `pipeline`,
    `bertx evaluate` and `bertx predict` load it.
    """
    mt_dir, output = Path(mt_dir), Path(output)
    run = runfolder.read_run_config(mt_dir)
    if not run or "multitask" not in run:
        raise BertxError(f"{mt_dir}: not a multi-task run folder (no `multitask` section in {runfolder.RUN_FILE})")
    if task not in run["multitask"]:
        raise BertxError(f"{mt_dir}: no task {task!r} (tasks: {', '.join(run['multitask'])})")
    info = dict(run["multitask"][task])
    runfolder.check_output_folder(output, "task export", overwrite, [mt_dir])
    info["output"] = str(output)
    info["exported_from"] = {"multitask": str(mt_dir), "task": task}
    if is_adapter_multitask(mt_dir):  # the task's adapter folder is already a PEFT run folder: copy it
        folder = mt_dir / ADAPTERS_DIR / info["head"]
        if not folder.is_dir():
            raise BertxError(f"{folder}: the adapter of task {task!r} is missing from this multi-task folder")
        return runfolder.write_model_folder(output, CopiedFiles(folder), load_tokenizer(str(folder)), info, overwrite, [mt_dir], kind="task export")
    model = load_task_model(mt_dir, info["head"], get_task(info["task"]).auto_class)
    return runfolder.write_model_folder(output, model, load_tokenizer(str(mt_dir)), info, overwrite, [mt_dir], kind="task export")


class CopiedFiles:
    """A saved model folder that "saves" by copying its files (an exported adapter needs no loading)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def save_pretrained(self, target, safe_serialization: bool = True) -> None:
        for item in self.folder.iterdir():
            if item.is_file():
                shutil.copy2(item, Path(target) / item.name)
