"""Reusable training pieces (no loops): optimiser groups, schedules, checkpoints, run logs."""
