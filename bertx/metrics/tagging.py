"""Entity-level metrics for BIO tagging (seqeval, strict IOB2) and word accuracy.

Strict mode counts an entity as found only when its type and exact word span match the gold one,
the CoNLL-2003 definition. Gold and predicted sequences are valid BIO here (readers repair gold,
decoding is constrained), so strict and conlleval-style scoring agree.
"""

from __future__ import annotations

from typing import Sequence


def tagging_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Micro precision, recall and F1 over entities, word accuracy, and a per-type table.

    Returns:
        `{"f1", "precision", "recall", "accuracy", "per_type": {TYPE: {"precision", "recall", "f1",
        "support"}}}`, fractions in [0, 1].
    """
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    if [len(s) for s in gold] != [len(s) for s in pred]:
        raise ValueError("gold and predicted sentences differ in length")
    options = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    words = sum(len(s) for s in gold)
    correct = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
    report = classification_report(gold, pred, output_dict=True, **options)
    per_type = {
        name: {"precision": float(row["precision"]), "recall": float(row["recall"]), "f1": float(row["f1-score"]),
               "support": int(row["support"])}
        for name, row in report.items() if not name.endswith(" avg")
    }
    return {
        "f1": float(f1_score(gold, pred, **options)),
        "precision": float(precision_score(gold, pred, **options)),
        "recall": float(recall_score(gold, pred, **options)),
        "accuracy": correct / words if words else 0.0,
        "per_type": per_type,
    }
