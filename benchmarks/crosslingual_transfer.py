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
       - PAWS-X (pawsx/dev-en.tsv, 2,000 pairs, as English training data; German dev-de.tsv),
       - XNLI (the first 830 pairs of xnli/dev-en.tsv train, the rest is the English dev; German: the
         415 German pairs of the same held-back premises, so both languages score the same items),
       - PAN-X NER (panx/train-en.txt; dev-en.txt and dev-de.txt).
     Matrices and gaps land in --work/<task>-<model>/; the summary compares the two models per language.

Usage: python benchmarks/crosslingual_transfer.py [--quick] [--steps N] [--data-dir DIR] [--work DIR]
Finished pretraining runs of the same steps are reused. The last line of stdout is one JSON object;
it is also saved in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, save  # noqa: E402

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
    train_wordpiece(files, tokenizer_dir, vocab_size=PRETRAIN["vocab_size"], lowercase=False, documents="wikitext",
                    show_progress=False)
    config = PretrainConfig.model_validate({
        "output": str(work / name),
        "data": {"train": files, "documents": "wikitext", "max_length": PRETRAIN["max_length"], "max_eval_sequences": 500},
        "model": {"preset": PRETRAIN["preset"], "tokenizer": str(tokenizer_dir), "dropout": 0.0},
        "objective": {"whole_word_mask": True, "sentence_task": "none"},
        "train": {"max_steps": steps, "batch_size": PRETRAIN["batch_size"], "lr": PRETRAIN["lr"],
                  "eval_steps": max(steps // 4, 10), "save_steps": 100, "precision": "bf16"},
    })
    print(f"  {name}: pretraining {steps} steps ...", file=sys.stderr, flush=True)
    return pretrain(config, resume=(work / name / "checkpoints").is_dir(), overwrite=not (work / name / "checkpoints").is_dir(),
                    show_progress=False)


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
    raise SystemExit("the transfer stage is not written yet")


if __name__ == "__main__":
    main()
