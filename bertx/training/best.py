"""Keeping the best evaluation of a run: the one rule every training loop shares.

A run's progress record (fine-tuning, multi-task, distillation) carries `best_metric`, `best_step`,
`best_metrics`, `evals_since_best`, `last_eval_step` and `stopped_early`; `record_evaluation` updates
them from one evaluation, so "best" and "early stopping" mean the same thing in every recipe.
"""

from __future__ import annotations


def record_evaluation(progress, value: float, metrics: dict, patience: int | None) -> bool:
    """Update `progress` with an evaluation scoring `value` (higher is better); return whether it is the best so far.

    Args:
        progress: the run's progress record (a dataclass with the fields above and `step`).
        value: the number that ranks evaluations (a main metric, or a mean of them).
        metrics: everything the evaluation measured, kept when it is the best.
        patience: stop after this many evaluations without improvement (None: never).
    """
    progress.last_eval_step = progress.step
    improved = progress.best_metric is None or value > progress.best_metric
    if improved:
        progress.best_metric, progress.best_step, progress.evals_since_best = value, progress.step, 0
        progress.best_metrics = metrics
    else:
        progress.evals_since_best += 1
    if patience and progress.evals_since_best >= patience:
        progress.stopped_early = True
    return improved
