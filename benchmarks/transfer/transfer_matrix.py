"""A transfer matrix from a `bertx transfer` config, run and recorded: the four Amazon domains
(configs/transfer/amazon.yaml, the default) or English -> Portuguese SST-2 (configs/transfer/sst2-pt.yaml).

Every method of the config runs on the same model, data and machine in one go; the summary compares
each adaptation method's mean off-diagonal score with plain fine-tuning's (the issue's target is
+1 point for cross-domain). Matrices (JSON, Markdown, PNG) go to --work and are copied to
benchmarks/transfer/results/<name>-matrix-<method>.*.

Usage: python -m benchmarks.transfer.transfer_matrix [--config FILE] [--name NAME] [--quick] [--model DIR]
       [--data-dir DIR] [--work DIR] [overrides ...]
--quick trains on 300 examples per source for one epoch, scores 100 per target, and adapts for 10 steps.
Finished runs in --work are reused. The last line of stdout is one JSON object; it is also saved in
benchmarks/transfer/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import results_of, machine, save

RESULTS = results_of(__file__)

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["data.max_train_examples=300", "data.max_dev_examples=100", "train.epochs=1", "dapt.max_steps=10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs/transfer/amazon.yaml"))
    parser.add_argument("--name", default=None, help="Result name (default: transfer_<config name>).")
    parser.add_argument("--quick", action="store_true", help="Small slices and short training: a few minutes.")
    parser.add_argument("--model", default=None, help="Local HF model folder (default: the config's, else packaged MiniLM).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default=None, help="Output folder of the runs (default: runs/bench-<name>).")
    parser.add_argument("overrides", nargs="*", help="Dotted config overrides, e.g. aux_mlm.weight=0.25.")
    args = parser.parse_args()
    name = (args.name or f"transfer_{Path(args.config).stem}").replace("-", "_") + ("_quick" if args.quick else "")
    work = args.work or f"runs/bench-{name}"

    from bertx.config import TransferConfig, load_config
    from bertx.recipes.transfer import transfer

    chosen = (QUICK if args.quick else []) + list(args.overrides) + ([f"model.name_or_path={args.model}"] if args.model else [])
    config = load_config(args.config, [f"data_dir={args.data_dir}", f"output={work}", *chosen], schema=TransferConfig)
    summary = transfer(config, show_progress=False)
    for method in config.methods:
        for suffix in ("json", "md", "png"):
            shutil.copy(Path(work) / f"matrix-{method}.{suffix}", RESULTS / f"{name}-matrix-{method}.{suffix}")
    config_path = Path(args.config).resolve()
    result = {
        "benchmark": "transfer_matrix",
        "name": name,
        "quick": args.quick,
        "config": str(config_path.relative_to(ROOT)) if config_path.is_relative_to(ROOT) else args.config,
        "overrides": chosen,
        "model": config.model.name_or_path or "packaged all-MiniLM-L6-v2",
        "summary": {
            m: {k: r[k] for k in ("in_domain", "off_diagonal_mean", "mean_gap", "off_diagonal_vs_plain") if k in r}
            for m, r in summary["methods"].items()
        },
        "matrices": {m: r["values"] for m, r in summary["methods"].items()},
        "rows": summary["rows"],
        "columns": summary["columns"],
        "metric": summary["metric"],
        "wall_minutes": round(summary["wall_s"] / 60, 1),
        "machine": machine(),
    }
    save(name, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
