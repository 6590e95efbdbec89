"""Many teachers, one student: a student distilled from an ensemble of teachers against the same student
distilled from the best of them alone.

Per task (RTE, MRPC, SST-2 with 8,000 labelled sentences and the rest of its training set as unlabelled
transfer text): three MiniLM teachers fine-tuned with three seeds; each teacher's dev score and their
ensemble's (outputs averaged as probabilities, scored as one model); then a 3-layer BERT student copied
from the best teacher's layers and distilled (a) from that teacher alone and (b) from the ensemble of the
three (`bertx distill --teachers`), same student, data, steps and seed. Every model is trained without a
dev file (its final weights, no checkpoint chosen) and scored on the official dev file afterwards; the only
choice made on dev is which teacher is "the best single teacher".

With `--transfer-pairs`, a pair task's students also learn from the English sentence pairs of the other pair
corpora here (RTE, MRPC and STS-B training pairs, QNLI's dev pairs, XNLI's and PAWS-X's English dev pairs;
never the target's own files), labels dropped, which the teachers label as they label SST-2's unlabelled
sentences; the row is named `<task>+pairs`. RTE and MRPC have no unlabelled text of their own, and an
ensemble's soft targets can only pay off on texts the labelled set does not cover.

`--small-students` adds BiLSTM / CNN students of the single-text task, from the best teacher and the ensemble,
timed in turns with the best teacher.

Usage: python -m benchmarks.distill.distill_many [--quick] [--tasks rte,mrpc,sst2] [--work DIR] [--merge]
[--transfer-pairs] [--small-students SPECS] [--skip-bert3]. `--quick`: RTE only, one epoch
per teacher. `--merge`: keep the saved rows of tasks not run this time (each row records its commit).
The last line of stdout is one JSON object; also saved in results/.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.distill.students import model_only_in_rounds, parse_student
from benchmarks.harness import machine, results_of, save

SEEDS = (1, 2, 3)
TASKS = {
    "rte": {"task": "pair-classification", "train": "glue/rte/train.tsv", "dev": "glue/rte/dev.tsv", "epochs": 3, "max_length": 128},
    "mrpc": {"task": "pair-classification", "train": "glue/mrpc/train.tsv", "dev": "glue/mrpc/dev.tsv", "epochs": 3, "max_length": 128},
    "sst2": {"task": "classification", "train": "sst2/train.tsv", "dev": "sst2/dev.tsv", "epochs": 2, "max_length": 64, "labelled": 8000},
}


@dataclass
class Job:
    """One task's students: what every student of it is trained and scored on."""

    name: str
    spec: dict
    train: str
    dev: str
    unlabelled: list[str]
    work: Path
    epochs: int
    tag: str = ""  # in the students' folder names: "-pairs"


def commit() -> str:
    import subprocess

    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def sst2_split(data: Path, work: Path, labelled: int) -> tuple[str, str]:
    """The first `labelled` SST-2 training sentences (a seeded shuffle) and the rest as unlabelled text."""
    import random

    rows = list(csv.reader(open(data / "sst2/train.tsv", encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))
    header, body = rows[0], rows[1:]
    random.Random(0).shuffle(body)
    work.mkdir(parents=True, exist_ok=True)
    train, rest = work / "sst2-train.tsv", work / "sst2-rest.txt"
    train.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in body[:labelled]), encoding="utf-8")
    rest.write_text("".join(r[0] + "\n" for r in body[labelled:]), encoding="utf-8")
    return str(train), str(rest)


PAIR_FILES = ("glue/rte/train.tsv", "glue/mrpc/train.tsv", "glue/stsb/train.tsv", "glue/qnli/dev.tsv", "xnli/dev-en.tsv", "pawsx/dev-en.tsv")


