"""`bertx merge`: a PEFT run's adapter folded into its base model, written as a plain HF folder.

The merged folder is what `bertx finetune` without `peft` would have written: `from_pretrained`,
`pipeline`, `bertx export` and `bertx serve` take it. BitFit's tensors are simply loaded over the base.
"""

from __future__ import annotations

from pathlib import Path

from bertx.errors import BertxError
from bertx.models.adapters import is_adapter_folder, load_adapter_model
from bertx.models.encoder import load_tokenizer
from bertx.tasks import TASKS
from bertx import runfolder


def merge(run_dir: str | Path, output: str | Path, overwrite: bool = False) -> Path:
    run_dir, output = Path(run_dir), Path(output)
    if not is_adapter_folder(run_dir):
        raise BertxError(
            f"{run_dir}: holds no adapter (adapter_config.json or bitfit_model.safetensors); "
            "only a `bertx finetune ... peft.method=...` run has one to merge"
        )
    run = runfolder.read_run_config(run_dir) or {}
    if run.get("task") not in TASKS:
        raise BertxError(f"{run_dir}: {runfolder.RUN_FILE} names no task; merge a folder written by bertx finetune")
    base = (run.get("model") or {}).get("name_or_path")
    runfolder.check_output_folder(output, "merge", overwrite, [run_dir, base])  # before the base model loads
    model = load_adapter_model(run_dir, TASKS[run["task"]].auto_class, run, merge=True)
    info = {k: v for k, v in run.items() if k != "peft"}
    info["output"] = str(output)
    info["merged_from"] = {"adapter": str(run_dir), "method": (run.get("peft") or {}).get("method")}
    return runfolder.write_model_folder(output, model, load_tokenizer(str(run_dir)), info, overwrite, [run_dir, base], kind="merge")
