"""A BiLSTM student on its own WordPiece against the same student on the teacher's 30k pieces.

Teacher: MiniLM fine-tuned on 8,000 SST-2 training sentences (a seeded draw; 2 epochs, no dev file, last
weights). Transfer set: those 8,000 plus the next --unlabelled training sentences as unlabelled text, labelled
once by the teacher (the teacher store serves the second student). Students: `--student bilstm`, embeddings
128 wide started from the teacher's table, the same epochs, batch and seed:
  teacher pieces   the teacher's 30,522-piece vocabulary
  own pieces       `student.tokenizer: train`, a WordPiece of --vocab pieces learnt on the transfer set; each
                   row starts from the mean of the teacher's rows for the teacher's pieces of its text
No run reads the dev file; each student is scored on the 872 official SST-2 dev sentences afterwards.

`--task ner`: the same on CoNLL-2003 with BiLSTM taggers: the teacher fine-tuned on --labelled training
sentences (default 5,000), the rest of the training sentences (8,770) as unlabelled text it tags; each word's
teacher outputs go to every piece of that word in the student's own pieces; entity F1 on the official dev
sentences (results in distill_own_tokenizer_ner.json).

Usage: python -m benchmarks.distill.distill_own_tokenizer [--quick] [--task sentiment|ner] [--work DIR]
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


def split_tagged(data: Path, work: Path, labelled: int, unlabelled: int) -> tuple[Path, Path]:
    """CoNLL-2003 training sentences, a seeded draw: `labelled` of them as a tagged file, the next `unlabelled`
    as unlabelled text (a sentence of words per line)."""
    blocks = [b for b in (data / "conll2003/train.txt").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    random.Random(13).shuffle(blocks)
    train, extra = work / "train.txt", work / "unlabelled.txt"
    train.write_text("\n\n".join(blocks[:labelled]) + "\n", encoding="utf-8")
    sentences = [" ".join(line.split()[0] for line in b.splitlines() if line.strip()) for b in blocks[labelled : labelled + unlabelled]]
    extra.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return train, extra


TASKS = {
    # task kind, split, dev file, max_length, metric, labelled and unlabelled sentences by default
    "sentiment": ("classification", split, "sst2/dev.tsv", 64, "accuracy", 8000, 20000),
    "ner": ("ner", split_tagged, "conll2003/dev.txt", 128, "f1", 5000, 8770),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", default=None)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--unlabelled", type=int, default=None)
    parser.add_argument("--labelled", type=int, default=None)
    parser.add_argument("--task", choices=list(TASKS), default="sentiment")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    import bertx
    from transformers import AutoTokenizer

    data = Path(args.data_dir).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="bertx-own-tokenizer-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BERTX_CACHE", str(work / "cache"))  # a cold teacher store
    kind, splitter, dev_file, max_length, metric, labelled, unlabelled = TASKS[args.task]
    labelled, unlabelled = args.labelled or labelled, args.unlabelled or unlabelled
    labelled, unlabelled, epochs = (1000, 2000, 1) if args.quick else (labelled, unlabelled, 3)
    train, extra = splitter(data, work, labelled, unlabelled)
    dev = str(data / dev_file)

    started = time.perf_counter()
    bertx.finetune(
        {
            "task": kind,
            "output": str(work / "teacher"),
            "data": {"train": str(train), "max_length": max_length},
            "train": {"epochs": 1 if args.quick else 2, "batch_size": 32, "save_steps": None},
        },
        overwrite=True,
        show_progress=False,
    )
    teacher_s = round(time.perf_counter() - started, 1)
    rows = {"teacher": {"dev_score": round(100 * bertx.evaluate(str(work / "teacher"), dev)[metric], 2), "train_s": teacher_s}}
    for name, tokenizer in (("teacher_pieces", None), ("own_pieces", "train")):
        started = time.perf_counter()
        student = {"kind": "bilstm", "embedding_dim": 128, **({"tokenizer": tokenizer, "vocab_size": args.vocab} if tokenizer else {})}
        out = work / name
        bertx.distill(
            {
                "teacher": str(work / "teacher"),
                "output": str(out),
                "data": {"train": str(train), "max_length": max_length},
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
            "dev_score": round(100 * bertx.evaluate(str(out), dev)[metric], 2),
            "vocab": vocab,
            "embedding_mb": round(vocab * 128 * 4 / 2**20, 2),
            "wall_s": round(time.perf_counter() - started, 1),
        }
    own, theirs = rows["own_pieces"], rows["teacher_pieces"]
    result = {
        "benchmark": "distill_own_tokenizer",
        "quick": args.quick,
        "task": args.task,
        "metric": metric,
        "labelled": labelled,
        "unlabelled": unlabelled,
        "rows": rows,
        "own_tokenizer": {
            "accuracy": own["dev_score"],
            "accuracy_on_teacher_vocab": theirs["dev_score"],
            "vocab": own["vocab"],
            "embedding_mb": own["embedding_mb"],
            "embedding_mb_on_teacher_vocab": theirs["embedding_mb"],
        },
        "machine": machine(),
    }
    name = "distill_own_tokenizer" + ("_ner" if args.task == "ner" else "") + ("_quick" if args.quick else "")
    save(name, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
