"""Extractive-QA fine-tuning speed: bertx vs Hugging Face's Trainer with run_qa.py's preprocessing.

Both sides: the packaged MiniLM, the first N SQuAD training questions of articles 0-379, one epoch,
batch 32, lr 1e-4 with linear decay and no warm-up or weight decay, max length 384, doc stride 128,
each in its own process; dev: questions of articles 400 onwards (other articles).
  trainer  run_qa.py's way: question/context windows with overflow and stride, padded to max length
           (run_qa.py's default `pad_to_max_length=True`), default_data_collator, random order.
  bertx    `bertx.finetune(task="qa")`: the same windows without padding, length-bucketed batches,
           frozen word embeddings.
Both models are scored by the same post-processing (bertx's n-best span decoding, n_best 20, max
answer 30 tokens) and SQuAD's official EM/F1 normalisation, so the F1 gap is the training's alone.

Usage: python -m benchmarks.finetune.qa_speed [--quick] [--train-examples N] [--data-dir DIR] [--model DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/finetune/results/.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import bertx_vs_trainer, peak_rss_mb

SAME = {"lr": 1e-4, "batch_size": 32, "epochs": 1, "max_length": 384, "doc_stride": 128, "seed": 42}
TRAIN_ARTICLES, DEV_ARTICLES = "0:380", "400:"


def squad_file(args) -> str:
    return str(Path(args.data_dir) / "squad/train-v1.1.reconstructed.json")


def trainer_worker(args) -> dict:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, Trainer, TrainingArguments, default_data_collator
    from transformers.utils import logging as hf_logging

    from bertx.data.qa_features import answer_tokens
    from bertx.data.squad import read_qa

    hf_logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(args.model)
    examples = read_qa(squad_file(args), articles=TRAIN_ARTICLES, limit=args.train_examples)
    # run_qa.py's prepare_train_features: overflowing windows padded to max_seq_length
    enc = tok(
        [ex.question.lstrip() for ex in examples],
        [ex.context for ex in examples],
        truncation="only_second",
        max_length=SAME["max_length"],
        stride=SAME["doc_stride"],
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    train = []
    for f, index in enumerate(enc["overflow_to_sample_mapping"]):
        ids = enc.sequence_ids(f)
        offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][f], ids)]
        start, end = answer_tokens(offsets, examples[index].answers[0])
        train.append(
            {
                "input_ids": enc["input_ids"][f],
                "attention_mask": enc["attention_mask"][f],
                "token_type_ids": enc["token_type_ids"][f],
                "start_positions": start,
                "end_positions": end,
            }
        )
    model = AutoModelForQuestionAnswering.from_pretrained(args.model)
    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=SAME["batch_size"],
        learning_rate=SAME["lr"],
        num_train_epochs=SAME["epochs"],
        seed=SAME["seed"],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train, data_collator=default_data_collator)
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    folder = tempfile.mkdtemp()
    trainer.save_model(folder)
    tok.save_pretrained(folder)
    return {
        "samples_per_s": round(len(examples) / wall, 2),
        "features": len(train),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **dev_scores(folder, args),
    }


def dev_scores(folder: str, args) -> dict:
    from bertx.config import DataConfig
    from bertx.inference.loading import load_trained

    trained = load_trained(folder)
    data = DataConfig(max_length=SAME["max_length"], doc_stride=SAME["doc_stride"])
    dev = trained.kind.load_eval(squad_file(args), data, trained.tokenizer, {}, {}, args.dev_examples, DEV_ARTICLES)
    metrics = trained.kind.evaluate(trained.model, dev, trained.pad_id, data)
    return {"dev_exact_match": round(metrics["exact_match"], 4), "dev_f1": round(metrics["f1"], 4)}


def bertx_worker(args) -> dict:
    import bertx

    out = tempfile.mkdtemp()
    config = {
        "task": "qa",
        "output": out,
        "data": {
            "train": squad_file(args),
            "train_articles": TRAIN_ARTICLES,
            "max_train_examples": args.train_examples,
            "max_length": SAME["max_length"],
            "doc_stride": SAME["doc_stride"],
        },
        "train": {
            "epochs": SAME["epochs"],
            "seed": SAME["seed"],
            "save_steps": None,
            "lr": SAME["lr"],
            "batch_size": SAME["batch_size"],
            "warmup_ratio": 0.0,
            "weight_decay": 0.0,
        },
    }
    if args.model:
        config["model"] = {"name_or_path": args.model}
    result = bertx.finetune(config, show_progress=False)
    # Same scorer as the Trainer side: the run's data options only add the defaults used there.
    return {
        "samples_per_s": round(result["train_examples"] / result["wall_s"], 2),
        "features": result["train_examples"],
        "wall_s": result["wall_s"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **dev_scores(out, args),
    }


def main() -> None:
    bertx_vs_trainer(
        __file__,
        "qa_speed",
        __doc__,
        quick=(800, 300),
        full=(4000, 1000),
        required=lambda args: Path(squad_file(args)),
        workers={"bertx": bertx_worker, "trainer": trainer_worker},
        hyperparameters=SAME,
    )


if __name__ == "__main__":
    main()
