"""Bootstrap intervals: they hold the score, shrink with more examples, a paired difference of a model with
itself is exactly 0, and the per-sentence entity counts give seqeval's micro scores on any subset."""

from __future__ import annotations

import numpy as np
import pytest

from bertx.metrics.bootstrap import bootstrap_interval, paired_difference
from bertx.metrics.tagging import micro_from_counts, sentence_counts, tagging_metrics


def accuracy_scorer(correct: np.ndarray):
    return lambda idx=None: {"accuracy": float(correct.mean() if idx is None else correct[idx].mean())}


def test_the_interval_holds_the_score_and_narrows_with_more_examples():
    rng = np.random.default_rng(0)
    small, large = rng.random(40) < 0.8, rng.random(4000) < 0.8
    low, high = bootstrap_interval(accuracy_scorer(small), 40, "accuracy")
    assert low <= small.mean() <= high and high - low > 0.15  # 40 examples: about +-12 points
    low_l, high_l = bootstrap_interval(accuracy_scorer(large), 4000, "accuracy")
    assert high_l - low_l < 0.04


def test_a_paired_difference_sees_a_consistent_gain_that_unpaired_intervals_would_call_noise():
    rng = np.random.default_rng(1)
    base = rng.random(200) < 0.7
    better = base.copy()
    better[np.flatnonzero(~base)[:10]] = True  # right on 10 more examples, wrong on none that base got right
    low, high = paired_difference(accuracy_scorer(better), accuracy_scorer(base), 200, "accuracy")
    assert 0 < low <= 0.05 <= high
    b_low, b_high = bootstrap_interval(accuracy_scorer(base), 200, "accuracy")
    assert b_high > better.mean()  # side by side the intervals overlap
    assert paired_difference(accuracy_scorer(base), accuracy_scorer(base), 200, "accuracy") == (0.0, 0.0)


def test_entity_counts_give_seqeval_scores_on_every_subset():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC", "O"], ["O", "O"], ["B-ORG", "I-ORG", "B-PER"]]
    pred = [["B-PER", "I-PER", "O"], ["B-PER", "O"], ["B-LOC", "O"], ["B-ORG", "O", "B-PER"]]
    counts = sentence_counts(gold, pred)
    for subset in ([0, 1, 2, 3], [1, 2], [0, 0, 3], [3]):
        expected = tagging_metrics([gold[i] for i in subset], [pred[i] for i in subset])
        found = micro_from_counts(counts[subset])
        for key in ("f1", "precision", "recall", "accuracy"):
            assert found[key] == pytest.approx(expected[key]), (subset, key)
