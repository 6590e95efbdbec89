"""Parameter-efficient fine-tuning against full fine-tuning on the five GLUE tasks of multitask_glue.py.

Every method trains the default MiniLM on RTE, MRPC, STS-B, CoLA and SST-2 (4,000 sentences) with the
same budget (3 epochs, batch 32, 6% warm-up, seed 42, bf16 autocast), each run in its own process so
that its peak RSS is its own. Full fine-tuning uses lr 1e-4 (multitask_glue.py's setting); the PEFT
methods their bertx defaults (LoRA 1e-3, IA3 3e-3, BitFit 1e-3: a frozen encoder wants larger steps).

Per task and method: the main metric, trainable parameters, checkpoint size (the adapter file, or the
whole model for full fine-tuning), train samples/s and peak RSS. The peer here is full fine-tuning
itself, as `bertx finetune` and HF's Trainer both do it.

Usage: python -m benchmarks.peft_fewshot.peft_glue [--quick] [--methods full,lora,ia3,bitfit] [--epochs 3] [--data-dir DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/peft_fewshot/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save
from benchmarks.harness.glue import TASKS

CHILD = r"""
import json, resource, sys
from bertx.config import FinetuneConfig, validate_config
from bertx.recipes.finetune import finetune
config = validate_config(json.loads(sys.argv[1]), schema=FinetuneConfig)
final = finetune(config, overwrite=True, show_progress=False)
final["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({k: v for k, v in final.items() if not isinstance(v, dict)}))
"""
CHECKPOINT_FILES = ("adapter_model.safetensors", "bitfit_model.safetensors", "model.safetensors")


def run_one(config: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{config['output']}: failed\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    out = Path(config["output"])
    checkpoint = next(out / name for name in CHECKPOINT_FILES if (out / name).is_file())
    result["checkpoint_mb"] = round(checkpoint.stat().st_size / 2**20, 3)
    start = json.loads((out / "log.jsonl").read_text(encoding="utf-8").splitlines()[0])
    result["trainable_parameters"] = start.get("trainable_parameters")
    result["total_parameters"] = start.get("total_parameters")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="400 training and 200 dev examples per task, 1 epoch.")
    parser.add_argument("--methods", default="full,lora,ia3,bitfit")
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tasks", default=",".join(t[0] for t in TASKS), help="Comma-separated subset of rte,mrpc,stsb,cola,sst2.")
    parser.add_argument("--peft", default="{}", help='Extra peft options as JSON, e.g. \'{"r": 16, "dropout": 0}\'.')
    parser.add_argument("--lr", type=float, default=None, help="Learning rate of the PEFT runs (default: bertx's per method).")
    parser.add_argument("--name", default=None, help="Result file name (default peft_glue / peft_glue_quick).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    epochs = args.epochs or (1 if args.quick else 3)
    data_dir = Path(args.data_dir).resolve()
    if not (data_dir / "glue/rte/train.tsv").is_file():
        raise SystemExit(f"{data_dir}/glue not found (pass --data-dir)")
    work = Path(tempfile.mkdtemp(prefix="peft-glue-"))
    methods = args.methods.split(",")
    rows: dict = {method: {} for method in methods}
    total_parameters = None
    for name, kind, folder, metric, max_length in [t for t in TASKS if t[0] in args.tasks.split(",")]:
        data = {
            "train": str(data_dir / folder / "train.tsv"),
            "dev": str(data_dir / folder / "dev.tsv"),
            "max_length": max_length,
            "max_train_examples": 400 if args.quick else (4000 if name == "sst2" else None),
        }
        if args.quick:
            data["max_dev_examples"] = 200
        for method in methods:
            train = {
                "epochs": epochs,
                "batch_size": 32,
                "warmup_ratio": 0.06,
                "save_steps": None,
                "seed": args.seed,
                "precision": "bf16",
                **({"lr": 1e-4} if method == "full" else {"lr": args.lr} if args.lr else {}),
            }
            config = {"task": kind, "output": str(work / method / name), "data": data, "train": train}
            if method != "full":
                config["peft"] = {"method": method, **json.loads(args.peft)}
            print(f"[{method}] {name} ...", file=sys.stderr, flush=True)
            result = run_one(config)
            total_parameters = total_parameters or (result["total_parameters"] if method == "full" else None)
            rows[method][name] = {
                "score": round(100 * result[metric], 2),
                "metric": metric,
                "trainable_parameters": result["trainable_parameters"],
                "checkpoint_mb": result["checkpoint_mb"],
                "train_samples_per_s": result["train_samples_per_s"],
                "peak_rss_mb": round(result["peak_rss_mb"]),
                "wall_s": result["wall_s"],
            }
            print(f"  {json.dumps(rows[method][name])}", file=sys.stderr, flush=True)
    summary = {}
    for method, tasks in rows.items():
        n = len(tasks)
        summary[method] = {
            "mean": round(sum(t["score"] for t in tasks.values()) / n, 2),
            "trainable_pct": round(100 * max(t["trainable_parameters"] or 0 for t in tasks.values()) / total_parameters, 3)
            if total_parameters
            else None,
            "checkpoint_mb": max(t["checkpoint_mb"] for t in tasks.values()),
            "train_samples_per_s": round(sum(t["train_samples_per_s"] for t in tasks.values()) / n, 1),
            "peak_rss_mb": max(t["peak_rss_mb"] for t in tasks.values()),
        }
    if "full" in summary:
        for row in summary.values():
            row["gap_to_full_pts"] = round(row["mean"] - summary["full"]["mean"], 2)
            row["speed_vs_full"] = round(row["train_samples_per_s"] / summary["full"]["train_samples_per_s"], 2)
    lora = summary.get("lora", {})
    result = {
        "benchmark": "peft_glue",
        "quick": args.quick,
        "peft_options": json.loads(args.peft),
        "peft_lr": args.lr,
        "epochs": epochs,
        "seed": args.seed,
        "tasks": rows,
        "summary": summary,
        "target": {
            "lora_within_1pt": lora.get("gap_to_full_pts", -99) >= -1.0,
            "lora_trainable_le_2pct": (lora.get("trainable_pct") or 99) <= 2.0,
            "lora_checkpoint_le_2mb": lora.get("checkpoint_mb", 99) <= 2.0,
        },
        "machine": machine(),
    }
    save(args.name or ("peft_glue_quick" if args.quick else "peft_glue"), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
