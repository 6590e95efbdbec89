"""Predictor: a trained sequence-task folder -> labels and probabilities for raw texts, in batches.

Texts are tokenised in one fast-tokenizer call, sorted by length and batched, so padding is near zero;
results come back in input order. The same object serves `bertx predict` and the Python API; NER and
QA folders have their own predictors (`entities.py`, `answers.py`) on the same loader (`loading.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from bertx.data.examples import Example
from bertx.data.features import Features, tokenize
from bertx.errors import BertxError
from bertx.models.bag_fast import bag_logits
from bertx.models.batched_outputs import model_outputs
from bertx.inference.loading import load_trained
from bertx.tasks import TaskSpec


@dataclass
class Predictor:
    model: torch.nn.Module
    tokenizer: object
    task: TaskSpec
    max_length: int
    run: Optional[dict] = None
    autocast_dtype: Optional[torch.dtype] = None  # torch.bfloat16 for bf16 matrix products

    @classmethod
    def load(cls, model_dir: str | Path, device: str | None = None, max_length: int | None = None, bf16: bool = False) -> "Predictor":
        """Load a folder written by `bertx finetune` (or any HF sequence-classification folder).

        Args:
            model_dir: the model folder.
            device: "cpu", "cuda", ...; default: a GPU if there is one.
            max_length: longest input in tokens; default: the training run's.
            bf16: run matrix products in bf16 (faster on recent CPUs and GPUs; probabilities differ
                from fp32 in the third decimal).
        """
        return cls.from_trained(load_trained(model_dir, device, max_length, bf16))

    @classmethod
    def from_trained(cls, trained) -> "Predictor":
        if trained.task.auto_class != "AutoModelForSequenceClassification":
            raise BertxError(f"a {trained.task.name} model: use EntityPredictor (ner) or AnswerPredictor (qa)")
        return cls(trained.model, trained.tokenizer, trained.task, trained.data.max_length, trained.run, trained.autocast_dtype)

    def reading_options(self) -> dict:
        return reading_options(self.run)

    @property
    def labels(self) -> list[str]:
        return [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Features:
        examples = [Example(t, p, None, i + 1) for i, (t, p) in enumerate(zip(texts, pairs or [None] * len(texts)))]
        return tokenize(self.tokenizer, examples, self.max_length)

    def outputs(self, features: Features, batch_size: int = 128) -> np.ndarray:
        """Raw head outputs (N, num_labels) in input order (a bag-of-embeddings student's from its unpadded ids: `bag_fast`)."""
        fast = bag_logits(self.model, features) if self.autocast_dtype is None else None
        if fast is not None:
            return fast
        return model_outputs(self.model, features, self.tokenizer.pad_token_id, batch_size, autocast_dtype=self.autocast_dtype)

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 128) -> list[dict]:
        """Predict texts (or text pairs).

        Returns:
            One dict per input: `label` (classification), `labels` (multi-label) or `score`
            (regression), and `probs`, the probability of every label.
        """
        if len(texts) == 0:
            return []
        features = self.encode(texts, pairs)
        results = decode(self.task, self.outputs(features, batch_size), self.labels)
        for row in features.truncated_rows:  # said, never silent: the model saw only the first max_length tokens
            results[row]["truncated"] = True
        return results


def reading_options(run: Optional[dict]) -> dict:
    """How a run's training files were read (columns found, label separator), to read others alike."""
    run = run or {}
    found, data = run.get("columns") or {}, run.get("data") or {}
    return {
        "text_column": found.get("text") or data.get("text_column"),
        "text_pair_column": found.get("text_pair") or data.get("text_pair_column"),
        "label_column": found.get("label") or data.get("label_column") or "label",
        "label_separator": data.get("label_separator", ","),
    }


def reads_pairs(task: TaskSpec, run: Optional[dict]) -> Optional[bool]:
    """Whether a model of this task and run reads text pairs (True), single texts (False), or either (None:
    a run that did not record the columns it read)."""
    if task.pair == "required":
        return True
    if task.pair != "optional" or not run or "columns" not in run:
        return None
    return bool(reading_options(run)["text_pair_column"])


def decode(task: TaskSpec, logits: np.ndarray, labels: list[str]) -> list[dict]:
    if task.label_kind == "score":
        return [{"score": float(row[0])} for row in logits]
    if task.label_kind == "classes":
        probs = 1.0 / (1.0 + np.exp(-logits))
        return [{"labels": [labels[j] for j in np.flatnonzero(row > 0.5)], "probs": dict(zip(labels, map(float, row)))} for row in probs]
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = shifted / shifted.sum(axis=1, keepdims=True)
    return [{"label": labels[int(row.argmax())], "probs": dict(zip(labels, map(float, row)))} for row in probs]
