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
        name: {"precision": float(row["precision"]), "recall": float(row["recall"]), "f1": float(row["f1-score"]), "support": int(row["support"])}
        for name, row in report.items()
        if not name.endswith(" avg")
    }
    return {
        "f1": float(f1_score(gold, pred, **options)),
        "precision": float(precision_score(gold, pred, **options)),
        "recall": float(recall_score(gold, pred, **options)),
        "accuracy": correct / words if words else 0.0,
        "per_type": per_type,
    }


def sentence_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]):
    """Per sentence: (entities found correctly, predicted, gold, words tagged right, words), strict IOB2 as
    `tagging_metrics` counts them: an (S, 5) array whose column sums over any subset give that subset's micro
    scores (`micro_from_counts`) without re-running seqeval, which is what a bootstrap needs."""
    import numpy as np
    from seqeval.scheme import IOB2, Entities

    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    found_gold = Entities(gold, IOB2, suffix=False).entities
    found_pred = Entities(pred, IOB2, suffix=False).entities
    rows = []
    for g_words, p_words, g_ents, p_ents in zip(gold, pred, found_gold, found_pred):
        g_set, p_set = {e.to_tuple()[1:] for e in g_ents}, {e.to_tuple()[1:] for e in p_ents}
        rows.append((len(g_set & p_set), len(p_set), len(g_set), sum(a == b for a, b in zip(g_words, p_words)), len(g_words)))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 5)


def micro_from_counts(counts) -> dict:
    """Micro precision, recall, F1 and word accuracy from summed `sentence_counts` rows (zero division: 0)."""
    tp, predicted, gold, right, words = (int(v) for v in counts.sum(axis=0))
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "accuracy": right / words if words else 0.0}