def transfer_pairs(data: Path, work: Path, spec: dict, name: str) -> str:
    """The other corpora's sentence pairs as one JSONL file of unlabelled pairs (the target's own files left out)."""
    own = {spec["train"], spec["dev"]}
    pairs = []
    for relative in PAIR_FILES:
        if relative in own or not (data / relative).is_file():
            continue
        rows = list(csv.reader(open(data / relative, encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))
        at = {column: i for i, column in enumerate(rows[0])}
        pairs += [(r[at["sentence1"]], r[at["sentence2"]]) for r in rows[1:] if len(r) == len(rows[0])]
    clean = lambda text: " ".join(text.split())  # noqa: E731
    out = work / f"{name}-transfer-pairs.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps({"sentence1": clean(a), "sentence2": clean(b)}) + "\n" for a, b in pairs if a.strip() and b.strip()))
    return str(out)


def teacher(name: str, spec: dict, train: str, dev: str, seed: int, epochs: int, work: Path) -> dict:
    import bertx

    out = work / f"{name}-teacher-{seed}"
    if not (out / "metrics.json").is_file():  # no dev file: the final model, no checkpoint chosen on dev
        bertx.finetune(
            {
                "task": spec["task"],
                "output": str(out),
                "data": {"train": train, "max_length": spec["max_length"]},
                "train": {"epochs": epochs, "batch_size": 32, "lr": 5e-5, "seed": seed, "save_steps": None},
            },
            show_progress=False,
            overwrite=True,
        )
    return {"folder": str(out), **bertx.evaluate(str(out), dev)}


def ensemble_score(folders: list[str], dev: str) -> dict:
    from dataclasses import replace

    from bertx.evaluation.evaluate import evaluate_loaded
    from bertx.inference.loading import load_trained
    from bertx.models.ensemble import EnsembleModel

    members = [load_trained(f, device="cpu") for f in folders]
    model = EnsembleModel([m.model for m in members], [1 / len(members)] * len(members), members[0].task.label_kind).eval()
    metrics, _ = evaluate_loaded(replace(members[0], model=model), dev)
    return metrics


def student(job: Job, teachers: list[str], tag: str, kind: str = "bert3") -> dict:
    """`kind` "bert3": the 3-layer BERT student copied from the first teacher's layers; otherwise a
    non-transformer student spec (`bilstm-e128-h150`), trained with bertx's defaults for its kind."""
    import bertx

    name, spec, work = job.name, job.spec, job.work
    out = work / f"{name}-student-{tag}" if kind == "bert3" else work / f"{name}-{kind}-{tag}"
    if kind == "bert3":
        student_config, train_config = {"layers": 3}, {"batch_size": 32, "lr": 1e-4}
    else:
        student_config, train_config = parse_student(kind), {"batch_size": 64}
    started = time.perf_counter()
    bertx.distill(
        {
            "teacher": teachers[0],
            "teachers": teachers[1:],
            "output": str(out),
            "data": {"train": job.train, "max_length": spec["max_length"]},
            "student": student_config,
            "unlabelled": job.unlabelled,
            "baseline": False,
            "train": {"epochs": job.epochs, "seed": 7, "save_steps": None, **train_config},
        },
        show_progress=False,
        overwrite=True,
    )
    return {"folder": str(out), **bertx.evaluate(str(out), job.dev), "seconds": round(time.perf_counter() - started, 1)}


def small_students(job: Job, folders: list[str], kinds: list[str]) -> dict:
    """Each non-transformer student from the best teacher and from the ensemble, with its share of the best
    teacher's score and its model-only speed against that teacher's (batch 32 on the dev inputs, measured
    after training, the students and the teacher in turns over 5 rounds)."""
    rows = {}
    for kind in kinds:
        from_best = student(job, folders[:1], "best" + job.tag, kind)
        from_ensemble = student(job, folders, "ensemble" + job.tag, kind)
        rows[kind] = {
            "student_from_best": round(100 * from_best["accuracy"], 2),
            "student_from_ensemble": round(100 * from_ensemble["accuracy"], 2),
            "gain_pts": round(100 * (from_ensemble["accuracy"] - from_best["accuracy"]), 2),
            "minutes": round((from_best["seconds"] + from_ensemble["seconds"]) / 60, 1),
            "folder": from_ensemble["folder"],
        }
    speeds = model_only_in_rounds({"teacher": folders[0], **{kind: row.pop("folder") for kind, row in rows.items()}}, dev_texts(job.dev))
    for kind, row in rows.items():
        row.update(
            inputs_per_s_batch32=speeds[kind],
            teacher_inputs_per_s_batch32=speeds["teacher"],
            speedup_model_b32=round(speeds[kind] / speeds["teacher"], 2),
        )
    return rows


def dev_texts(dev: str) -> list[str]:
    rows = list(csv.reader(open(dev, encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r[0] for r in rows[1:]]


def row_name_of(name: str, args) -> str:
    return f"{name}+pairs" if args.transfer_pairs and "labelled" not in TASKS[name] else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", default=None)
    parser.add_argument("--work", default=None, help="Where the teachers and students go (default: a folder under /tmp).")
    parser.add_argument("--merge", action="store_true", help="Keep the saved results' rows of the tasks not run now.")
    parser.add_argument("--transfer-pairs", action="store_true", help="Pair tasks: the other pair corpora's pairs as transfer text.")
    parser.add_argument(
        "--small-students",
        default="bilstm-e128-h150",
        help="Non-transformer students of the single-text task (SST-2), from the best teacher and the ensemble; '' for none.",
    )
    parser.add_argument("--skip-bert3", action="store_true", help="Train only the small students (with --merge: keep the saved 3-layer rows).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    data = Path(args.data_dir)
    work = Path(args.work or "/tmp/bertx-distill-many")
    names = (args.tasks or ("rte" if args.quick else "rte,mrpc,sst2")).split(",")
    os.environ.setdefault("BERTX_CACHE", str(work / "cache"))  # an empty teacher store: every teacher labels here
    result = {"benchmark": "distill_many", "quick": args.quick, "seeds": list(SEEDS), "multi_teacher": {}}
    saved = results_of(__file__) / "distill_many.json"
    previous = json.loads(saved.read_text())["multi_teacher"] if saved.is_file() else {}
    if args.merge and saved.is_file():
        run_now = {row_name_of(n, args) for n in names}
        result["multi_teacher"] = {k: v for k, v in previous.items() if k not in run_now}
    for name in names:
        spec = TASKS[name]
        epochs = 1 if args.quick else spec["epochs"]
        dev = str(data / spec["dev"])
        if "labelled" in spec:
            train, rest = sst2_split(data, work, spec["labelled"])
            unlabelled = [rest]
        else:
            train, unlabelled = str(data / spec["train"]), []
            if args.transfer_pairs:
                unlabelled = [transfer_pairs(data, work, spec, name)]
        row_name = row_name_of(name, args)
        tag = row_name[len(name) :].replace("+", "-")  # in the students' folder names
        started = time.perf_counter()
        teachers = [teacher(name, spec, train, dev, seed, epochs, work) for seed in SEEDS]
        metric = "accuracy"
        ranked = sorted(teachers, key=lambda t: -t[metric])
        folders = [t["folder"] for t in ranked]  # the best first: the students copy its layers
        ensemble = ensemble_score(folders, dev)
        job = Job(name, spec, train, dev, unlabelled, work, epochs, tag)
        saved_row = previous.get(row_name, {})
        if args.skip_bert3 and "student_from_best" in saved_row:
            bert3 = {k: saved_row[k] for k in ("student_from_best", "student_from_ensemble")}
            bert3["commit"] = saved_row.get("bert3_commit", saved_row["commit"])  # where the 3-layer rows were measured
        else:
            from_best = student(job, folders[:1], "best" + tag)
            from_ensemble = student(job, folders, "ensemble" + tag)
            bert3 = {"student_from_best": round(100 * from_best[metric], 2), "student_from_ensemble": round(100 * from_ensemble[metric], 2)}
        row = {
            "metric": metric,
            "teachers": [round(100 * t[metric], 2) for t in teachers],
            "ensemble": round(100 * ensemble[metric], 2),
            **bert3,
            "dev_examples": sum(1 for _ in open(dev, encoding="utf-8")) - 1,
            "minutes": round((time.perf_counter() - started) / 60, 1),
            "commit": commit(),
            **({"bert3_commit": bert3["commit"]} if "commit" in bert3 else {}),
        }
        if args.small_students and "labelled" in spec:  # the non-transformer students read single texts
            kept = saved_row.get("small_students", {}) if args.merge else {}  # the other kinds' rows stay, each with its own timing
            row["small_students"] = {**kept, **small_students(job, folders, args.small_students.split(","))}
        if tag == "-pairs":
            row["transfer_pairs"] = sum(1 for _ in open(unlabelled[0], encoding="utf-8"))
        row["gain_pts"] = round(row["student_from_ensemble"] - row["student_from_best"], 2)
        row["kept_of_ensemble_pct"] = round(100 * row["student_from_ensemble"] / row["ensemble"], 2)
        result["multi_teacher"][row_name] = row
        print(f"{row_name}: {row}", file=sys.stderr, flush=True)
    table = result["multi_teacher"]
    plain = [row for key, row in table.items() if "+" not in key]
    # the headline: every task's students learn from text beyond the labelled set where it was measured so
    # (SST-2's unlabelled sentences, the pair tasks' other corpora); the plain rows' mean beside it
    headline = [table.get(f"{key}+pairs", row) for key, row in table.items() if "+" not in key]
    result["multi_teacher_gain_pts"] = round(sum(r["gain_pts"] for r in headline) / len(headline), 2)
    result["multi_teacher_gain_pts_without_transfer_pairs"] = round(sum(r["gain_pts"] for r in plain) / len(plain), 2)
    result["kept_of_ensemble_pct_min"] = min(r["kept_of_ensemble_pct"] for r in headline)
    small = [(kind, one, max(task["teachers"])) for task in headline for kind, one in task.get("small_students", {}).items()]
    fast = [item for item in small if item[1]["speedup_model_b32"] >= 10] or small
    if fast:  # the "students at the next limit": the best non-transformer student at >= 10x its teacher
        kind, one, best = max(fast, key=lambda item: item[1]["student_from_ensemble"] / item[2])
        result["best_student"] = kind
        result["best_student_kept"] = round(100 * one["student_from_ensemble"] / best, 2)
        result["best_student_speedup_model_b32"] = one["speedup_model_b32"]
    result["machine"] = machine()
    save("distill_many" + ("_quick" if args.quick else ""), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
