"""NER fine-tuning speed: bertx vs Hugging Face's Trainer with run_ner.py's preprocessing.

Both sides: the packaged MiniLM, the first N CoNLL-2003 training sentences, one epoch, batch 32,
lr 1e-4 with linear decay and no warm-up or weight decay, max length 128, each in its own process.
  trainer  run_ner.py's way: `is_split_into_words` tokenisation, the label on a word's first
           sub-token, DataCollatorForTokenClassification (dynamic padding), random order; dev F1 from
           per-word argmax scored by seqeval (conlleval-style), as run_ner.py reports it.
  bertx    `bertx.finetune(task="ner")`: length-bucketed batches, frozen word embeddings, probe-fitted
           head, windows for long sentences; dev F1 from constrained (Viterbi) BIO decoding, strict seqeval.

Usage: python -m benchmarks.finetune.ner_speed [--quick] [--train-examples N] [--data-dir DIR] [--model DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/finetune/results/.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import bertx_vs_trainer, peak_rss_mb

SAME = {"lr": 1e-4, "batch_size": 32, "epochs": 1, "max_length": 128, "seed": 42}


def trainer_worker(args) -> dict:
    import numpy as np
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from bertx.data.conll import read_tagged
    from bertx.metrics.tagging import tagging_metrics
    from bertx.tasks.bio import build_tag_space, repair

    hf_logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(args.model)
    train_s = read_tagged(Path(args.data_dir) / "conll2003/train.txt", limit=args.train_examples)
    dev_s = read_tagged(Path(args.data_dir) / "conll2003/dev.txt", limit=args.dev_examples)
    labels = build_tag_space(train_s)
    label2id = {name: i for i, name in enumerate(labels)}

    def encode(sentences):  # run_ner.py's tokenize_and_align_labels, label_all_tokens=False
        enc = tok([s.words for s in sentences], is_split_into_words=True, truncation=True, max_length=SAME["max_length"])
        rows = []
        for i, s in enumerate(sentences):
            previous, row = None, []
            for word in enc.word_ids(i):
                row.append(-100 if word is None or word == previous else label2id[s.tags[word]])
                previous = word
            rows.append(
                {
                    "input_ids": enc["input_ids"][i],
                    "attention_mask": enc["attention_mask"][i],
                    "token_type_ids": enc["token_type_ids"][i],
                    "labels": row,
                }
            )
        return rows

    train, dev = encode(train_s), encode(dev_s)
    model = AutoModelForTokenClassification.from_pretrained(args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=SAME["batch_size"],
        per_device_eval_batch_size=64,
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
    trainer = Trainer(model=model, args=targs, train_dataset=train, data_collator=DataCollatorForTokenClassification(tok))
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    logits = trainer.predict(dev).predictions  # (N, T, C), padded
    pred = []
    for i, row in enumerate(dev):
        tags = [labels[int(np.argmax(logits[i, k]))] for k, y in enumerate(row["labels"]) if y != -100]
        # words cut by truncation get O, as run_ner.py scores only what it predicted
        pred.append(repair(tags + ["O"] * (len(dev_s[i].words) - len(tags))))
    f1 = tagging_metrics([s.tags for s in dev_s], pred)["f1"]
    return {"samples_per_s": round(len(train) / wall, 2), "wall_s": round(wall, 1), "peak_rss_mb": round(peak_rss_mb(), 1), "dev_f1": round(f1, 4)}


def bertx_worker(args) -> dict:
    import bertx

    data = Path(args.data_dir) / "conll2003"
    out = tempfile.mkdtemp()
    config = {
        "task": "ner",
        "output": out,
        "data": {"train": str(data / "train.txt"), "max_train_examples": args.train_examples, "max_length": SAME["max_length"]},
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
    f1 = bertx.evaluate(out, str(data / "dev.txt"), limit=args.dev_examples)["f1"]
    return {
        "samples_per_s": round(result["train_examples"] / result["wall_s"], 2),
        "wall_s": result["wall_s"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "dev_f1": round(f1, 4),
    }


def main() -> None:
    bertx_vs_trainer(
        __file__,
        "ner_speed",
        __doc__,
        quick=(2000, 1000),
        full=(13770, 3195),
        required=lambda args: Path(args.data_dir) / "conll2003/train.txt",
        workers={"bertx": bertx_worker, "trainer": trainer_worker},
        hyperparameters=SAME,
    )


if __name__ == "__main__":
    main()
