"""Intermediate losses and loss schedules for a 3-layer BERT student: outputs only, against hidden-state MSE,
cosine and patient KD, an annealed temperature and a rising hard-label weight.

The teacher and its 8,000 SST-2 training sentences are those of `distill_own_tokenizer` (--work: its folder).
Each student keeps the teacher's layers 1, 3, 5 and trains with the same data, steps, batch and seed; only the
loss differs (soft targets and hard labels in every row, plus):
  outputs   nothing more (the teacher's outputs from the store)
  hidden    MSE between each student layer and the teacher layer it was copied from
  cosine    1 - cosine between the same pairs of hidden states
  patient   distance between the same pairs' normalised [CLS] states (Sun et al., 2019)
  anneal    no extra loss; the temperature falls linearly from 4 to 1 over training (instead of 2 throughout)
  hard_rise no extra loss; the hard-label weight rises linearly from 0 to 1 (instead of 0.5 throughout)
No run reads the dev file; each is scored on the 872 official SST-2 dev sentences afterwards (a 95% interval
of about +-2.4 points around 85% for one run; three seeds each, their mean compared).

Usage: python -m benchmarks.distill.distill_losses --work DIR [--epochs 2]
Last line of stdout: one JSON object, also in results/.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save

VARIANTS = {
    "outputs": {},
    "hidden": {"hidden": 1.0},
    "cosine": {"cosine": 1.0},
    "patient": {"patient": 100.0},
    "anneal": {"temperature": 4.0, "temperature_end": 1.0},
    "hard_rise": {"hard": 0.0, "hard_end": 1.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="The folder of a distill_own_tokenizer run (teacher/, train.tsv).")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    import bertx

    work, dev = Path(args.work), str(Path(args.data_dir).resolve() / "sst2/dev.tsv")
    os.environ.setdefault("BERTX_CACHE", str(work / "cache"))
    rows = {}
    for name, extra in VARIANTS.items():
        rows[name] = {"dev_accuracy": [], "wall_s": []}
        for seed in args.seeds:
            started = time.perf_counter()
            out = work / f"loss-{name}-{seed}"
            score = distil(bertx, work, out, extra, args.epochs, seed, dev)
            rows[name]["dev_accuracy"].append(score)
            rows[name]["wall_s"].append(round(time.perf_counter() - started, 1))
        rows[name]["mean"] = round(sum(rows[name]["dev_accuracy"]) / len(args.seeds), 2)
    base = rows["outputs"]["mean"]
    result = {
        "benchmark": "distill_losses",
        "epochs": args.epochs,
        "seeds": args.seeds,
        "rows": rows,
        "gain_over_outputs_pts": {name: round(row["mean"] - base, 2) for name, row in rows.items() if name != "outputs"},
        "machine": machine(),
    }
    save("distill_losses", result)
    print(json.dumps(result))


def distil(bertx, work: Path, out: Path, extra: dict, epochs: float, seed: int, dev: str) -> float:
    """One 3-layer student with this loss (kept when its run finished before); its accuracy on the official dev
    sentences."""
    if not (out / "metrics.json").is_file():
        bertx.distill(
            {
                "teacher": str(work / "teacher"),
                "output": str(out),
                "data": {"train": str(work / "train.tsv"), "max_length": 64},
                "student": {"layers": 3},
                "loss": {"soft": 1.0, "hard": 0.5, **extra},
                "baseline": False,
                "train": {"epochs": epochs, "batch_size": 32, "save_steps": None, "seed": seed},
            },
            overwrite=True,
            show_progress=False,
        )
    return round(100 * bertx.evaluate(str(out), dev)["accuracy"], 2)


if __name__ == "__main__":
    main()
