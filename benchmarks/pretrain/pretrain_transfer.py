"""What pretraining buys: a `mini` BERT pretrained by bertx on WikiText-2, then fine-tuned on 2,000 SST-2
sentences, against the same architecture fine-tuned from random initialisation.

Steps, all with bertx's own pieces:
  1. `bertx tokenizer train`: an uncased 16,000-piece WordPiece vocabulary from WikiText-2.
  2. `bertx pretrain`: mini (4 layers x 256), masked LM with whole-word masking on packed 128-token
     blocks (MLM alone: under a budget this small, SOP stayed at chance and only cost tokens), no
     dropout, batch 64, lr 1e-3, bf16 autocast, for a fixed number of steps (the default, 1,300, is
     about 30 minutes on 2 CPU cores with AVX512-BF16); held-out MLM accuracy on the last 2% of articles.
  3. The same architecture and tokenizer, randomly initialised (same seed), saved as a folder.
  4. `bertx finetune` of both on the first 2,000 SST-2 training sentences (8 epochs, batch 32,
     trainable embeddings, dropout 0.1), at each learning rate of a small grid; scored on the whole
     SST-2 dev set. Both models get the same grid; the best rate of each is compared, and every
     rate's score is kept.

Usage: python -m benchmarks.pretrain.pretrain_transfer [--quick] [--steps N] [--data-dir DIR] [--work DIR] [--reuse]
The last line of stdout is one JSON object; it is also saved in benchmarks/pretrain/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save

FINETUNE = {"epochs": 8, "batch_size": 32, "max_length": 128, "train_examples": 2000}
LEARNING_RATES = (1e-4, 3e-4, 1e-3)


def finetune_sst2(model_dir: Path, output: Path, data_dir: str, train_examples: int, dev_examples: int | None, lr: float) -> dict:
    from bertx import finetune

    metrics = finetune(
        {
            "task": "classification",
            "output": str(output),
            "data": {
                "train": f"{data_dir}/sst2/train.tsv",
                "dev": f"{data_dir}/sst2/dev.tsv",
                "max_length": FINETUNE["max_length"],
                "max_train_examples": train_examples,
                "max_dev_examples": dev_examples,
            },
            "model": {"name_or_path": str(model_dir), "freeze_word_embeddings": False, "dropout": 0.1},
            "train": {"epochs": FINETUNE["epochs"], "batch_size": FINETUNE["batch_size"], "lr": lr, "save_steps": None},
        },
        overwrite=True,
        show_progress=False,
    )
    return {"dev_accuracy": round(metrics["accuracy"], 4), "best_step": metrics["best_step"], "wall_s": metrics["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 pretraining steps and 300 dev sentences: a few minutes.")
    parser.add_argument("--steps", type=int, default=None, help="Pretraining steps (default 1300, quick 60).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default="runs/bench-pretrain", help="Folder for the tokenizer and models.")
    parser.add_argument("--reuse", action="store_true", help="Reuse a finished pretraining run of the same steps in --work.")
    args = parser.parse_args()
    steps = args.steps or (60 if args.quick else 1300)
    wiki = Path(args.data_dir) / "wikitext2" / "wiki.train.tokens"
    if not wiki.is_file() or not (Path(args.data_dir) / "sst2" / "train.tsv").is_file():
        raise SystemExit(f"{wiki} or sst2 not found (pass --data-dir)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    from bertx.config import PretrainConfig
    from bertx.data.wordpiece import train_wordpiece
    from bertx.models.encoder import load_tokenizer
    from bertx.models.pretraining import architecture, new_model
    from bertx.recipes.pretrain import pretrain

    print("1/4 tokenizer ...", file=sys.stderr, flush=True)
    tokenizer_dir = work / "tokenizer"
    vocab = train_wordpiece([str(wiki)], tokenizer_dir, vocab_size=16000, lowercase=True, documents="wikitext", show_progress=False)

    print(f"2/4 pretraining mini for {steps} steps ...", file=sys.stderr, flush=True)
    config = PretrainConfig.model_validate(
        {
            "output": str(work / "mini-pretrained"),
            "data": {"train": [str(wiki)], "documents": "wikitext", "max_length": 128, "max_eval_sequences": 1000},
            "model": {"preset": "mini", "tokenizer": str(tokenizer_dir), "dropout": 0.0},
            "objective": {"whole_word_mask": True, "sentence_task": "none"},
            "train": {"max_steps": steps, "batch_size": 64, "lr": 1e-3, "eval_steps": max(steps // 5, 10), "save_steps": 100, "precision": "bf16"},
        }
    )
    done = work / "mini-pretrained" / "metrics.json"
    if args.reuse and done.is_file() and json.loads(done.read_text())["steps"] == steps:
        pretrained = json.loads(done.read_text())  # the same run, finished earlier
        print("  reusing the finished pretraining run", file=sys.stderr, flush=True)
    else:
        pretrained = pretrain(config, overwrite=True, show_progress=False)
    pretrain_minutes = pretrained["wall_s"] / 60

    print("3/4 random initialisation ...", file=sys.stderr, flush=True)
    import torch

    torch.manual_seed(42)
    tokenizer = load_tokenizer(str(tokenizer_dir))
    random_dir = work / "mini-random"
    new_model(tokenizer, *architecture("mini", None, None, None)).save_pretrained(random_dir)
    tokenizer.save_pretrained(random_dir)

    print("4/4 fine-tuning both on SST-2 ...", file=sys.stderr, flush=True)
    dev_examples = 300 if args.quick else None
    rates = LEARNING_RATES[-1:] if args.quick else LEARNING_RATES
    scores: dict[str, dict[str, dict]] = {}
    for name, folder in (("pretrained", work / "mini-pretrained"), ("random_init", random_dir)):
        for lr in rates:
            scores.setdefault(name, {})[f"lr={lr:g}"] = finetune_sst2(
                folder, work / f"sst2-{name}", args.data_dir, FINETUNE["train_examples"], dev_examples, lr
            )
            print(f"  {name} lr={lr:g}: {scores[name][f'lr={lr:g}']}", file=sys.stderr, flush=True)
    best = {name: max(runs.values(), key=lambda r: r["dev_accuracy"])["dev_accuracy"] for name, runs in scores.items()}

    result = {
        "benchmark": "pretrain_transfer",
        "quick": args.quick,
        "pretraining": {
            "preset": "mini",
            "layers": 4,
            "hidden": 256,
            "vocab_size": vocab["vocab_size"],
            "steps": steps,
            "batch_size": 64,
            "max_length": 128,
            "lr": 1e-3,
            "precision": "bf16",
            "dropout": 0.0,
            "objective": "MLM alone (whole-word), packed blocks",
            "minutes": round(pretrain_minutes, 1),
            "tokens_per_s": pretrained["tokens_per_s"],
            "held_out_mlm_accuracy": round(pretrained["mlm_accuracy"], 4),
            "held_out_perplexity": round(pretrained["perplexity"], 1),
        },
        "finetune": {**FINETUNE, "learning_rates": list(rates), "dev_examples": dev_examples or "all (872)"},
        "sst2_dev_accuracy_best_lr": best,
        "gain_pts": round(100 * (best["pretrained"] - best["random_init"]), 2),
        "per_learning_rate": scores,
        "machine": machine(),
    }
    save("pretrain_transfer_quick" if args.quick else "pretrain_transfer", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
