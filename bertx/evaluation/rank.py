"""`bertx rank`: score candidate encoders for a target task from their frozen features, in seconds.

    training file -> (per candidate) its tokenizer reads the file -> frozen encoder -> mean-pooled
    sentence vectors of up to N examples (drawn with the seed) -> every estimator
    (`bertx/metrics/transferability.py`) -> a table ranked by the first estimator -> rank.json, .md, .png

A candidate is any local encoder folder: a pretrained encoder, a DAPT output, a fine-tuned run (its head
is ignored), a distilled BERT student, a multi-task export. Sequence tasks (classification, pairs,
regression) get one mean-pooled row per example; NER gets one row per word, the last layer at the
word's first piece (what a token classifier reads), up to `MAX_WORDS` words. Multi-label and QA are
not ranked.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch

from bertx.config import DataConfig
from bertx.data.batching import collate, sorted_batches
from bertx.data.word_windows import IGNORE
from bertx.errors import BertxError
from bertx.metrics.transferability import ESTIMATORS, estimate
from bertx.models.encoder import check_encoder_folder, load_tokenizer, resolve_model_path, without_load_report
from bertx.models.sentence_classifier import mean_pool
from bertx.tasks import get_kind, get_task
from bertx import runfolder
from bertx.training.accelerator import resolve_precision

RANKABLE = ("classification", "pair-classification", "regression", "ner")
MAX_WORDS = 20_000  # NER rows: enough for stable estimates, small enough for kNN's n x n similarities


@torch.no_grad()
def frozen_features(folder: str, features, rows: list[int], pad_id: int, per_word: bool, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(features, targets) of the chosen examples: one mean-pooled row per example, or (per_word) one row
    per labelled first piece, in the order of `rows`."""
    from transformers import AutoModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with without_load_report():  # a task folder's head, or a missing pooler, is not read here
        encoder = AutoModel.from_pretrained(folder).eval().to(device)
    # bf16 where the hardware runs it fast (what training would use): about 1.5x faster feature passes on
    # an AVX512-BF16 CPU; the estimators themselves run in float64 on the pooled vectors.
    bf16 = resolve_precision("auto") == "bf16"
    lengths = [features.lengths[i] for i in rows]
    parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for batch_rows in sorted_batches(lengths, batch_size):
        batch = collate(features, [rows[i] for i in batch_rows], pad_id, label_dtype=torch.long)
        inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            hidden = encoder(**inputs).last_hidden_state.float().cpu()
        if per_word:
            for j, i in enumerate(batch_rows):
                keep = batch["labels"][j] != IGNORE  # first pieces of the words this window owns
                parts[i] = (hidden[j][keep].float().numpy(), batch["labels"][j][keep].numpy())
        else:
            pooled = mean_pool(hidden, batch["attention_mask"]).float().numpy()
            for j, i in enumerate(batch_rows):
                parts[i] = (pooled[j : j + 1], np.asarray([features.labels[rows[i]]]))
    ordered = [parts[i] for i in range(len(rows))]
    return np.concatenate([f for f, _ in ordered]), np.concatenate([y for _, y in ordered])


