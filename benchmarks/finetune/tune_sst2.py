"""Hyper-parameter search on SST-2 with `bertx tune`: what 12 Optuna trials find against bertx's default
recipe (85.8% dev accuracy on 8,000 sentences, one epoch), and the time median pruning saves.

Each trial fine-tunes MiniLM on the first 8,000 SST-2 training sentences for one epoch, evaluated on
the full dev set every 50 steps (the pruner's intermediate values); TPE (seed 0) over the default space
(lr, warm-up, batch size, weight decay, layer-wise lr decay, dropout). The default recipe's run is
measured in the same process for the comparison.

Usage: python -m benchmarks.finetune.tune_sst2 [--quick] [--trials 12] [--work DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/finetune/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 trials on 1,000 sentences, 400 dev: a few minutes.")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default="runs/bench-tune")
    parser.add_argument("--space", default=None, help="YAML search space (default: bertx tune's default space).")
    parser.add_argument("--name", default=None, help="Result file name.")
    args = parser.parse_args()
    trials = args.trials or (4 if args.quick else 12)
    examples, dev = (1000, 400) if args.quick else (8000, None)
    if not (Path(args.data_dir) / "sst2/train.tsv").is_file():
        raise SystemExit(f"{args.data_dir}/sst2 not found (pass --data-dir)")

    from bertx.config import FinetuneConfig, load_config
    from bertx.recipes.finetune import finetune
    from bertx.recipes.tune import tune

    work = Path(args.work) / ("quick" if args.quick else "full") / (Path(args.space).stem if args.space else "default-space")
    overrides = [
        f"data.data_dir={args.data_dir}",
        f"data.max_train_examples={examples}",
        "train.epochs=1",
        "train.eval_steps=50",
        "train.save_steps=null",
        f"output={work / 'default'}",
    ]
    if dev:
        overrides.append(f"data.max_dev_examples={dev}")
    config = load_config(ROOT / "configs/sst2.yaml", overrides, schema=FinetuneConfig)
    started = time.perf_counter()
    default = finetune(config, overwrite=True, show_progress=False)
    import yaml

    space = yaml.safe_load(Path(args.space).read_text()) if args.space else None
    summary = tune(config, trials, str(work / "search"), space, log=lambda line: print(line, file=sys.stderr, flush=True))
    result = {
        "benchmark": "tune_sst2",
        "quick": args.quick,
        "train_examples": examples,
        "trials": trials,
        "space": args.space or "default",
        "default_recipe": {"accuracy": default["accuracy"], "wall_s": default["wall_s"], "precision": default.get("precision")},
        "best": {"accuracy": summary["best_value"], "trial": summary["best_trial"], "params": summary["best_params"]},
        "gain_pts": round(100 * (summary["best_value"] - default["accuracy"]), 2),
        "complete": summary["complete"],
        "pruned": summary["pruned"],
        "search_wall_s": summary["wall_s"],
        "wall_saved_by_pruning_s": summary["wall_saved_by_pruning_s"],
        "table": summary["table"],
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    save(args.name or ("tune_sst2_quick" if args.quick else "tune_sst2"), result)
    print(
        f"default {100 * default['accuracy']:.2f} | best of {trials} trials {100 * summary['best_value']:.2f} "
        f"({summary['pruned']} pruned, ~{summary['wall_saved_by_pruning_s']}s saved)",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
