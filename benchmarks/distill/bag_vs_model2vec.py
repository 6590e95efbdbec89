"""The fastest corner again: a bag-of-embeddings student answered from its unpadded ids (`bertx/models/bag_fast.py`) against
the same student through torch and against model2vec, end to end (raw strings to labels), in one process.

The student: `--bag FOLDER` (the transfer-set bag of `distill_other_networks`, 82.57 on SST-2 dev), or, without
it, a stand-in of the same shape (30,522 x 128 embeddings, a 256-wide head) distilled in a minute from a teacher
fine-tuned on 2,000 SST-2 sentences: speed does not depend on how well a bag learnt, and the unpadded path gives
the torch path's logits (tests/models/test_bag_fast.py), so the accuracy of that row carries over.
model2vec: distilled from the same MiniLM (256 dimensions) with a classifier, timed as in
`distill_other_networks` (the best of three passes over the SST-2 dev sentences at batch 32; the median of 300
single inputs).

Usage: python -m benchmarks.distill.bag_vs_model2vec [--bag FOLDER] [--work DIR] [--quick]
`--quick`: one pass instead of three. Last line of stdout: one JSON object, also in results/.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.distill.model2vec_peer import model2vec_speed, single_latency_ms, timed
from benchmarks.harness import machine, save

MEASURED_BAG_ACCURACY = 82.57  # distill_other_networks.json, students.bag-e128 (the transfer-set bag, fp32)
MEASURED_MODEL2VEC_ACCURACY = 82.22  # the same file: model2vec's classifier on the same transfer set


def stand_in_bag(data: Path, work: Path) -> Path:
    """A bag of the measured student's shape, distilled briefly (its speed is what is measured here)."""
    import bertx

    rows = list(csv.reader(open(data / "sst2/train.tsv", encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))
    train = work / "train.tsv"
    train.write_text("".join("\t".join(r) + "\n" for r in rows[:2001]), encoding="utf-8")
    teacher, bag = work / "teacher", work / "bag"
    if not (teacher / "metrics.json").is_file():
        bertx.finetune(
            {
                "task": "classification",
                "output": str(teacher),
                "data": {"train": str(train), "max_length": 64},
                "train": {"epochs": 1, "save_steps": None},
            },
            show_progress=False,
            overwrite=True,
        )
    if not (bag / "student.json").is_file():
        bertx.distill(
            {
                "teacher": str(teacher),
                "output": str(bag),
                "data": {"train": str(train), "max_length": 64},
                "student": {"kind": "bag", "embedding_dim": 128, "hidden": 256},
                "baseline": False,
                "train": {"epochs": 1, "save_steps": None},
            },
            show_progress=False,
            overwrite=True,
        )
    return bag


def bag_speed(folder: Path, texts: list[str], unpadded: bool, repeats: int) -> dict:
    import bertx.inference.predictor as predictor_module
    from bertx.inference.predictor import Predictor

    original = predictor_module.bag_logits
    if not unpadded:
        predictor_module.bag_logits = lambda model, features: None  # the padded torch path, as before bag_fast
    try:
        predictor = Predictor.load(folder, device="cpu")
        predict = lambda batch, size: predictor.predict(batch, batch_size=size)  # noqa: E731
        return {"e2e_inputs_per_s_batch32": round(timed(predict, texts, 32, repeats), 1), "e2e_latency_ms_batch1": single_latency_ms(predict, texts)}
    finally:
        predictor_module.bag_logits = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bag", default=None, help="A bag student folder (default: a stand-in of the measured one's shape).")
    parser.add_argument("--work", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    data = Path(args.data_dir).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="bertx-bag-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BERTX_CACHE", str(work / "cache"))
    rows = list(csv.reader(open(data / "sst2/dev.tsv", encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    texts = [r[0] for r in rows]
    bag = Path(args.bag) if args.bag else stand_in_bag(data, work)
    repeats = 1 if args.quick else 3
    measured = {
        "bag, unpadded path": bag_speed(bag, texts, True, repeats),
        "bag, padded torch path": bag_speed(bag, texts, False, repeats),
        "model2vec": model2vec_speed(texts),
    }
    fast, peer = measured["bag, unpadded path"], measured["model2vec"]
    ratio = round(fast["e2e_inputs_per_s_batch32"] / peer["e2e_inputs_per_s_batch32"], 2)
    result = {
        "benchmark": "bag_vs_model2vec",
        "quick": args.quick,
        "bag": str(bag),
        "stand_in": args.bag is None,
        "texts": len(texts),
        "rows": measured,
        "accuracy": {"bag": MEASURED_BAG_ACCURACY, "model2vec": MEASURED_MODEL2VEC_ACCURACY, "from": "distill_other_networks.json"},
        "bag_vs_model2vec_b32": ratio,
        "bag_fast_vs_torch_b32": round(fast["e2e_inputs_per_s_batch32"] / measured["bag, padded torch path"]["e2e_inputs_per_s_batch32"], 2),
        "model2vec_dominated": ratio >= 1.0 and MEASURED_BAG_ACCURACY >= MEASURED_MODEL2VEC_ACCURACY,
        "machine": machine(),
    }
    save("bag_vs_model2vec_quick" if args.quick else "bag_vs_model2vec", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
