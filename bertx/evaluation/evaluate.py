"""Evaluate a trained model folder on a labelled file: the task's metrics as a dict."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from bertx.data.splits import encode_split
from bertx.evaluation.metrics import task_metrics
from bertx.inference.predictor import Predictor


def evaluate(model_dir: str | Path, data: str, batch_size: int = 128, text_column: Optional[str] = None,
             text_pair_column: Optional[str] = None, label_column: Optional[str] = None) -> dict[str, float]:
    """Metrics of the model in `model_dir` on the labelled file `data`.

    Columns default to those the model was trained on (from its `bertx_run.yaml`), then to the
    conventional names.
    """
    predictor = Predictor.load(model_dir)
    options = predictor.reading_options()
    options.update({k: v for k, v in [("text_column", text_column), ("text_pair_column", text_pair_column),
                                      ("label_column", label_column)] if v})
    _, features, _ = encode_split(
        data, predictor.task, predictor.tokenizer, predictor.max_length, predictor.model.config.label2id, **options
    )
    logits = predictor.outputs(features, batch_size)
    metrics = task_metrics(predictor.task.label_kind, logits, np.asarray(features.labels))
    metrics["examples"] = len(features.lengths)
    metrics["truncated"] = features.truncated
    return metrics
