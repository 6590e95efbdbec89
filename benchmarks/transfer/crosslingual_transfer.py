"""Cross-lingual transfer with bertx's own pieces: a small bilingual (English + German) BERT against an
English-only one of the same size and pretraining budget, each fine-tuned on English and evaluated
zero-shot on German (no multilingual encoder can be downloaded on this machine, so both are built here).

Steps:
  1. `bertx tokenizer train`: a cased 20,000-piece WordPiece vocabulary, once from WikiText-2 plus the
     German Wikipedia paragraphs of ../shared/data/de-text (bilingual), once from WikiText-2 alone.
  2. `bertx pretrain`: mini (4 layers x 256) from scratch, masked LM with whole-word masking on packed
     128-token blocks, batch 64, lr 1e-3, bf16 autocast, no dropout, the same number of steps for both
     (so the same number of tokens; the bilingual model sees about 18% German). Both read the files in
     `wikitext` document mode; the German file has no WikiText titles, so it is one long document, which
     only matters for held-out text: it comes first, so both models hold out the same last English articles.
  3. `bertx transfer`, plain fine-tuning, source `en`, targets `en` and `de`, for each model on
       - PAWS-X: the first 1,600 pairs of pawsx/dev-en.tsv train, the last 400 are the English dev;
         German: all 1,982 pairs of dev-de.tsv;
       - XNLI: the first 831 pairs (277 premises x 3 hypotheses) of xnli/dev-en.tsv train, the other
         414 are the English dev; German: the 414 pairs of the same held-back premises (rows are aligned
         across languages), so both languages score the same items;
       - PAN-X NER: panx/train-en.txt (19,763 sentences, 2 epochs); the first 2,000 sentences of
         dev-en.txt and all 1,837 of dev-de.txt.
     The English dev picks the checkpoint; German labels are only scored. Fine-tuning keeps the word
     embeddings frozen (bertx's default), which also keeps the two languages' shared vocabulary where
     pretraining put it. Matrices and gaps land in --work/<task>-<model>/.

Usage: python -m benchmarks.transfer.crosslingual_transfer [--quick] [--steps N] [--data-dir DIR] [--work DIR]
Finished pretraining runs of the same steps are reused. The last line of stdout is one JSON object;
it is also saved in benchmarks/transfer/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save

PRETRAIN = {"preset": "mini", "vocab_size": 20000, "batch_size": 64, "max_length": 128, "lr": 1e-3}


def pretrain_model(name: str, files: list[str], work: Path, steps: int) -> dict:
    """Tokenizer, then masked-LM pretraining from scratch; a finished run of the same steps is reused."""
    from bertx.config import PretrainConfig
    from bertx.data.wordpiece import train_wordpiece
    from bertx.recipes.pretrain import pretrain

    done = work / name / "metrics.json"
    if done.is_file() and json.loads(done.read_text())["steps"] == steps:
        print(f"  {name}: reusing the finished pretraining run", file=sys.stderr, flush=True)
        return json.loads(done.read_text())
    tokenizer_dir = work / f"tokenizer-{name}"
    train_wordpiece(files, tokenizer_dir, vocab_size=PRETRAIN["vocab_size"], lowercase=False, documents="wikitext", show_progress=False)
    config = PretrainConfig.model_validate(
        {
            "output": str(work / name),
            "data": {"train": files, "documents": "wikitext", "max_length": PRETRAIN["max_length"], "max_eval_sequences": 500},
            "model": {"preset": PRETRAIN["preset"], "tokenizer": str(tokenizer_dir), "dropout": 0.0},
            "objective": {"whole_word_mask": True, "sentence_task": "none"},
            "train": {
                "max_steps": steps,
                "batch_size": PRETRAIN["batch_size"],
                "lr": PRETRAIN["lr"],
                "eval_steps": max(steps // 4, 10),
                "save_steps": 100,
                "precision": "bf16",
            },
        }
    )
    print(f"  {name}: pretraining {steps} steps ...", file=sys.stderr, flush=True)
    return pretrain(config, resume=(work / name / "checkpoints").is_dir(), overwrite=not (work / name / "checkpoints").is_dir(), show_progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 pretraining steps and small slices: a few minutes.")
    parser.add_argument("--steps", type=int, default=None, help="Pretraining steps of each model (default 800, quick 40).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default="runs/bench-crosslingual", help="Folder for tokenizers, models and matrices.")
    parser.add_argument("--pretrain-only", action="store_true", help="Stop after pretraining both models.")
    args = parser.parse_args()
    steps = args.steps or (40 if args.quick else 800)
    data = Path(args.data_dir)
    wiki, german = data / "wikitext2" / "wiki.train.tokens", data / "de-text" / "mlqa_de_contexts.txt"
    for path in (wiki, german, data / "pawsx" / "dev-de.tsv", data / "xnli" / "dev-de.tsv", data / "panx" / "dev-de.txt"):
        if not path.is_file():
            raise SystemExit(f"{path} not found (pass --data-dir)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    print("1-2/3 tokenizers and pretraining ...", file=sys.stderr, flush=True)
    pretrained = {
        "bilingual": pretrain_model("bilingual", [str(german), str(wiki)], work, steps),
        "english": pretrain_model("english", [str(wiki)], work, steps),
    }
    if args.pretrain_only:
        print(json.dumps({name: {k: m.get(k) for k in ("steps", "mlm_accuracy", "wall_s")} for name, m in pretrained.items()}))
        return

    print("3/3 fine-tuning on English, zero-shot on German ...", file=sys.stderr, flush=True)
    from bertx.config import TransferConfig
    from bertx.recipes.transfer import transfer

    tasks = task_files(data, work / "splits", args.quick)
    matrices: dict[str, dict] = {}
    for task, spec in tasks.items():
        for name in pretrained:
            config = TransferConfig.model_validate(
                {
                    "output": str(work / f"{task}-{name}"),
                    "task": spec["kind"],
                    "methods": ["plain"],
                    "sources": [{"name": "en", "train": spec["train"], "dev": spec["en"]}],
                    "targets": [{"name": "en", "eval": spec["en"]}, {"name": "de", "eval": spec["de"]}],
                    "model": {"name_or_path": str(work / name)},
                    "data": {"max_length": 128, **spec.get("data", {})},
                    "train": {**FINETUNE, **spec["train_settings"], **({"epochs": 1} if args.quick else {})},
                }
            )
            result = transfer(config, show_progress=False)["methods"]["plain"]
            en, de = result["values"][0]
            matrices.setdefault(task, {})[name] = {"en": en, "de": de, "gap": round(en - de, 2)}
            print(f"  {task} {name}: en {en:.2f}  de {de:.2f}", file=sys.stderr, flush=True)
        matrices[task]["de_gain_bilingual_pts"] = round(matrices[task]["bilingual"]["de"] - matrices[task]["english"]["de"], 2)

    result = {
        "benchmark": "crosslingual_transfer",
        "quick": args.quick,
        "pretraining": {
            **PRETRAIN,
            "steps": steps,
            "objective": "MLM alone (whole-word), packed blocks",
            "precision": "bf16",
            **{
                name: {
                    "held_out_mlm_accuracy": round(m["mlm_accuracy"], 4),
                    "minutes": round(m["wall_s"] / 60, 1),
                    "tokens_seen": m.get("train_tokens_seen"),
                }
                for name, m in pretrained.items()
            },
        },
        "finetune": {**FINETUNE, "per_task": {t: spec["train_settings"] for t, spec in tasks.items()}},
        "metrics": {t: spec["metric"] for t, spec in tasks.items()},
        "scores": matrices,
        "machine": machine(),
    }
    save("crosslingual_transfer_quick" if args.quick else "crosslingual_transfer", result)
    print(json.dumps(result))


FINETUNE = {"batch_size": 32, "lr": 3e-4, "precision": "bf16", "save_steps": None}


def task_files(data: Path, splits: Path, quick: bool) -> dict[str, dict]:
    """English training and held-out files, and the German evaluation file, per task. PAWS-X and XNLI have
    no English training set here, so their English dev files are split (written under --work, not the repo)."""
    splits.mkdir(parents=True, exist_ok=True)

    def split(source: Path, name: str, first: int) -> tuple[str, str]:
        lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
        head, body = lines[0], lines[1:]
        train, held_out = splits / f"{name}-train.tsv", splits / f"{name}-heldout.tsv"
        train.write_text(head + "".join(body[:first]), encoding="utf-8")
        held_out.write_text(head + "".join(body[first:]), encoding="utf-8")
        return str(train), str(held_out)

    paws_train, paws_en = split(data / "pawsx" / "dev-en.tsv", "pawsx-en", 1600)
    # XNLI rows come in premise triples, aligned across languages: 277 premises train, 138 are held out in both languages.
    xnli_train, xnli_en = split(data / "xnli" / "dev-en.tsv", "xnli-en", 831)
    _, xnli_de = split(data / "xnli" / "dev-de.tsv", "xnli-de", 831)
    panx_limit = {"max_train_examples": 2000, "max_dev_examples": 300} if quick else {"max_dev_examples": 2000}
    return {
        "pawsx": {
            "kind": "pair-classification",
            "metric": "accuracy",
            "train": paws_train,
            "en": paws_en,
            "de": str(data / "pawsx" / "dev-de.tsv"),
            "train_settings": {"epochs": 5},
        },
        "xnli": {
            "kind": "pair-classification",
            "metric": "accuracy",
            "train": xnli_train,
            "en": xnli_en,
            "de": xnli_de,
            "train_settings": {"epochs": 8},
        },
        "panx": {
            "kind": "ner",
            "metric": "f1",
            "train": str(data / "panx" / "train-en.txt"),
            "en": str(data / "panx" / "dev-en.txt"),
            "de": str(data / "panx" / "dev-de.txt"),
            "train_settings": {"epochs": 2},
            "data": panx_limit,
        },
    }


if __name__ == "__main__":
    main()
