"""Transferability estimates against real fine-tuning: does `bertx rank` pick what fine-tuning would?

Three studies, each a ranking predicted from frozen features (LogME, H-score, kNN, linear probe; up to
2,000 target training examples) set beside the ranking that fine-tuning measured:

  sources   the 4 x 4 GLUE intermediate-task matrix (RTE, MRPC, STS-B, CoLA): for each target, its three
            other tasks as sources, each source's fine-tuned encoder scored on the target's training
            data, against the measured gain of fine-tuning source-then-target. The full mode trains the
            four source encoders with `configs/intermediate/glue4.yaml` (deterministic, seed 42) and
            compares with the recorded matrix `results/intermediate_glue.json` of the same config;
            `--quick` runs a small matrix of its own.
  domains   the Amazon 4 x 4 zero-shot matrix (`configs/transfer/amazon.yaml`, method plain): for each
            target domain, the three other domains' fine-tuned encoders against their measured
            zero-shot accuracy (recorded `results/transfer_amazon-matrix-plain.json`; `--quick`: none,
            the study is skipped).
  encoders  a pool of six encoders made here: MiniLM; MiniLM after DAPT on books and on kitchen
            reviews; MiniLM's layers 2, 4, 6 and 3, 6 (kept, not distilled); a randomly initialised BERT
            of MiniLM's shape (DAPT: one epoch over the domain's training reviews). Each is fine-tuned on
            SST-2, CoNLL-2003 and Amazon books in this run (the first 1,000 training examples,
            `--encoder-examples`; 2 epochs, lr 1e-4; up to 1,000 dev examples) and ranked for them on the
            same training examples.

For each study and estimator: Kendall's tau per target and its mean, the top-1 regret in points, and
the seconds of the estimates against those of the fine-tuning runs they stand for.

Usage: python -m benchmarks.multitask.transferability [--quick] [--studies sources,domains,encoders] [--max-examples N] [--work DIR]
The last line of stdout is one JSON object; it is also saved in benchmarks/multitask/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import results_of, machine, save

RESULTS = results_of(__file__)

ROOT = Path(__file__).resolve().parents[2]
ESTIMATORS = ("logme", "hscore", "knn", "probe")


def sources_study(args, work: Path) -> dict:
    from bertx.config import IntermediateConfig, load_config
    from bertx.recipes.intermediate import intermediate, predicted_ranking
    from bertx.recipes.sources import train_sources

    overrides = [f"data_dir={args.data_dir}", f"output={work / 'intermediate'}"]
    if args.quick:
        overrides.append("train.epochs=1")
    config = load_config(ROOT / "configs/intermediate/glue4.yaml", overrides, schema=IntermediateConfig)
    if args.quick:  # a small matrix of its own, measured in this run
        for entry in config.tasks:
            entry.data.max_train_examples, entry.data.max_dev_examples = 300, 150
        result = intermediate(config, show_progress=False)
        # every run's own time (a rerun reuses finished runs, so the matrix's wall time can be ~0)
        runs = (work / "intermediate").glob("*/*/metrics.json")
        predicted, finetune_s = result["predicted"], round(sum(json.loads(p.read_text())["wall_s"] for p in runs), 1)
    else:  # the recorded matrix of the same config; the source encoders are trained again (same seed)
        recorded = json.loads((RESULTS / "intermediate_glue.json").read_text())
        out = work / "intermediate"
        out.mkdir(parents=True, exist_ok=True)
        encoders = train_sources(config.tasks, out / "sources", lambda entry, folder: config.task_config(entry, folder))
        targets = [entry for entry in config.tasks if entry.name in recorded["columns"]]
        predicted = predicted_ranking(config, targets, encoders, recorded, out, args.max_examples)
        finetune_s = recorded["wall_s"]
    rank_s = sum(predicted["rank_seconds"].values())
    return {
        "agreement": predicted["agreement"],
        "scores": predicted["scores"],
        "measured": predicted["measured_gains"],
        "rank_s": round(rank_s, 1),
        "finetune_s": finetune_s,
        "speedup": round(finetune_s / rank_s, 1),
        "measured_from": "this run" if args.quick else "results/intermediate_glue.json (same config and seed)",
    }


def domains_study(args, work: Path) -> dict:
    from bertx.config import ModelConfig, TaskEntry, TrainConfig
    from bertx.metrics.transferability import agreement
    from bertx.models.encoder import resolve_model_path
    from bertx.recipes.sources import rank_encoders, train_sources

    recorded = json.loads((results_of("transfer") / "transfer_amazon-matrix-plain.json").read_text())
    domains = recorded["rows"]
    entries = [
        TaskEntry(name=d, kind="classification", train=f"{args.data_dir}/multidomain/{d}/train.tsv", data={"max_length": 128}) for d in domains
    ]
    train = TrainConfig(epochs=1, batch_size=32, lr=1e-4, precision="bf16", save_steps=None)  # configs/transfer/amazon.yaml
    encoders = train_sources(
        entries, work / "amazon-sources", lambda entry, folder: entry.finetune_config(args.data_dir, ModelConfig(), train, folder)
    )
    finetune_s = sum(json.loads((work / "amazon-sources" / d / "metrics.json").read_text())["wall_s"] for d in domains)
    scores = {e: {} for e in ESTIMATORS}
    measured, rank_s = {}, 0.0
    for j, target in enumerate(domains):
        others = {d: encoders[d] for d in domains if d != target}
        report = rank_encoders(
            resolve_model_path(None), others, entries[j].files(args.data_dir)[0][1], "classification", ESTIMATORS, args.max_examples, max_length=128
        )
        rank_s += sum(r["seconds"] for r in report["candidates"])
        for e in ESTIMATORS:
            scores[e][target] = {r["candidate"]: r["scores"][e] for r in report["candidates"] if r["candidate"] in others}
        measured[target] = {d: recorded["values"][domains.index(d)][j] for d in others}
    return {
        "agreement": {e: agreement(scores[e], measured) for e in ESTIMATORS},
        "scores": scores,
        "measured": measured,
        "rank_s": round(rank_s, 1),
        "finetune_s": round(finetune_s, 1),
        "speedup": round(finetune_s / rank_s, 1),
        "measured_from": "results/transfer_amazon-matrix-plain.json (zero-shot accuracy, same config)",
    }


def encoder_pool(args, work: Path) -> dict[str, str]:
    """The six candidate encoders, made once in `work/pool`."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from bertx.config import PretrainConfig
    from bertx.models.encoder import resolve_model_path, save_encoder
    from bertx.models.bert_students import default_kept_layers, student_from_teacher_layers
    from bertx.recipes.pretrain import pretrain

    minilm = resolve_model_path(None)
    pool = {"minilm": minilm}
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    for layers in (3, 2):
        folder = work / "pool" / f"minilm-{layers}layer"
        if not (folder / "config.json").is_file():
            save_encoder(student_from_teacher_layers(AutoModel.from_pretrained(minilm), default_kept_layers(6, layers)), tokenizer, folder)
        pool[folder.name] = str(folder)
    folder = work / "pool" / "random-init"
    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        save_encoder(AutoModel.from_config(AutoConfig.from_pretrained(minilm)), tokenizer, folder)
    pool[folder.name] = str(folder)
    for domain in ("books", "kitchen"):
        folder = work / "pool" / f"minilm-dapt-{domain}"
        if not (folder / "metrics.json").is_file():
            print(f"[pool] DAPT on {domain} reviews ...", file=sys.stderr, flush=True)
            pretrain(
                PretrainConfig.model_validate(
                    {
                        "output": str(folder),
                        "model": {},
                        "data": {"train": [f"{args.data_dir}/multidomain/{domain}/train.tsv"], "max_length": 128, "eval_fraction": 0.05},
                        "objective": {"whole_word_mask": True, "sentence_task": "none"},
                        "train": {
                            "epochs": 1,
                            "batch_size": 32,
                            "lr": 1e-4,
                            "precision": "bf16",
                            "eval_steps": None,
                            "save_steps": None,
                            **({"max_steps": 10} if args.quick else {}),
                        },
                    }
                ),
                overwrite=True,
                show_progress=False,
            )
        pool[folder.name] = str(folder)
    return pool


