"""A BiLSTM student on its own WordPiece against the same student on the teacher's 30k pieces.

Teacher: MiniLM fine-tuned on 8,000 SST-2 training sentences (a seeded draw; 2 epochs, no dev file, last
weights). Transfer set: those 8,000 plus the next --unlabelled training sentences as unlabelled text, labelled
once by the teacher (the teacher store serves the second student). Students: `--student bilstm`, embeddings
128 wide started from the teacher's table, the same epochs, batch and seed:
  teacher pieces   the teacher's 30,522-piece vocabulary
  own pieces       `student.tokenizer: train`, a WordPiece of --vocab pieces learnt on the transfer set; each
                   row starts from the mean of the teacher's rows for the teacher's pieces of its text
No run reads the dev file; each student is scored on the 872 official SST-2 dev sentences afterwards.

Usage: python -m benchmarks.distill.distill_own_tokenizer [--quick] [--work DIR]
`--quick`: 1,000 labelled and 2,000 unlabelled sentences, one epoch. Last line of stdout: one JSON object, also in results/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save


def split(data: Path, work: Path, labelled: int, unlabelled: int) -> tuple[Path, Path]:
    lines = (data / "sst2/train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [line for line in lines[1:] if line.strip()]
    random.Random(13).shuffle(rows)
    train, extra = work / "train.tsv", work / "unlabelled.txt"
    train.write_text("\n".join([header, *rows[:labelled]]) + "\n", encoding="utf-8")
    extra.write_text("\n".join(row.split("\t")[0] for row in rows[labelled : labelled + unlabelled]) + "\n", encoding="utf-8")
    return train, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", default=None)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--unlabelled", type=int, default=20000)
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    import bertx
    from transformers import AutoTokenizer

    data = Path(args.data_dir).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="bertx-own-tokenizer-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BERTX_CACHE", str(work / "cache"))  # a cold teacher store
    labelled, unlabelled, epochs = (1000, 2000, 1) if args.quick else (8000, args.unlabelled, 3)
    train, extra = split(data, work, labelled, unlabelled)
    dev = str(data / "sst2/dev.tsv")

    started = time.perf_counter()
    bertx.finetune(
        {
            "task": "classification",
            "output": str(work / "teacher"),
            "data": {"train": str(train), "max_length": 64},
            "train": {"epochs": 1 if args.quick else 2, "batch_size": 32, "save_steps": None},
        },
        overwrite=True,
        show_progress=False,
    )
    teacher_s = round(time.perf_counter() - started, 1)
    rows = {"teacher": {"dev_accuracy": round(100 * bertx.evaluate(str(work / "teacher"), dev)["accuracy"], 2), "train_s": teacher_s}}
    for name, tokenizer in (("teacher_pieces", None), ("own_pieces", "train")):
        started = time.perf_counter()
        student = {"kind": "bilstm", "embedding_dim": 128, **({"tokenizer": tokenizer, "vocab_size": args.vocab} if tokenizer else {})}
        out = work / name
        bertx.distill(
            {
                "teacher": str(work / "teacher"),
                "output": str(out),
                "data": {"train": str(train), "max_length": 64},
                "unlabelled": [str(extra)],
                "student": student,
                "baseline": False,
                "train": {"epochs": epochs, "batch_size": 64, "save_steps": None, "seed": 7},
            },
            overwrite=True,
            show_progress=False,
        )
        vocab = len(AutoTokenizer.from_pretrained(out))
        rows[name] = {
            "dev_accuracy": round(100 * bertx.evaluate(str(out), dev)["accuracy"], 2),
            "vocab": vocab,
            "embedding_mb": round(vocab * 128 * 4 / 2**20, 2),
            "wall_s": round(time.perf_counter() - started, 1),
        }
    own, theirs = rows["own_pieces"], rows["teacher_pieces"]
    result = {
        "benchmark": "distill_own_tokenizer",
        "quick": args.quick,
        "labelled": labelled,
        "unlabelled": unlabelled,
        "rows": rows,
        "own_tokenizer": {
            "accuracy": own["dev_accuracy"],
            "accuracy_on_teacher_vocab": theirs["dev_accuracy"],
            "vocab": own["vocab"],
            "embedding_mb": own["embedding_mb"],
            "embedding_mb_on_teacher_vocab": theirs["embedding_mb"],
        },
        "machine": machine(),
    }
    save("distill_own_tokenizer_quick" if args.quick else "distill_own_tokenizer", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
