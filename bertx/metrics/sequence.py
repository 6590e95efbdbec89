"""Pure metric functions: predictions and gold labels in, a flat dict of named floats out."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score


def classification_metrics(pred: np.ndarray, gold: np.ndarray, num_labels: int) -> dict[str, float]:
    """Accuracy, macro-F1 and MCC; for two classes also the F1 of class id 1 (the positive class).

    All from one confusion matrix (sklearn's definitions, zero division giving 0): a bootstrap recomputes
    them a thousand times, where three sklearn calls cost milliseconds each."""
    pred, gold = np.asarray(pred, dtype=np.int64), np.asarray(gold, dtype=np.int64)
    size = max(num_labels, int(pred.max(initial=0)) + 1, int(gold.max(initial=0)) + 1)
    confusion = np.bincount(gold * size + pred, minlength=size * size).reshape(size, size).astype(np.float64)  # (gold, pred)
    correct, total = np.trace(confusion), confusion.sum()
    true, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    hits = np.diag(confusion)
    denominator = true + predicted  # 2tp + fp + fn
    f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=denominator > 0)
    covariance = correct * total - true @ predicted
    spread = (total**2 - predicted @ predicted) * (total**2 - true @ true)
    metrics = {
        "accuracy": float(correct / total) if total else 0.0,
        "macro_f1": float(f1[:num_labels].mean()),
        "mcc": float(covariance / np.sqrt(spread)) if spread > 0 and len(gold) > 1 else 0.0,
    }
    if num_labels == 2:
        metrics["f1"] = float(f1[1])
    return metrics


def regression_metrics(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation (0 when either side is constant), and mean squared error."""
    constant = np.ptp(pred) == 0 or np.ptp(gold) == 0 or len(gold) < 2
    return {
        "pearson": 0.0 if constant else float(pearsonr(pred, gold)[0]),
        "spearman": 0.0 if constant else float(spearmanr(pred, gold)[0]),
        "mse": float(np.mean((pred - gold) ** 2)),
    }


def multilabel_metrics(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Micro- and macro-F1 over (example, label) decisions, and exact-set accuracy."""
    return {
        "micro_f1": float(f1_score(gold, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "subset_accuracy": float(np.mean(np.all(pred == gold, axis=1))),
    }


def task_metrics(label_kind: str, logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Metrics of a sequence task from raw head outputs.

    Args:
        label_kind: "class", "score" or "classes" (see TaskSpec).
        logits: (N, C) head outputs.
        targets: (N,) class ids, (N,) scores or (N, C) multi-hot.
    """
    if label_kind == "score":
        return regression_metrics(logits[:, 0], targets.astype(np.float64))
    if label_kind == "classes":
        return multilabel_metrics((logits > 0).astype(int), targets.astype(int))
    return classification_metrics(logits.argmax(-1), targets.astype(int), logits.shape[-1])