def encoders_study(args, work: Path) -> dict:
    from bertx.config import DataConfig, FinetuneConfig
    from bertx.evaluation.rank import rank
    from bertx.metrics.transferability import agreement
    from bertx.recipes.finetune import finetune

    pool = encoder_pool(args, work)
    n_train, n_dev = (300, 200) if args.quick else (args.encoder_examples, 1000)
    targets = {  # name: (task, train, dev, max_length)
        "sst2": ("classification", "sst2/train.tsv", "sst2/dev.tsv", 66),
        "conll2003": ("ner", "conll2003/train.txt", "conll2003/dev.txt", 128),
        "books": ("classification", "multidomain/books/train.tsv", "multidomain/books/dev.tsv", 128),
    }
    scores = {e: {} for e in ESTIMATORS}
    measured, rank_s, finetune_s = {}, 0.0, 0.0
    for target, (task, train, dev, max_length) in targets.items():
        measured[target] = {}
        for name, folder in pool.items():
            run = work / "finetune" / f"{target}-{name}"
            if not (run / "metrics.json").is_file():
                print(f"[encoders] fine-tuning {name} on {target} ...", file=sys.stderr, flush=True)
                finetune(
                    FinetuneConfig.model_validate(
                        {
                            "task": task,
                            "output": str(run),
                            "model": {"name_or_path": folder},
                            "data": {
                                "train": f"{args.data_dir}/{train}",
                                "dev": f"{args.data_dir}/{dev}",
                                "max_length": max_length,
                                "max_train_examples": n_train,
                                "max_dev_examples": n_dev,
                            },
                            "train": {"epochs": 1 if args.quick else 2, "batch_size": 32, "lr": 1e-4, "precision": "bf16", "save_steps": None},
                        }
                    ),
                    overwrite=True,
                    show_progress=False,
                )
            metrics = json.loads((run / "metrics.json").read_text())
            measured[target][name] = 100 * metrics[metrics["metric_for_best"]]
            finetune_s += metrics["wall_s"]
        # The estimate reads the same training examples the fine-tuning used (its first n_train).
        report = rank(
            f"{args.data_dir}/{train}",
            list(pool.values()),
            task,
            ESTIMATORS,
            min(n_train, args.max_examples),
            max_length,
            names=list(pool),
            data=DataConfig(max_train_examples=n_train),
        )
        rank_s += sum(r["seconds"] for r in report["candidates"])
        for e in ESTIMATORS:
            scores[e][target] = {r["candidate"]: r["scores"][e] for r in report["candidates"]}
        print(f"[encoders] {target}: measured {measured[target]}", file=sys.stderr, flush=True)
    return {
        "agreement": {e: agreement(scores[e], measured) for e in ESTIMATORS},
        "scores": scores,
        "measured": measured,
        "rank_s": round(rank_s, 1),
        "finetune_s": round(finetune_s, 1),
        "speedup": round(finetune_s / rank_s, 1),
        "pool": list(pool),
        "measured_from": "this run",
    }