def rank(
    train: str,
    candidates: list[str],
    task: str = "classification",
    estimators: tuple[str, ...] = ESTIMATORS,
    max_examples: int = 2000,
    max_length: int = 128,
    seed: int = 42,
    output: str | None = None,
    overwrite: bool = False,
    log=lambda line: None,
    names: list[str] | None = None,
    data: DataConfig | None = None,
    reads: dict | None = None,
) -> dict:
    """Score each candidate encoder for the task in `train`; write rank.json/.md/.png to `output` when given.

    `names` label the candidates in the report (default: their folders); `data` gives the reading options
    (columns, max_length) when the file needs them; `reads`, a dict the caller keeps, holds the tokenised
    file across calls (a matrix scoring one model at a time on the same target files).
    """
    if not candidates:
        raise BertxError("rank: no candidate encoders; name at least one model folder")
    if task not in RANKABLE:
        raise BertxError(f"rank: --task {task} is not supported yet; rank sequence tasks ({', '.join(RANKABLE)})")
    unknown = [name for name in estimators if name not in ESTIMATORS]
    if unknown:
        raise BertxError(f"rank: unknown estimator {unknown[0]!r}; choose from {', '.join(ESTIMATORS)}")
    if not Path(train).is_file():
        raise BertxError(f"{train}: file not found")
    names = names or list(candidates)
    candidates = [resolve_model_path(c) for c in candidates]  # a hub id in the local HF cache works too
    for folder in candidates:
        check_encoder_folder(folder)
    out = Path(output) if output else None
    if out:
        runfolder.check_output_folder(out, "rank", overwrite, [train, *candidates])
    spec = get_task(task)
    kind = get_kind(spec)
    regression = spec.label_kind == "score"
    per_word = spec.label_kind == "tags"
    data_config = (data or DataConfig()).model_copy(update={"max_length": max_length, "label_all_subtokens": False})
    results = []
    read = {} if reads is None else reads  # the file tokenised once per distinct tokenizer (candidates often share one)
    for name, folder in zip(names, candidates):
        started = time.perf_counter()
        tokenizer = load_tokenizer(folder)
        key = (train, max_length, tokenizer.backend_tokenizer.to_str() if hasattr(tokenizer, "backend_tokenizer") else folder)
        if key not in read:
            read[key] = kind.load_train(train, data_config, tokenizer)  # refuses a file with a single class
        features = read[key].features
        rows = list(range(len(features.input_ids)))
        random.Random(seed).shuffle(rows)
        rows = sorted(rows[:max_examples])
        if spec.label_kind == "class":
            _check_classes(train, [features.labels[r] for r in rows], read[key].labels)
        f, y = frozen_features(folder, features, rows, tokenizer.pad_token_id, per_word)
        if len(f) > MAX_WORDS:
            keep = np.sort(np.random.default_rng(seed).choice(len(f), MAX_WORDS, replace=False))
            f, y = f[keep], y[keep]
        featured = time.perf_counter()
        scores = {e: estimate(e, f, y, regression, seed) for e in estimators}
        results.append(
            {
                "candidate": name,
                "folder": folder,
                "scores": scores,
                "examples": len(rows),
                "rows": len(f),
                "features_s": round(featured - started, 2),
                "estimators_s": round(time.perf_counter() - featured, 2),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
        log(f"{name}: " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items() if v is not None) + f"  ({results[-1]['seconds']:.1f}s)")
    first = estimators[0]
    results.sort(key=lambda r: -(r["scores"][first] if r["scores"][first] is not None else -np.inf))
    for place, result in enumerate(results, 1):
        result["rank"] = place
    report = {
        "train": train,
        "task": task,
        "estimators": list(estimators),
        "ranked_by": first,
        "candidates": results,
        "feature_precision": resolve_precision("auto"),
    }
    if out:
        write_report(report, out, overwrite, [train, *candidates])
    return report


def _check_classes(train: str, labels: list, names: list[str]) -> None:
    """Every class needs two examples among those drawn: the linear probe holds a stratified part out."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    for value, count in zip(values, counts):
        if count < 2:
            name = names[int(value)] if int(value) < len(names) else value
            raise BertxError(
                f"{train}: class {name!r} has {count} example among those drawn; rank needs at least 2 per class "
                "(raise --max-examples or add examples)"
            )


def markdown(report: dict) -> str:
    names = report["estimators"]
    lines = [f"| rank | candidate | {' | '.join(names)} | seconds |", "|---|---|" + "---:|" * (len(names) + 1)]
    for r in report["candidates"]:
        cells = " | ".join("n/a" if r["scores"][n] is None else f"{r['scores'][n]:.4f}" for n in names)
        lines.append(f"| {r['rank']} | {r['candidate']} | {cells} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def write_report(report: dict, out: Path, overwrite: bool = False, reads: list = ()) -> None:
    """rank.json, rank.md and rank.png, published together into `out` (the one folder writer)."""
    with runfolder.output_folder(out, "rank", overwrite, reads) as folder:
        _write_report_files(report, folder)


def _write_report_files(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runfolder.write_json(out / "rank.json", report)
    runfolder.write_text(
        out / "rank.md", f"Candidates for `{report['train']}` ({report['task']}), ranked by {report['ranked_by']}.\n\n" + markdown(report) + "\n"
    )
    names = report["estimators"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 0.5 * len(report["candidates"]) + 1.5), squeeze=False)
    labels = [Path(r["candidate"]).name or r["candidate"] for r in report["candidates"]]
    for axis, name in zip(axes[0], names):
        values = [r["scores"][name] if r["scores"][name] is not None else 0.0 for r in report["candidates"]]
        axis.barh(labels[::-1], values[::-1])
        axis.set_title(name)
    fig.tight_layout()
    fig.savefig(out / "rank.png", dpi=110)
    plt.close(fig)
