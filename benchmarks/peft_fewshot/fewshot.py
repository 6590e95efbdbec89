"""Few-shot classification: `bertx fewshot` against the setfit library, plain fine-tuning and a linear probe.

For each dataset, K examples per class and seed, one K-shot training file is drawn (bertx's seeded
sampler) and every method trains on that same file, with the same backbone (the packaged
all-MiniLM-L6-v2), in the same process, and is scored on the full dev set:

  bertx      `bertx fewshot` defaults (10 rounds of pairs, cosine loss, lr 2e-5, batch 16, 1 epoch,
             logistic-regression head on normalised mean-pooled vectors; from 16 examples per class, 2
             end-to-end epochs)
  setfit     setfit's SetFitModel + Trainer with its documented defaults (TrainingArguments(), its
             checkpoints written under the benchmark's temporary folder, not the working directory)
  finetune   `bertx finetune` with its default recipe (3 epochs, lr 1e-4, probe-initialised head)
  probe      logistic regression on the frozen encoder's normalised mean-pooled vectors

Wall time covers training (and, for bertx and setfit, the head fit), not scoring. Every method runs once,
untimed, before the timed runs, so no method's time includes the process's first imports.

Usage: python -m benchmarks.peft_fewshot.fewshot [--quick] [--datasets sst2,books,kitchen] [--shots 8,16,32,64] [--seeds 5]
The last line of stdout is one JSON object; it is also saved in benchmarks/peft_fewshot/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save

DATASETS = {"sst2": ("sst2", 66), "books": ("multidomain/books", 256), "kitchen": ("multidomain/kitchen", 256)}
METHODS = ("bertx", "setfit", "finetune", "probe")


def read(path: Path):
    from bertx.data.examples import read_examples
    from bertx.tasks import get_task

    examples, _ = read_examples(str(path), get_task("classification"))
    return [e.text for e in examples], [str(e.label) for e in examples]


def write_tsv(path: Path, texts: list[str], labels: list[str]) -> None:
    rows = ["sentence\tlabel"] + [f"{t.replace(chr(9), ' ').replace(chr(10), ' ')}\t{y}" for t, y in zip(texts, labels)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def accuracy(predicted, gold) -> float:
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold)


def run_bertx(
    train: Path, dev: Path, out: Path, max_length: int, seed: int, rounds: int | None, end_to_end: float | None = None
) -> tuple[float, float]:
    import bertx

    started = time.perf_counter()
    final = bertx.fewshot(
        {
            "output": str(out),
            "data": {"train": str(train), "max_length": max_length},
            "train": {"seed": seed, "save_steps": None},
            **({"rounds": rounds} if rounds else {}),
            **({} if end_to_end is None else {"end_to_end_epochs": end_to_end}),
        },
        show_progress=False,
    )
    wall = time.perf_counter() - started
    del final
    return bertx.evaluate(out, str(dev))["accuracy"], wall


def run_finetune(train: Path, dev: Path, out: Path, max_length: int, seed: int) -> tuple[float, float]:
    import bertx

    started = time.perf_counter()
    bertx.finetune(
        {
            "task": "classification",
            "output": str(out),
            "data": {"train": str(train), "max_length": max_length},
            "train": {"seed": seed, "save_steps": None},
        },
        show_progress=False,
    )
    wall = time.perf_counter() - started
    return bertx.evaluate(out, str(dev))["accuracy"], wall


def run_setfit(texts, labels, dev_texts, dev_labels, model_path: str, max_length: int, seed: int, out: Path) -> tuple[float, float]:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    names = sorted(set(labels))
    started = time.perf_counter()
    model = SetFitModel.from_pretrained(model_path)
    model.model_body.max_seq_length = max_length
    trainer = Trainer(
        model=model,
        args=TrainingArguments(output_dir=str(out), seed=seed, show_progress_bar=False),
        train_dataset=Dataset.from_dict({"text": texts, "label": [names.index(y) for y in labels]}),
    )
    trainer.train()
    wall = time.perf_counter() - started
    predicted = [names[int(i)] for i in model.predict(dev_texts, batch_size=64)]
    return accuracy(predicted, dev_labels), wall


def run_method(
    method: str, train: Path, data: Path, out: Path, kt, ky, dev_texts, dev_labels, max_length: int, seed: int, model_path: str, args
) -> tuple[float, float]:
    if method == "bertx":
        return run_bertx(train, data / "dev.tsv", out, max_length, seed, args.rounds, args.end_to_end_epochs)
    if method == "finetune":
        return run_finetune(train, data / "dev.tsv", out, max_length, seed)
    if method == "setfit":
        return run_setfit(kt, ky, dev_texts, dev_labels, model_path, max_length, seed, out)
    return run_probe(kt, ky, dev_texts, dev_labels, model_path, max_length, seed)


def run_probe(texts, labels, dev_texts, dev_labels, model_path: str, max_length: int, seed: int) -> tuple[float, float]:
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    encoder = SentenceTransformer(model_path, device="cpu")
    encoder.max_seq_length = max_length
    started = time.perf_counter()
    probe = LogisticRegression(max_iter=2000, random_state=seed).fit(encoder.encode(texts, normalize_embeddings=True), labels)
    wall = time.perf_counter() - started
    return accuracy(probe.predict(encoder.encode(dev_texts, batch_size=64, normalize_embeddings=True)), dev_labels), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="SST-2, K = 8 and 16, 2 seeds.")
    parser.add_argument("--datasets", default=None)
    parser.add_argument("--shots", default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--rounds", type=int, default=None, help="bertx fewshot's pair rounds (default: its own default).")
    parser.add_argument(
        "--end-to-end-epochs",
        type=float,
        default=None,
        help="bertx fewshot's end-to-end stage (default: bertx's own, 2 epochs from 16 examples per class).",
    )
    parser.add_argument("--name", default=None, help="Result file name (default fewshot / fewshot_quick).")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    args = parser.parse_args()
    datasets = (args.datasets or ("sst2" if args.quick else "sst2,books,kitchen")).split(",")
    shots = [int(k) for k in (args.shots or ("8,16" if args.quick else "8,16,32,64")).split(",")]
    seeds = list(range(args.seeds or (2 if args.quick else 5)))
    methods = args.methods.split(",")

    from bertx.data.fewshot import sample_per_class
    from bertx.models.encoder import resolve_model_path

    model_path = resolve_model_path(None)
    work = Path(tempfile.mkdtemp(prefix="fewshot-"))
    cells: dict = {}
    warmed = False
    for name in datasets:
        folder, max_length = DATASETS[name]
        data = Path(args.data_dir) / folder
        texts, labels = read(data / "train.tsv")
        dev_texts, dev_labels = read(data / "dev.tsv")
        names = sorted(set(labels))
        for k in shots:
            for seed in seeds:
                rows = sample_per_class([names.index(y) for y in labels], k, seed, names, str(data / "train.tsv"))
                kt, ky = [texts[i] for i in rows], [labels[i] for i in rows]
                train = work / f"{name}-{k}-{seed}.tsv"
                write_tsv(train, kt, ky)
                for method in methods:
                    if not warmed:  # one untimed run of every method first: imports and file caches, for all alike
                        print(f"warm-up: {method} ...", file=sys.stderr, flush=True)
                        run_method(method, train, data, work / f"warm-{method}", kt, ky, dev_texts, dev_labels, max_length, seed, model_path, args)
                    score, wall = run_method(
                        method, train, data, work / f"{name}-{k}-{seed}-{method}", kt, ky, dev_texts, dev_labels, max_length, seed, model_path, args
                    )
                    cells.setdefault(name, {}).setdefault(str(k), {}).setdefault(method, []).append(
                        {"seed": seed, "accuracy": round(100 * score, 2), "wall_s": round(wall, 1)}
                    )
                    print(f"{name} K={k} seed={seed} {method}: {100 * score:.2f} ({wall:.1f}s)", file=sys.stderr, flush=True)
                warmed = True
    summary: dict = {}
    for name, by_k in cells.items():
        for k, by_method in by_k.items():
            row = {}
            for method, runs in by_method.items():
                scores = [r["accuracy"] for r in runs]
                row[method] = {
                    "mean": round(statistics.mean(scores), 2),
                    "std": round(statistics.stdev(scores), 2) if len(scores) > 1 else 0.0,
                    "wall_s": round(statistics.mean(r["wall_s"] for r in runs), 1),
                }
            if "bertx" in row and "setfit" in row:
                row["bertx_minus_setfit"] = round(row["bertx"]["mean"] - row["setfit"]["mean"], 2)
                row["bertx_wall_ratio"] = round(row["bertx"]["wall_s"] / max(row["setfit"]["wall_s"], 1e-9), 2)
            if "bertx" in row and "finetune" in row:
                row["bertx_minus_finetune"] = round(row["bertx"]["mean"] - row["finetune"]["mean"], 2)
            summary.setdefault(name, {})[k] = row
    result = {
        "benchmark": "fewshot",
        "quick": args.quick,
        "datasets": datasets,
        "shots": shots,
        "seeds": seeds,
        "summary": summary,
        "runs": cells,
        "machine": machine(),
    }
    result["bertx_rounds"] = args.rounds
    result["bertx_end_to_end_epochs"] = args.end_to_end_epochs
    save(args.name or ("fewshot_quick" if args.quick else "fewshot"), result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
