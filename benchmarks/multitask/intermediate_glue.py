"""Intermediate-task transfer on GLUE: the 4 x 4 map of which task's training helps which task.

Runs `bertx intermediate configs/intermediate/glue4.yaml` (RTE, MRPC, STS-B, CoLA; up to 2,000
training examples each, 2 epochs per stage, lr 1e-4, batch 32, bf16 autocast, default MiniLM): every
target is fine-tuned from MiniLM (the "none" row) and from each source's fine-tuned encoder. Full dev
sets; main metrics: RTE accuracy, MRPC F1, STS-B Pearson, CoLA MCC, in points.

Usage: python -m benchmarks.multitask.intermediate_glue [--quick] [--work DIR]
The last line of stdout is one JSON object; it, the Markdown table and the heatmap are saved in
benchmarks/multitask/results/ (intermediate_glue.json / .md / .png).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import results_of, machine, save

RESULTS = results_of(__file__)

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "intermediate" / "glue4.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 training and 150 dev examples per task, 1 epoch: a few minutes.")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default="runs/bench-intermediate")
    args = parser.parse_args()
    if not (Path(args.data_dir) / "glue/rte/train.tsv").is_file():
        raise SystemExit(f"{args.data_dir}/glue not found (pass --data-dir)")

    from bertx.config import IntermediateConfig, load_config
    from bertx.recipes.intermediate import intermediate

    overrides = [f"data_dir={args.data_dir}", f"output={args.work}"]
    if args.quick:
        overrides.append("train.epochs=1")
    config = load_config(CONFIG, overrides, schema=IntermediateConfig)
    if args.quick:
        for entry in config.tasks:
            entry.data.max_train_examples, entry.data.max_dev_examples = 300, 150
    result = intermediate(config, show_progress=False)
    result.update(
        benchmark="intermediate_glue",
        quick=args.quick,
        config=str(CONFIG.relative_to(CONFIG.parents[2])),
        train=config.train.model_dump(mode="json"),
        machine=machine(),
    )
    name = "intermediate_glue_quick" if args.quick else "intermediate_glue"
    save(name, result)
    for suffix in (".md", ".png"):
        shutil.copy(Path(args.work) / f"matrix{suffix}", RESULTS / f"{name}{suffix}")
    print((Path(args.work) / "matrix.md").read_text(), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
