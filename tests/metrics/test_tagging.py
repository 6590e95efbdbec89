"""Entity-level metrics against hand-counted values."""

import pytest

from bertx.metrics.tagging import tagging_metrics


def test_strict_entity_precision_recall_f1_and_per_type():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-LOC"]]
    # gold entities: PER(0-2), LOC(3), ORG ; predicted: PER(0-1) wrong span, LOC(3) right, ORG right, LOC(1) spurious
    m = tagging_metrics(gold, pred)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_type"]["PER"]["f1"] == 0.0 and m["per_type"]["ORG"]["f1"] == 1.0
    assert m["per_type"]["LOC"]["support"] == 1
