"""Evaluation: a trained folder on a labelled file, its single-input latency, transferability ranking, and
the reports (matrix, distillation, HTML run report, plan report). Pure metric functions live in `bertx.metrics`."""
