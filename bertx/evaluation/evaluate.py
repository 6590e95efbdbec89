"""Evaluate a trained model folder on a labelled file: the task's metrics as a dict."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from bertx.inference.loading import load_trained


def evaluate(
    model_dir: str | Path,
    data: str,
    batch_size: int = 64,
    text_column: Optional[str] = None,
    text_pair_column: Optional[str] = None,
    label_column: Optional[str] = None,
    articles: Optional[str] = None,
    limit: Optional[int] = None,
    bf16: bool = False,
) -> dict:
    """Metrics of the model in `model_dir` on the labelled file `data`.

    Files are read with the training run's options (columns found, tag scheme, QA windows; from its
    `bertx_run.yaml`), which explicit arguments override.

    Args:
        articles: QA: START:END range of SQuAD articles; default: the run's dev range when `data`
            is the run's dev file, else all.
        limit: evaluate only the first N examples.
    """
    trained = load_trained(model_dir, bf16=bf16)
    metrics, _ = evaluate_loaded(trained, data, batch_size, text_column, text_pair_column, label_column, articles, limit)
    return metrics


def evaluate_loaded(
    trained,
    data: str,
    batch_size: int = 64,
    text_column: Optional[str] = None,
    text_pair_column: Optional[str] = None,
    label_column: Optional[str] = None,
    articles: Optional[str] = None,
    limit: Optional[int] = None,
):
    """`evaluate` for a model already loaded (`load_trained`); also returns the encoded evaluation set."""
    run = dict(trained.run)
    columns = dict(run.get("columns") or {})
    for key, value in (("text", text_column), ("text_pair", text_pair_column), ("label", label_column)):
        if value:
            columns[key] = value
    run["columns"] = columns
    dev = (run.get("data") or {}).get("dev")
    if articles is None and dev and Path(dev).resolve() == Path(data).resolve():
        articles = trained.data.dev_articles
    evalset = trained.kind.load_eval(data, trained.data, trained.tokenizer, trained.label2id, run, limit, articles)
    metrics = trained.kind.evaluate(
        trained.model, evalset, trained.pad_id, trained.data, batch_size=batch_size, autocast_dtype=trained.autocast_dtype
    )
    metrics["examples"] = evalset.size
    metrics.update(evalset.counts)
    return metrics, evalset
