"""Several models of one task as one model: their outputs averaged where they are probabilities.

Used to score and time an ensemble of teachers as any model is scored (the task kinds' evaluation reads
`logits`, or `start_logits` and `end_logits`); the distillation targets themselves are averaged from stored
outputs by `training/teacher_cache.ensemble`, with these same functions.
"""

from __future__ import annotations

import torch


def mean_in_probability(values: list[torch.Tensor], weights: list[float], kind: str) -> torch.Tensor:
    """Softmax heads: the log of the weighted mean distribution over the last axis; sigmoid heads: the
    log-odds of the mean probability; scores: the weighted mean."""
    if kind == "score":
        return sum(w * v for w, v in zip(weights, values))
    if kind == "sigmoid":
        probs = sum(w * torch.sigmoid(v.float()) for w, v in zip(weights, values)).clamp(1e-7, 1 - 1e-7)
        return torch.log(probs / (1 - probs))
    probs = sum(w * torch.softmax(v.float(), dim=-1) for w, v in zip(weights, values))
    return torch.log(probs.clamp_min(1e-12))


def output_kind(label_kind: str) -> str:
    """How a head's outputs become probabilities: softmax, sigmoid (multi-label), or none (scores)."""
    return {"score": "score", "classes": "sigmoid"}.get(label_kind, "softmax")


class EnsembleModel(torch.nn.Module):
    def __init__(self, members: list[torch.nn.Module], weights: list[float], label_kind: str):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.weights, self.label_kind = weights, label_kind
        self.config = members[0].config  # labels, sizes: the first member's

    def forward(self, **batch):
        outputs = [member(**batch) for member in self.members]
        kind = output_kind(self.label_kind)
        names = ("start_logits", "end_logits") if self.label_kind == "span" else ("logits",)
        combined = {name: mean_in_probability([getattr(o, name) for o in outputs], self.weights, kind) for name in names}
        return type(outputs[0])(**combined)
