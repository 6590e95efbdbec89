"""The sequence task kind: one label (class, score or set of classes) per text or text pair.

Reads TSV/CSV/JSONL columns, puts an HF `*ForSequenceClassification` head on the encoder, and scores
with accuracy / F1 / MCC, Pearson / Spearman or multi-label F1. Two speed-ups apply to these heads only:
the last layer computed for [CLS] alone, and the linear-probe head initialisation.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from bertx.data.examples import Columns
from bertx.data.splits import attach_targets, encode_split
from bertx.errors import DataError
from bertx.metrics.sequence import task_metrics
from bertx.models.batched_outputs import model_outputs
from bertx.models.cls_only import enable_cls_only_last_layer
from bertx.models.heads import build_classifier
from bertx.data.labels import build_label_space
from bertx.data.task_spec import EvalSet, TaskSpec, TrainData
from bertx.models.head_init import probe_init_head


class SequenceTask:
    def __init__(self, spec: TaskSpec):
        self.spec = spec
        self.label_dtype = torch.long if spec.label_kind == "class" else torch.float

    def load_train(self, path: str, data, tokenizer) -> TrainData:
        examples, features, columns = encode_split(
            path,
            self.spec,
            tokenizer,
            data.max_length,
            None,
            text_column=data.text_column,
            text_pair_column=data.text_pair_column,
            label_column=data.label_column,
            label_separator=data.label_separator,
            limit=data.max_train_examples,
        )
        labels = build_label_space(self.spec, [ex.label for ex in examples])
        if self.spec.label_kind == "class" and len(labels) < 2:
            raise DataError(path, None, f"needs at least two classes to learn, found {labels}")
        if self.spec.label_kind == "classes" and not labels:
            raise DataError(path, None, "every example's label list is empty: there is no label to learn")
        attach_targets(features, examples, self.spec, {name: i for i, name in enumerate(labels)}, path)
        info = {"columns": {"text": columns.text, "text_pair": columns.text_pair, "label": columns.label}}
        return TrainData(features, labels, info, {"truncated": features.truncated})

    def load_eval(
        self, path: str, data, tokenizer, label2id: dict, run: dict, limit: Optional[int] = None, articles: Optional[str] = None
    ) -> EvalSet:
        found = run.get("columns") or {}
        columns = None
        if found.get("text"):
            columns = Columns(found["text"], found.get("text_pair"), found.get("label") or data.label_column)
        _, features, _ = encode_split(
            path,
            self.spec,
            tokenizer,
            data.max_length,
            label2id,
            columns=columns,
            text_column=data.text_column,
            text_pair_column=data.text_pair_column,
            label_column=data.label_column,
            label_separator=data.label_separator,
            limit=limit,
        )
        return EvalSet(features, np.asarray(features.labels), counts={"truncated": features.truncated})

    def build_model(self, path: str, labels: list[str], dropout: Optional[float]):
        return build_classifier(path, self.spec, labels, dropout=dropout)

    def prepare_model(self, model, train: TrainData, config, tokenizer, resume: bool) -> dict:
        # An auxiliary MLM loss reads every position of the last layer, so it needs the full layer.
        if config.model.cls_only_last_layer and getattr(config, "aux_mlm", None) is None:
            enable_cls_only_last_layer(model)
        if config.train.head_init == "probe" and not resume:  # a resumed run loads its head from the checkpoint
            return probe_init_head(
                model, train.features, self.spec.label_kind, tokenizer.pad_token_id, config.train.probe_examples, config.train.seed
            )
        return {"head_init": "random"}

    def evaluate(self, model, evalset: EvalSet, pad_id: int, data, device=None, batch_size: int = 128, autocast_dtype=None) -> dict:
        return self.scorer(model, evalset, pad_id, data, device, batch_size, autocast_dtype)(None)

    def scorer(self, model, evalset: EvalSet, pad_id: int, data, device=None, batch_size: int = 128, autocast_dtype=None):
        """The model's outputs on `evalset`, once, as a function of example indices -> metrics (None: all):
        what bootstrap intervals resample."""
        logits = model_outputs(model, evalset.features, pad_id, batch_size, device=device, autocast_dtype=autocast_dtype)
        gold = np.asarray(evalset.gold)
        return lambda idx=None: task_metrics(self.spec.label_kind, logits if idx is None else logits[idx], gold if idx is None else gold[idx])
