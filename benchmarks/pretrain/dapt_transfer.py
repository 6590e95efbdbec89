"""Domain-adaptive pretraining: does continuing MiniLM's pretraining on a target domain's unlabelled
text help a sentiment classifier trained on another domain's labels?

  1. `bertx pretrain` (continuing the packaged MiniLM): MLM (whole-word) on the text of the target
     domain's training reviews, read from its TSV with labels dropped (default kitchen: 1,396 reviews), 128-token packed blocks, batch 32,
     lr 1e-4, bf16 autocast, a few epochs.
  2. `bertx finetune` of the adapted and of the original MiniLM on the source domain's labelled
     training reviews (default books), same settings, over several seeds.
  3. Accuracy on the target domain's dev reviews (never seen in any form), and on its training
     reviews (their text was seen, unlabelled, in step 1: the transductive setting).

Usage: python -m benchmarks.pretrain.dapt_transfer [--quick] [--source books] [--target kitchen] [--seeds 3]
The last line of stdout is one JSON object; it is also saved in benchmarks/pretrain/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save

FINETUNE = {"epochs": 3, "batch_size": 32, "lr": 1e-4, "max_length": 256}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 pretraining epoch, 1 seed, 400 source reviews: a few minutes.")
    parser.add_argument("--source", default="books")
    parser.add_argument("--target", default="kitchen")
    parser.add_argument("--epochs", type=float, default=None, help="Pretraining epochs over the target text (default 3).")
    parser.add_argument("--seeds", type=int, default=None, help="Fine-tuning seeds per model (default 2).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default="runs/bench-dapt")
    args = parser.parse_args()
    epochs = args.epochs or (1 if args.quick else 3)
    seeds = args.seeds or (1 if args.quick else 2)
    root = Path(args.data_dir) / "multidomain"
    source, target = root / args.source, root / args.target
    if not (source / "train.tsv").is_file() or not (target / "dev.tsv").is_file():
        raise SystemExit(f"{source} or {target} not found (pass --data-dir)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    import bertx
    from bertx.config import PretrainConfig
    from bertx.recipes.pretrain import pretrain

    from bertx.data.text_corpus import read_documents

    text = target / "train.tsv"  # read as unlabelled text: one document per review, labels dropped
    reviews = sum(1 for _ in read_documents([str(text)]))
    print(f"1/2 domain-adaptive pretraining on {reviews} {args.target} reviews, {epochs} epochs ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    adapted = work / f"minilm-{args.target}"
    metrics = pretrain(
        PretrainConfig.model_validate(
            {
                "output": str(adapted),
                "data": {"train": [str(text)], "max_length": 128, "eval_fraction": 0.05},
                "model": {},  # the packaged MiniLM
                "objective": {"whole_word_mask": True, "sentence_task": "none"},
                "train": {"epochs": epochs, "batch_size": 32, "lr": 1e-4, "precision": "bf16", "eval_steps": None, "save_steps": 200},
            }
        ),
        overwrite=True,
        show_progress=False,
    )
    pretraining = {
        "epochs": epochs,
        "reviews": reviews,
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "held_out_mlm_accuracy": round(metrics["mlm_accuracy"], 4),
        "steps": metrics["steps"],
    }
    print(f"  {pretraining}", file=sys.stderr, flush=True)

    print(f"2/2 fine-tuning on {args.source} labels, {seeds} seed(s) per model ...", file=sys.stderr, flush=True)
    scores: dict[str, dict[str, list[float]]] = {}
    for name, model in (("no_adaptation", None), ("dapt", str(adapted))):
        for seed in range(seeds):
            out = work / f"ft-{name}-{seed}"
            bertx.finetune(
                {
                    "task": "classification",
                    "output": str(out),
                    "data": {
                        "train": str(source / "train.tsv"),
                        "max_length": FINETUNE["max_length"],
                        "max_train_examples": 400 if args.quick else None,
                    },
                    "model": {"name_or_path": model},
                    "train": {
                        "epochs": FINETUNE["epochs"],
                        "batch_size": FINETUNE["batch_size"],
                        "lr": FINETUNE["lr"],
                        "seed": seed,
                        "save_steps": None,
                    },
                },
                overwrite=True,
                show_progress=False,
            )
            row = scores.setdefault(name, {"target_dev": [], "target_train": [], "source_dev": []})
            row["target_dev"].append(bertx.evaluate(str(out), str(target / "dev.tsv"))["accuracy"])
            row["target_train"].append(bertx.evaluate(str(out), str(target / "train.tsv"))["accuracy"])
            row["source_dev"].append(bertx.evaluate(str(out), str(source / "dev.tsv"))["accuracy"])
            print(f"  {name} seed {seed}: " + ", ".join(f"{k}={v[-1]:.4f}" for k, v in row.items()), file=sys.stderr, flush=True)

    mean = {name: {k: round(statistics.mean(v), 4) for k, v in row.items()} for name, row in scores.items()}
    result = {
        "benchmark": "dapt_transfer",
        "quick": args.quick,
        "source": args.source,
        "target": args.target,
        "pretraining": pretraining,
        "finetune": {**FINETUNE, "seeds": seeds},
        "mean_accuracy": mean,
        "gain_target_dev_pts": round(100 * (mean["dapt"]["target_dev"] - mean["no_adaptation"]["target_dev"]), 2),
        "gain_target_train_pts": round(100 * (mean["dapt"]["target_train"] - mean["no_adaptation"]["target_train"]), 2),
        "per_seed": scores,
        "machine": machine(),
    }
    save("dapt_transfer_quick" if args.quick else "dapt_transfer", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
