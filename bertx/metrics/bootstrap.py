"""How far to trust a score measured on a few hundred examples: percentile bootstrap intervals.

A scorer maps example indices to metrics (`TaskKind.scorer`): the examples are resampled with replacement,
the metric recomputed, and the middle `confidence` of the resampled scores is the interval. Two models scored
on the same examples are compared on the same resamples (a paired bootstrap), so the interval of their
difference is much narrower than the two intervals side by side suggest.
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence

import numpy as np

Scorer = Callable[[Optional[Sequence[int]]], dict]


def _draws(examples: int, rounds: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, examples, size=(rounds, examples))  # (rounds, examples)


def _resampled(scorer: Scorer, draws: np.ndarray, metric: str) -> list[float]:
    with warnings.catch_warnings():  # a resample of a small set may hold one class only: a valid score still
        warnings.simplefilter("ignore")
        return [scorer(idx)[metric] for idx in draws]


def _interval(values: list[float], confidence: float) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(np.asarray(values, dtype=float), [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(
    scorer: Scorer, examples: int, metric: str, rounds: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """(low, high) of `metric` over `rounds` resamples of the `examples` scored examples."""
    return _interval(_resampled(scorer, _draws(examples, rounds, seed), metric), confidence)


def paired_difference(
    scorer_a: Scorer, scorer_b: Scorer, examples: int, metric: str, rounds: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """(low, high) of `metric`(a) - `metric`(b), both models scored on each same resample of the examples."""
    draws = _draws(examples, rounds, seed)
    return _interval(list(np.subtract(_resampled(scorer_a, draws, metric), _resampled(scorer_b, draws, metric))), confidence)
