"""Metrics checked against values computed by hand."""

import math

import numpy as np
import pytest

from bertx.metrics.sequence import classification_metrics, multilabel_metrics, regression_metrics, task_metrics


def test_binary_classification_by_hand():
    gold = np.array([1, 1, 1, 0, 0, 0])
    pred = np.array([1, 1, 0, 0, 0, 1])
    m = classification_metrics(pred, gold, 2)
    # tp=2 fp=1 fn=1 tn=2
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["mcc"] == pytest.approx((2 * 2 - 1 * 1) / math.sqrt(3 * 3 * 3 * 3))


def test_multiclass_has_no_binary_f1():
    m = classification_metrics(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]), 3)
    assert "f1" not in m and m["accuracy"] == 0.75
    # per-class F1: 1, 2/3, 2/3
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_regression_by_hand():
    m = regression_metrics(np.array([1.0, 2.0, 3.0, 5.0]), np.array([2.0, 4.0, 6.0, 8.0]))
    assert m["spearman"] == pytest.approx(1.0)
    x, y = np.array([1, 2, 3, 5.0]), np.array([2, 4, 6, 8.0])
    r = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert m["pearson"] == pytest.approx(r)
    assert m["mse"] == pytest.approx((1 + 4 + 9 + 9) / 4)
    assert regression_metrics(np.ones(3), np.array([1.0, 2, 3]))["pearson"] == 0.0  # constant predictions


def test_multilabel_by_hand():
    gold = np.array([[1, 0, 1], [0, 1, 0]])
    pred = np.array([[1, 0, 0], [0, 1, 1]])
    m = multilabel_metrics(pred, gold)
    # micro: tp=2 fp=1 fn=1 -> 2/3; per label F1: 1, 1, 0
    assert m["micro_f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["subset_accuracy"] == 0.0


def test_task_metrics_dispatch():
    logits = np.array([[2.0, -1.0], [0.0, 3.0]])
    assert task_metrics("class", logits, np.array([0, 1]))["accuracy"] == 1.0
    assert task_metrics("classes", logits, np.array([[1, 0], [0, 1]]))["micro_f1"] == 1.0
    assert task_metrics("score", np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 2, 4]))["spearman"] == pytest.approx(1)


@pytest.mark.parametrize("classes, examples", [(2, 2), (2, 300), (3, 7), (5, 50)])
def test_classification_metrics_agree_with_sklearn(classes, examples):
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    rng = np.random.default_rng(classes * examples)
    gold, pred = rng.integers(0, classes, examples), rng.integers(0, classes, examples)
    pred[: examples // 3] = 0  # some classes under-predicted, as a weak model does
    found = classification_metrics(pred, gold, classes)
    assert found["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert found["macro_f1"] == pytest.approx(f1_score(gold, pred, labels=list(range(classes)), average="macro", zero_division=0))
    assert found["mcc"] == pytest.approx(matthews_corrcoef(gold, pred))
    if classes == 2:
        assert found["f1"] == pytest.approx(f1_score(gold, pred, pos_label=1, average="binary", zero_division=0))
