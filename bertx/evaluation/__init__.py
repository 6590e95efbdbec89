"""Evaluation: pure metric functions and model-on-a-split runs."""
