"""Distillation into other networks: BiLSTM, CNN and bag-of-embeddings students of the SST-2 MiniLM teacher,
and (`--task ner`) BiLSTM and CNN taggers of the CoNLL-2003 MiniLM teacher.

For each kind, `bertx distill --student KIND --augment N` (the teacher labels N variants of every training
sentence) and the same student trained on the labels alone (the report's baseline). Rows: the report's
model-only figures (parameters, latency at batch 1, inputs/s at batch 32 on tokenised dev inputs) plus the
end-to-end rate (raw strings to labels, tokenisation included, batch 32), against the teacher measured the
same way in the same process.

NER has no augmentation (Tang et al.'s rules would change which words are entities); its students learn
from the teacher's per-token distributions and the gold tags, and are scored by seqeval entity F1.

Usage: python benchmarks/distill_other_networks.py --teacher RUN [--task sst2|ner] [--quick] [--augment N] [--data-dir DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/results/ (with a plot).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, save  # noqa: E402

KINDS = ("bilstm", "cnn", "bag")


def end_to_end(folder: str, texts: list[str], ner: bool, repeats: int = 3) -> float:
    from bertx.inference.entities import EntityPredictor
    from bertx.inference.predictor import Predictor

    predictor = (EntityPredictor if ner else Predictor).load(folder, device="cpu")
    predictor.predict(texts[:64], batch_size=32)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(texts, batch_size=32)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def dev_texts(data: Path, ner: bool) -> list[str]:
    if not ner:
        return [line.split("\t")[0] for line in (data / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    sentences = [" ".join(line.split()[0] for line in block.splitlines() if line.strip())
                 for block in (data / "dev.txt").read_text(encoding="utf-8").split("\n\n")]
    return [s for s in sentences if s and not s.startswith("-DOCSTART-")]


def plot(rows: dict, teacher: dict, path: Path, score: str, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6, 4))
    axis.scatter([teacher["inputs_per_s_batch32"]], [teacher[score]], color="black", label="teacher (MiniLM)")
    for kind, row in rows.items():
        axis.scatter([row["student"]["inputs_per_s_batch32"]], [row["student"][score]], label=f"{kind}, distilled")
        axis.scatter([row["no_teacher"]["inputs_per_s_batch32"]], [row["no_teacher"][score]], marker="x",
                     label=f"{kind}, labels only")
    axis.set_xscale("log")
    axis.set_xlabel("inputs/s at batch 32, model only (log)")
    axis.set_ylabel(metric)
    axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="The fine-tuned SST-2 (or CoNLL-2003) teacher folder.")
    parser.add_argument("--task", choices=("sst2", "ner"), default="sst2")
    parser.add_argument("--quick", action="store_true", help="10,000 training sentences, 2 epochs.")
    parser.add_argument("--augment", type=int, default=None, help="Variants per training sentence (default 2 quick, 4 full).")
    parser.add_argument("--train-examples", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--kinds", default=None, help="Default: bilstm,cnn,bag (NER: bilstm,cnn).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    ner = args.task == "ner"
    train_examples = args.train_examples or (10_000 if args.quick and not ner else 4_000 if args.quick else None)
    augment = 0 if ner else args.augment if args.augment is not None else (2 if args.quick else 4)
    epochs = args.epochs or (2 if args.quick else 3) * (3 if ner else 1)  # taggers see 14k sentences, not 67k x 5
    data = Path(args.data_dir) / ("conll2003" if ner else "sst2")
    texts = dev_texts(data, ner)
    files = {"train": str(data / "train.txt"), "dev": str(data / "dev.txt"), "max_length": 128} if ner else \
        {"train": str(data / "train.tsv"), "dev": str(data / "dev.tsv"), "max_length": 66}
    score = "f1" if ner else "accuracy"
    kinds = (args.kinds or ("bilstm,cnn" if ner else ",".join(KINDS))).split(",")

    import bertx

    work = Path(tempfile.mkdtemp())
    rows, teacher_row = {}, None
    for kind in kinds:
        out = work / kind
        config = {"teacher": args.teacher, "output": str(out), "augment": augment, "baseline": True,
                  "data": {**files, **({"max_train_examples": train_examples} if train_examples else {})},
                  "student": {"kind": kind},
                  "train": {"epochs": epochs, "batch_size": 32 if ner else 64, "save_steps": None, "seed": 42}}
        if ner:
            config["loss"] = {"soft": 1.0, "hard": 1.0}  # gold tags beside the teacher's: entity boundaries are sharp
        started = time.perf_counter()
        final = bertx.distill(config, show_progress=False)
        report = final["report"]["models"]
        metric = final["report"]["main_metric"]
        pick = lambda row: {score: round(100 * row["metrics"][metric], 2), "parameters": row["parameters"],  # noqa: E731
                            "size_mb": row["size_mb"], "latency_ms_batch1": row["latency_ms_batch1"],
                            "inputs_per_s_batch32": row["inputs_per_s_batch32"]}
        student, plain = pick(report["student"]), pick(report["student without teacher"])
        teacher = pick(report["teacher"])
        student["e2e_inputs_per_s_batch32"] = round(end_to_end(str(out), texts, ner), 1)
        teacher["e2e_inputs_per_s_batch32"] = round(end_to_end(args.teacher, texts, ner), 1)
        teacher_row = teacher_row or teacher
        rows[kind] = {
            "student": student, "no_teacher": plain, "teacher": teacher, "wall_s": round(time.perf_counter() - started, 1),
            "student_kept": round(100 * student[score] / teacher[score], 2),
            "speedup_model_b32": round(student["inputs_per_s_batch32"] / teacher["inputs_per_s_batch32"], 2),
            "speedup_e2e_b32": round(student["e2e_inputs_per_s_batch32"] / teacher["e2e_inputs_per_s_batch32"], 2),
            "gain_over_no_teacher": round(student[score] - plain[score], 2),
            "parameter_ratio": round(teacher["parameters"] / student["parameters"], 1),
        }
        print(kind, json.dumps({k: v for k, v in rows[kind].items() if k not in ("teacher",)}), file=sys.stderr, flush=True)
    name = "distill_other_networks" + ("_ner" if ner else "") + ("_quick" if args.quick else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, teacher_row, RESULTS / f"{name}.png", score, "CoNLL-2003 dev entity F1" if ner else "SST-2 dev accuracy")
    result = {"benchmark": "distill_other_networks", "task": args.task, "quick": args.quick, "teacher": args.teacher,
              "train_examples": train_examples or "all", "augment": augment, "epochs": epochs, "students": rows,
              "machine": machine()}
    save(name, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
