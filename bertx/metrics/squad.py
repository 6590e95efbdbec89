"""SQuAD exact match and F1, with the official answer normalisation.

Normalisation: lower-case, drop ASCII punctuation, drop the articles "a", "an", "the" as words, and
collapse whitespace. Exact match: the normalised prediction equals a normalised gold answer. F1: the
harmonic mean of precision and recall over the bag of normalised words. Each question takes its best
score over its gold answers; the dataset score is the mean over questions (fractions in [0, 1]; the
SQuAD leaderboard prints them x 100).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:  # an answer that normalises to nothing matches only nothing
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean exact match and F1 over questions, each against the best of its gold answers."""
    if len(predictions) != len(golds):
        raise ValueError("one prediction per question is needed")
    if not predictions:
        return {"exact_match": 0.0, "f1": 0.0}
    em = sum(max(exact_match(p, g) for g in gs) for p, gs in zip(predictions, golds))
    f = sum(max(f1(p, g) for g in gs) for p, gs in zip(predictions, golds))
    return {"exact_match": em / len(predictions), "f1": f / len(predictions)}
