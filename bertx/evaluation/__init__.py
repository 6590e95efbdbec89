"""Evaluation: a trained folder on a labelled file, transferability ranking, and the reports (matrix,
distillation, HTML run report). Pure metric functions live in `bertx.metrics`."""
