"""A multi-task teacher distilled into one multi-task student: what each head keeps, and how much faster the
four heads are answered.

The teacher is the four-head model of the multi-task serving study: one `bertx multitask` run over MiniLM with
SST-2, CoLA, and the Amazon books and kitchen reviews (--train-examples each). Students (`bertx distill
--teacher MT_RUN`), each a multi-task folder with the same four heads:
  bert-3 shared   3 of the teacher's 6 layers; every head also learns its teacher head's outputs on the
                  other three tasks' texts (`share_texts: true`, the default)
  bert-3 own      the same student, each head on its own task's texts only
  bert-2 shared   2 layers, shared texts
  bilstm shared   a BiLSTM (embeddings from the teacher's, 300 wide) under the four heads, shared texts
  cnn shared      a CNN (embeddings projected to 128, widths 3/4/5) under the four heads, shared texts
  cnn unlabelled  the same CNN, and every head also learns its teacher head's outputs on unlabelled text:
                  10,000 SST-2 training sentences no run reads as labelled, and the dvd and electronics reviews
Each head is scored on its task's official dev file (SST-2, CoLA: MCC; books, kitchen: accuracy), which no
run reads before its end (no checkpoint is chosen on it: the runs have no dev file and publish their last
weights). Throughput: `MultiTaskPredictor.predict` (what `bertx serve` runs per batch) over the SST-2 dev
sentences and the kitchen dev reviews, every input answered by all four heads, PyTorch fp32 and the int8
ONNX export of each, best of 3 in one process.

Usage: python -m benchmarks.distill.distill_multitask [--quick] [--work DIR]
`--quick`: 300 examples per task, one epoch, bert-3 and cnn shared only. Last line of stdout: one JSON object, also in results/.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save, timed

TASKS = {
    "sst2": ("sst2", "accuracy"),
    "cola": ("glue/cola", "mcc"),
    "books": ("multidomain/books", "accuracy"),
    "kitchen": ("multidomain/kitchen", "accuracy"),
}
STUDENTS = {
    "bert3_shared": ({"layers": 3}, True),
    "bert3_own": ({"layers": 3}, False),
    "bert2_shared": ({"layers": 2}, True),
    "bilstm_shared": ({"kind": "bilstm"}, True),
    "cnn_shared": ({"kind": "cnn"}, True),
    "cnn_unlabelled": ({"kind": "cnn"}, True),  # and unlabelled text: UNLABELLED_SENTENCES + the dvd and electronics reviews
    "cnn_unlabelled_50k": ({"kind": "cnn"}, True),  # the same with more SST-2 sentences (--only cnn_unlabelled_50k)
}
# SST-2 training rows none of the runs reads as labelled (they read the first 2,000), per student with unlabelled text
UNLABELLED_SENTENCES = {"cnn_unlabelled": (10_000, 20_000), "cnn_unlabelled_50k": (10_000, 50_000)}
SMALL = ("bilstm_shared", "cnn_shared", "cnn_unlabelled", "cnn_unlabelled_50k")


def teacher(data: Path, work: Path, examples: int, epochs: int, reuse: bool) -> tuple[Path, float]:
    import bertx

    out, started = work / "teacher", time.perf_counter()
    if reuse and (out / "metrics.json").is_file():
        return out, json.loads((out / "metrics.json").read_text())["wall_s"]
    bertx.multitask(
        {
            "output": str(out),
            "tasks": [
                {
                    "name": name,
                    "kind": "classification",
                    "train": str(data / folder / "train.tsv"),
                    "metric": metric,
                    "data": {"max_length": 128, "max_train_examples": examples},
                }
                for name, (folder, metric) in TASKS.items()
            ],
            "train": {"epochs": epochs, "batch_size": 32, "save_steps": None},
        },
        overwrite=True,
        show_progress=False,
    )
    return out, time.perf_counter() - started


def unlabelled_files(data: Path, work: Path, name: str) -> list[str]:
    """Text a user has without labels: SST-2 sentences past the labelled draw, and reviews of two other domains."""

    def texts(path: Path) -> list[str]:
        return [line.split("\t")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]

    first, last = UNLABELLED_SENTENCES[name]
    sentences, reviews = work / f"unlabelled-sentences-{first}-{last}.txt", work / "unlabelled-reviews.txt"
    sentences.write_text("\n".join(texts(data / "sst2" / "train.tsv")[first:last]) + "\n", encoding="utf-8")
    reviews.write_text("\n".join(t for d in ("dvd", "electronics") for t in texts(data / "multidomain" / d / "train.tsv")) + "\n", encoding="utf-8")
    return [str(sentences), str(reviews)]


def student(
    mt: Path, work: Path, name: str, options: dict, shared: bool, epochs: int, reuse: bool, unlabelled: list[str]
) -> tuple[Path, float, dict]:
    import bertx

    out, started = work / name, time.perf_counter()
    if reuse and (out / "metrics.json").is_file():
        final = json.loads((out / "metrics.json").read_text())
        return out, final["wall_s"], final
    small = options.get("kind") in ("bilstm", "cnn")
    train = {"epochs": epochs, "batch_size": 32, "save_steps": None, **({} if small else {"lr": 1e-4})}  # small: bertx's own rate
    final = bertx.distill(
        {"teacher": str(mt), "output": str(out), "student": options, "share_texts": shared, "train": train, "unlabelled": unlabelled},
        overwrite=True,
        show_progress=False,
    )
    return out, time.perf_counter() - started, final


def dev_scores(folder: Path, data: Path) -> dict:
    """Each head's main metric on its official dev file, through the same predictor `bertx serve` runs."""
    from bertx.inference.multitask_predictor import MultiTaskPredictor
    import numpy as np

    from bertx.metrics.sequence import classification_metrics

    predictor = MultiTaskPredictor.load(folder)
    scores = {}
    for name, (sub, metric) in TASKS.items():
        rows = [line.split("\t") for line in (data / sub / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
        texts, gold = [r[0] for r in rows], [r[1] for r in rows]
        answers = predictor.predict(texts, tasks=[name])
        labels = predictor.heads[name].labels
        predicted = [labels.index(a[name]["label"]) for a in answers]
        scores[name] = round(100 * classification_metrics(np.asarray(predicted), np.asarray([labels.index(g) for g in gold]), len(labels))[metric], 2)
    return scores


def throughput(folder: Path, texts: list[str], repeats: int) -> float:
    from bertx.inference.multitask_predictor import MultiTaskPredictor

    predictor = MultiTaskPredictor.load(folder)
    predictor.predict(texts[:64])
    seconds, _ = timed(lambda: predictor.predict(texts), repeats)
    return round(len(texts) / seconds, 1)


def export_int8(folder: Path) -> tuple[Path | None, str | None]:
    """The int8 export, or (None, why) when bertx's gate refuses it (a head deciding otherwise than PyTorch)."""
    from bertx.errors import BertxError
    from bertx.export.one_model import export

    out = folder.with_name(folder.name + "-int8")
    try:
        export(folder, out, quantize="int8", overwrite=True, log=lambda line: None)
    except BertxError as err:
        return None, str(err)
    return out, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", default=None, help="Working folder (default: a fresh temporary one).")
    parser.add_argument(
        "--only", nargs="+", choices=sorted(STUDENTS), help="These students only, beside the teacher (results: distill_multitask_only)."
    )
    parser.add_argument("--reuse", action="store_true", help="Keep the finished runs of --work (time what they trained in).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    data = Path(args.data_dir).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="bertx-mt-distill-"))
    examples, epochs, repeats = (300, 1, 1) if args.quick else (2000, 2, 3)
    default = [name for name in STUDENTS if name != "cnn_unlabelled_50k"]
    students = {name: STUDENTS[name] for name in (args.only or (["bert3_shared", "cnn_shared"] if args.quick else default))}

    mt, teacher_s = teacher(data, work, examples, epochs, args.reuse)
    rows = {"teacher": {"folder": mt, "train_s": round(teacher_s, 1)}}
    for name, (options, shared) in students.items():
        unlabelled = unlabelled_files(data, work, name) if name in UNLABELLED_SENTENCES else []
        folder, seconds, _ = student(mt, work, name, options, shared, 1 if args.quick else 3, args.reuse, unlabelled)
        rows[name] = {"folder": folder, "train_s": round(seconds, 1), **options, "share_texts": shared, "unlabelled_files": len(unlabelled)}

    def lines(sub: str, limit: int) -> list[str]:
        found = [line.split("\t")[0] for line in (data / sub / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
        return found[:limit]

    sentences, reviews = lines("sst2", 256 if args.quick else 872), lines("multidomain/kitchen", 64 if args.quick else 200)
    for row in rows.values():
        row["dev"] = dev_scores(row["folder"], data)
        row["sentences_per_s"] = throughput(row["folder"], sentences, repeats)
        row["reviews_per_s"] = throughput(row["folder"], reviews, repeats)
        int8, refused = export_int8(row["folder"])
        if refused:
            row["int8_refused"] = refused
            continue
        row["int8_sentences_per_s"] = throughput(int8, sentences, repeats)
        row["int8_reviews_per_s"] = throughput(int8, reviews, repeats)
    base = rows["teacher"]
    for name, row in rows.items():
        if name == "teacher":
            continue
        row["kept"] = {task: round(row["dev"][task] / base["dev"][task], 4) if base["dev"][task] else None for task in TASKS}
        row["kept_min"] = min(v for v in row["kept"].values() if v is not None)
        for key in ("sentences_per_s", "reviews_per_s", "int8_sentences_per_s", "int8_reviews_per_s"):
            if key in row and key in base:
                row[f"speedup_{key.removesuffix('_per_s')}"] = round(row[key] / base[key], 2)
    for row in rows.values():
        row["folder"] = str(row["folder"])
    best = rows.get("bert3_shared")
    small = [rows[name] for name in SMALL if name in rows]
    fastest_kept = max(small, key=lambda row: (row["kept_min"] >= 0.94, row["speedup_sentences"])) if small else None
    result = {
        "benchmark": "distill_multitask",
        "quick": args.quick,
        "examples_per_task": examples,
        "rows": rows,
        "multitask_student": {"kept_min": best["kept_min"], "speedup_vs_teacher": best["speedup_sentences"]} if best else None,
        "multitask_small_student": (
            {"kind": fastest_kept["kind"], "kept_min": fastest_kept["kept_min"], "speedup_vs_teacher": fastest_kept["speedup_sentences"]}
            if fastest_kept
            else None
        ),
        "machine": machine(),
    }
    save("distill_multitask_quick" if args.quick else "distill_multitask_only" if args.only else "distill_multitask", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
