"""The teacher's outputs on the training data, computed once, so each distillation step costs only the
student's forward and backward.

Only outputs are cached (class logits: C floats per example; tag logits: T x C; span logits: 2 x T);
hidden states and attentions would take gigabytes, so losses that read them run the teacher live.
"""

from __future__ import annotations

import numpy as np
import torch

from bertx.data.features import Features
from bertx.data.task_spec import label_level
from bertx.models.batched_outputs import model_outputs, token_outputs
from bertx.models.ensemble import mean_in_probability, output_kind
from bertx.training.distiller import output_keys


class TeacherCache:
    def __init__(self, teacher, features: Features, label_kind: str, pad_id: int, device=None, batch_size: int = 128, autocast_dtype=None):
        self.label_kind = label_kind
        self.keys = output_keys(label_kind)
        if label_level(label_kind) == "sequence":
            self.rows = model_outputs(teacher, features, pad_id, batch_size, device, autocast_dtype)  # (N, C)
            self.per_token = False
        else:
            self.outputs = token_outputs(teacher, features, pad_id, self.keys, batch_size, device, autocast_dtype)
            self.per_token = True

    @classmethod
    def from_outputs(cls, label_kind: str, outputs) -> "TeacherCache":
        """A cache of outputs computed elsewhere (on a Ray cluster: `scale/labelling.py`), in the same layout."""
        cache = cls.__new__(cls)
        cache.label_kind, cache.keys = label_kind, output_keys(label_kind)
        cache.per_token = label_level(label_kind) != "sequence"
        if cache.per_token:
            cache.outputs = outputs
        else:
            cache.rows = outputs
        return cache

    def batch(self, indices: list[int], length: int, device) -> dict[str, torch.Tensor]:
        """The cached outputs of these examples, padded to the batch's `length` tokens."""
        if not self.per_token:
            return {"logits": torch.from_numpy(self.rows[indices]).to(device)}
        result = {}
        for key in self.keys:
            rows = [self.outputs[key][i] for i in indices]  # (T_i, ...) each
            padded = np.zeros((len(rows), length, *rows[0].shape[1:]), dtype=np.float32)
            for r, values in enumerate(rows):
                padded[r, : len(values)] = values
            result[key] = torch.from_numpy(padded).to(device)
        return result

    def append(self, other: "TeacherCache") -> None:
        """Add another cache's rows after this one's (extra, unlabelled examples)."""
        if self.per_token:
            for key in self.keys:
                self.outputs[key] = list(self.outputs[key]) + list(other.outputs[key])
            return
        self.rows = np.concatenate([self.rows, other.rows])

    def labels(self) -> np.ndarray:
        """The teacher's own decision per example (sequence kinds): its labels for unlabelled text."""
        if self.label_kind == "class":
            return self.rows.argmax(-1)
        if self.label_kind == "classes":
            return (self.rows > 0).astype(np.float32)
        return self.rows[:, 0]


def ensemble(caches: list[TeacherCache], weights: list[float]) -> TeacherCache:
    """One cache from several teachers' caches of the same examples (weights sum to 1): class and tag
    distributions and span start/end distributions averaged as probabilities, multi-label heads per label,
    regression scores as numbers."""
    first = caches[0]

    def mean(arrays: list[np.ndarray], kind: str) -> np.ndarray:  # the rules `EnsembleModel` scores with
        return mean_in_probability([torch.from_numpy(np.asarray(a)) for a in arrays], weights, kind).float().numpy()

    if not first.per_token:
        return TeacherCache.from_outputs(first.label_kind, mean([c.rows for c in caches], output_kind(first.label_kind)))
    outputs = {}
    for key in first.keys:  # per example: tags over the label axis, span starts and ends over the positions
        outputs[key] = [mean([c.outputs[key][i] for c in caches], "softmax") for i in range(len(first.outputs[key]))]
    return TeacherCache.from_outputs(first.label_kind, outputs)