def table(result: dict) -> str:
    lines = [
        "| study | " + " | ".join(f"{e} tau" for e in ESTIMATORS) + " | logme regret | rank s | fine-tune s | speed-up |",
        "|---|" + "---:|" * (len(ESTIMATORS) + 4),
    ]
    for study, r in result["studies"].items():
        taus = [r["agreement"][e]["mean_tau"] for e in ESTIMATORS]
        lines.append(
            f"| {study} | "
            + " | ".join("n/a" if t is None else f"{t:.2f}" for t in taus)
            + f" | {r['agreement']['logme']['mean_regret']:.2f} | {r['rank_s']} | {r['finetune_s']} | {r['speedup']}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small budgets (300 examples, 1 epoch): a few minutes; no domains study.")
    parser.add_argument("--studies", default="sources,domains,encoders")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--work", default="runs/bench-transferability")
    parser.add_argument("--name", default=None)
    parser.add_argument("--encoder-examples", type=int, default=1000, help="Training examples per encoder fine-tuning.")
    parser.add_argument(
        "--max-examples", type=int, default=2000, help="Target training examples each estimate reads (fewer: faster; the speed study)."
    )
    args = parser.parse_args()
    if not (Path(args.data_dir) / "glue/rte/train.tsv").is_file():
        raise SystemExit(f"{args.data_dir}/glue not found (pass --data-dir)")
    work = Path(args.work) / ("quick" if args.quick else "full")
    studies = [s for s in args.studies.split(",") if s and not (args.quick and s == "domains")]
    run = {"sources": sources_study, "domains": domains_study, "encoders": encoders_study}
    started = time.perf_counter()
    result = {"benchmark": "transferability", "quick": args.quick, "max_examples": args.max_examples, "studies": {}}
    for study in studies:
        print(f"== {study} ==", file=sys.stderr, flush=True)
        result["studies"][study] = run[study](args, work)
    means = {e: [r["agreement"][e]["mean_tau"] for r in result["studies"].values() if r["agreement"][e]["mean_tau"] is not None] for e in ESTIMATORS}
    result["mean_tau"] = {e: round(sum(v) / len(v), 3) if v else None for e, v in means.items()}
    best = max((e for e in ESTIMATORS if result["mean_tau"][e] is not None), key=lambda e: result["mean_tau"][e])
    sources = result["studies"].get("sources")
    result["target"] = {
        "best_estimator": best,
        "mean_tau": result["mean_tau"][best],
        "tau_met": result["mean_tau"][best] >= 0.6,
        "source_regret": sources["agreement"][best]["mean_regret"] if sources else None,
        "regret_met": bool(sources) and sources["agreement"][best]["mean_regret"] <= 1.0,
        "min_speedup": min(r["speedup"] for r in result["studies"].values()),
    }
    result.update(wall_s=round(time.perf_counter() - started, 1), machine=machine())
    save(args.name or ("transferability_quick" if args.quick else "transferability"), result)
    print(table(result), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
