"""Transferability estimators against hand-computed values and on synthetic features where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bertx.metrics.transferability import _logme_one, hscore, knn, logme, logme_evidence, probe


def test_logme_evidence_is_the_gaussian_density_it_stands_for():
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(12, 4)), rng.normal(size=12)
    for alpha, beta in ((1.0, 1.0), (0.3, 4.0)):
        direct = multivariate_normal(mean=np.zeros(12), cov=f @ f.T / alpha + np.eye(12) / beta).logpdf(y)
        assert logme_evidence(f, y, alpha, beta) == pytest.approx(direct, rel=1e-9)


def test_logme_maximises_the_evidence():
    rng = np.random.default_rng(1)
    f, y = rng.normal(size=(40, 6)), rng.normal(size=40)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    best = _logme_one(u, s**2, y, 40, 6) * 40
    grid = max(logme_evidence(f, y, a, b) for a in np.logspace(-2, 2, 21) for b in np.logspace(-2, 2, 21))
    assert best >= grid - 1e-3  # the fixed point is at least as good as any grid point


def test_informative_features_outrank_noise_for_every_estimator():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, size=150)
    informative = np.eye(3)[y] * 2 + rng.normal(size=(150, 3)) * 0.5
    informative = np.hstack([informative, rng.normal(size=(150, 5))])
    noise = rng.normal(size=(150, 8))
    assert logme(informative, y) > logme(noise, y)
    assert hscore(informative, y) > hscore(noise, y)
    assert knn(informative, y) > knn(noise, y) + 0.3
    assert probe(informative, y) > probe(noise, y) + 0.3


def test_regression_targets_and_scale_invariance():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(120, 5))
    y = f[:, 0] * 2 + rng.normal(size=120) * 0.1
    assert logme(f, y, regression=True) > logme(rng.normal(size=(120, 5)), y, regression=True)
    assert knn(f, y, regression=True) > 0.5 and probe(f, y, regression=True) > 0.9
    labels = (y > 0).astype(int)
    # kNN on cosine similarity and H-score do not change when every feature is scaled by one factor
    assert knn(f * 7.0, labels) == pytest.approx(knn(f, labels))
    assert hscore(f * 7.0, labels) == pytest.approx(hscore(f, labels), rel=1e-6)


def test_hscore_by_its_definition():
    f = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 3.0], [6.0, 3.0]])
    y = np.array([0, 0, 1, 1])
    centred = f - f.mean(0)
    cov = centred.T @ centred / 4
    cov_reg = cov + 1e-3 * np.trace(cov) / 2 * np.eye(2)
    means = np.array([centred[:2].mean(0)] * 2 + [centred[2:].mean(0)] * 2)
    expected = np.trace(np.linalg.solve(cov_reg, means.T @ means / 4))
    assert hscore(f, y) == pytest.approx(expected)
