"""Distillation: how much of a fine-tuned MiniLM teacher do 3- and 2-layer students keep, how much faster
are they, and does the teacher beat training the same students on the labels alone?

  1. Teacher: `bertx finetune` of the packaged MiniLM (6 x 384) on the task.
  2. For each student size: `bertx distill` (student = the teacher's layers, evenly spread, ending at
     the top; soft targets at T=2 + 0.5 x hard labels, teacher outputs cached) and, from the very same
     initialisation, training on the labels alone; the same epochs, lr and batches for both.
  3. The transfer report of each student: parameters, size, CPU latency at batch 1 and dev inputs/s at
     batch 32 (all three models measured one after another in the same process), dev metric, % of the
     teacher's score kept.

Tasks: sst2 (accuracy; teacher and students see the first N training sentences; with --unlabelled M
the next M sentences join as unlabelled text that the teacher labels) and conll (entity F1).

Usage: python -m benchmarks.distill.distill_transfer --task sst2|conll [--quick] [--layers 3 2]
The last line of stdout is one JSON object; it is also saved in benchmarks/distill/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save

SETTINGS = {
    # teacher epochs, student epochs, max_length, train examples (full, quick), dev examples (quick)
    "sst2": {
        "task": "classification",
        "folder": "sst2",
        "train": "train.tsv",
        "dev": "dev.tsv",
        "max_length": 66,
        "teacher_epochs": 1,
        "student_epochs": 3,
        "examples": (20000, 1000),
        "dev_quick": 300,
        "metric": "accuracy",
    },
    "conll": {
        "task": "ner",
        "folder": "conll2003",
        "train": "train.txt",
        "dev": "dev.txt",
        "max_length": 128,
        "teacher_epochs": 2,
        "student_epochs": 3,
        "examples": (None, 600),
        "dev_quick": 300,
        "metric": "f1",
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(SETTINGS), default="sst2")
    parser.add_argument("--quick", action="store_true", help="A few hundred examples, 1 epoch each: a few minutes.")
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="Student sizes (default: 3 2 for sst2, 3 for conll).")
    parser.add_argument("--train-examples", type=int, default=None)
    parser.add_argument("--unlabelled", type=int, default=0, help="SST-2: this many further training sentences, unlabelled.")
    parser.add_argument("--hidden-loss", type=float, default=0.0, help="Weight of the hidden-state loss (runs the teacher live).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    s = SETTINGS[args.task]
    layers = args.layers or ([3, 2] if args.task == "sst2" else [3])
    root = Path(args.data_dir) / s["folder"]
    if not (root / s["train"]).is_file():
        raise SystemExit(f"{root / s['train']} not found (pass --data-dir)")
    work = Path(args.work or f"runs/bench-distill-{args.task}")
    work.mkdir(parents=True, exist_ok=True)
    n_train = args.train_examples or s["examples"][1 if args.quick else 0]
    teacher_epochs = 1 if args.quick else s["teacher_epochs"]
    student_epochs = 1 if args.quick else s["student_epochs"]

    import bertx

    data = {
        "train": str(root / s["train"]),
        "dev": str(root / s["dev"]),
        "max_length": s["max_length"],
        "max_train_examples": n_train,
        "max_dev_examples": s["dev_quick"] if args.quick else None,
    }
    train = {"batch_size": 32, "lr": 1e-4, "warmup_ratio": 0.06, "save_steps": None, "seed": 42, "precision": "bf16"}
    result: dict = {
        "benchmark": "distill_transfer",
        "task": args.task,
        "quick": args.quick,
        "train_examples": n_train,
        "teacher_epochs": teacher_epochs,
        "student_epochs": student_epochs,
        "train": train,
    }
    started = time.perf_counter()

    teacher_dir = work / "teacher"
    print("teacher ...", file=sys.stderr, flush=True)
    teacher = bertx.finetune(
        {"task": s["task"], "output": str(teacher_dir), "data": data, "train": {**train, "epochs": teacher_epochs}},
        overwrite=True,
        show_progress=False,
    )
    result["teacher"] = {"dev": teacher[s["metric"]], "wall_s": teacher["wall_s"]}
    print(f"  teacher {s['metric']}={teacher[s['metric']]:.4f} ({teacher['wall_s']:.0f}s)", file=sys.stderr, flush=True)

    unlabelled = []
    if args.unlabelled and args.task == "sst2":
        lines = (root / s["train"]).read_text(encoding="utf-8").splitlines()[1:]
        extra = [line.split("\t")[0] for line in lines[n_train : n_train + args.unlabelled]]
        text = work / "unlabelled.txt"  # working copy only: the repository never holds dataset text
        text.write_text("\n".join(extra) + "\n", encoding="utf-8")
        unlabelled = [str(text)]
        result["unlabelled_examples"] = len(extra)

    result["students"] = {}
    for n in layers:
        print(f"student {n} layers (distilled, then without teacher) ...", file=sys.stderr, flush=True)
        final = bertx.distill(
            {
                "teacher": str(teacher_dir),
                "output": str(work / f"student-{n}"),
                "data": data,
                "student": {"layers": n},
                "unlabelled": unlabelled,
                "loss": {"soft": 1.0, "hard": 0.5, "temperature": 2.0, "hidden": args.hidden_loss},
                "train": {**train, "epochs": student_epochs},
            },
            overwrite=True,
            show_progress=False,
        )
        report = final["report"]["models"]
        row = {
            name: {
                k: report[name][k]
                for k in (
                    "layers",
                    "hidden",
                    "parameters",
                    "size_mb",
                    "latency_ms_batch1",
                    "inputs_per_s_batch32",
                    "speedup",
                    "latency_speedup",
                    "kept_pct",
                )
            }
            | {"dev": report[name]["metrics"][s["metric"]]}
            for name in report
        }
        row["distill_wall_s"] = final["wall_s"]
        row["baseline_wall_s"] = final["baseline"]["wall_s"]
        row["beats_no_teacher_pts"] = round(100 * (row["student"]["dev"] - row["student without teacher"]["dev"]), 2)
        result["students"][f"{n}-layer"] = row
        print(
            f"  {n} layers: kept {row['student']['kept_pct']}% at {row['student']['speedup']}x; "
            f"without teacher {100 * row['student without teacher']['dev']:.2f}",
            file=sys.stderr,
            flush=True,
        )
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    result["machine"] = machine()
    name = f"distill_{args.task}" + ("_quick" if args.quick else "")
    save(name, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
