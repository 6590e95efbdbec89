"""Training pieces the recipes share: the run lifecycle (`run.py`), the output folder, checkpoints, optimiser
groups and schedules, precision, run logs and trackers, auxiliary MLM and distillation losses. The loops
themselves are the recipes'."""
