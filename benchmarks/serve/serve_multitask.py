"""Four heads of one multi-task model answered together, against four single-task models.

One `bertx multitask` run trains four single-text heads over one MiniLM: SST-2, CoLA, and the Amazon books
and kitchen reviews (--train-examples each, 1 epoch). Each head is also exported as its own model
(`bertx multitask-export`): what a user without multi-task serving deploys, four models. Then, on the
same sentences (SST-2 dev, the serving use: every input gets all four answers):
  multitask   `MultiTaskPredictor.predict(texts)`: one encoder pass per batch, four heads on its output
  four        the four exported models, `Predictor.predict(texts)` each
Throughput is the best of 3 runs in one process (same threads). Memory is the peak RSS of a fresh process
that loads the model(s) and predicts the sentences once: the multi-task model against one single-task
model (the target: at most 1.3x) and against the four.

Usage: python -m benchmarks.serve.serve_multitask [--quick] [--mt-dir DIR] [--data-dir DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/serve/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, peak_rss_mb, run_child, save, timed

TASKS = {"sst2": "sst2", "cola": "glue/cola", "books": "multidomain/books", "kitchen": "multidomain/kitchen"}


def train(data_dir: str, root: Path, examples: int) -> Path:
    import bertx

    out = root / "mt"
    bertx.multitask(
        {
            "output": str(out),
            "tasks": [
                {
                    "name": name,
                    "kind": "classification",
                    "train": f"{data_dir}/{folder}/train.tsv",
                    "data": {"max_length": 128, "max_train_examples": examples},
                }
                for name, folder in TASKS.items()
            ],
            "train": {"epochs": 1, "batch_size": 32, "save_steps": None},
        },
        show_progress=False,
    )
    for name in TASKS:
        bertx.export_task(out, name, root / f"task-{name}")
    return out


def child(args) -> None:
    """One measured set-up in this fresh process: load, predict once, report the peak RSS."""
    texts = json.loads(Path(args.texts).read_text())
    if args.child == "multitask":
        from bertx.inference.multitask_predictor import MultiTaskPredictor

        MultiTaskPredictor.load(args.folders[0]).predict(texts)
    else:
        from bertx.inference.predictor import Predictor

        for folder in args.folders:
            Predictor.load(folder, device="cpu").predict(texts)
    print(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 training examples per task, 256 sentences, one timing.")
    parser.add_argument("--mt-dir", default=None, help="A multi-task run of the four tasks, with task-NAME exports beside it.")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folders", nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--texts", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    root = Path(args.mt_dir).parent if args.mt_dir else Path(tempfile.mkdtemp(prefix="bertx-mt-serve-"))
    mt = Path(args.mt_dir) if args.mt_dir else train(args.data_dir, root, 300 if args.quick else 2000)
    singles = [root / f"task-{name}" for name in TASKS]
    dev = Path(args.data_dir) / "sst2/dev.tsv"
    texts = [line.split("\t")[0] for line in dev.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    texts = texts[:256] if args.quick else texts
    repeats = 1 if args.quick else 3

    import torch

    from bertx.inference.multitask_predictor import MultiTaskPredictor
    from bertx.inference.predictor import Predictor

    shared = MultiTaskPredictor.load(mt)
    four = [Predictor.load(folder, device="cpu") for folder in singles]
    shared.predict(texts[:64])
    for predictor in four:
        predictor.predict(texts[:64])
    shared_s, together = timed(lambda: shared.predict(texts), repeats)
    four_s, alone = timed(lambda: [p.predict(texts) for p in four], repeats)
    agree = sum(together[i][name]["label"] == alone[k][i]["label"] for k, name in enumerate(TASKS) for i in range(len(texts)))

    text_file = root / "texts.json"
    text_file.write_text(json.dumps(texts))
    script = str(Path(__file__).resolve())
    memory = {
        "multitask": run_child(script, ["--child", "multitask", "--folders", str(mt), "--texts", str(text_file)])["peak_rss_mb"],
        "one_model": run_child(script, ["--child", "single", "--folders", str(singles[0]), "--texts", str(text_file)])["peak_rss_mb"],
        "four_models": run_child(script, ["--child", "single", "--folders", *map(str, singles), "--texts", str(text_file)])["peak_rss_mb"],
    }
    result = {
        "benchmark": "serve_multitask",
        "quick": args.quick,
        "sentences": len(texts),
        "tasks": list(TASKS),
        "threads": torch.get_num_threads(),
        "multitask": {
            "wall_s": round(shared_s, 3),
            "sentences_per_s": round(len(texts) / shared_s, 1),
            "answers_per_s": round(len(texts) * len(TASKS) / shared_s, 1),
        },
        "four_models": {
            "wall_s": round(four_s, 3),
            "sentences_per_s": round(len(texts) / four_s, 1),
            "answers_per_s": round(len(texts) * len(TASKS) / four_s, 1),
        },
        "label_agreement": round(agree / (len(texts) * len(TASKS)), 4),
        "memory_mb": memory,
        "multitask_ratio": round(four_s / shared_s, 2),
        "multitask_memory_ratio": round(memory["multitask"] / memory["one_model"], 3),
        "memory_vs_four_models": round(memory["multitask"] / memory["four_models"], 3),
        "machine": machine(),
    }
    save("serve_multitask_quick" if args.quick else "serve_multitask", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
