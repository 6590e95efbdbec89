"""The student and its distillation losses in one module, so data parallelism sees every trained weight.

`Distiller.forward(batch, teacher)` runs the student, asks it for hidden states / attentions / values
only when a loss reads them, and returns the weighted sum of the enabled losses and each part. The
teacher stays outside: it is frozen, runs under `no_grad` (or is replaced by cached outputs), and is
never wrapped for data parallelism.

Layer matches are data: `layer_map` lists (student, teacher) pairs of hidden-state indices (0 = the
embedding output, i = the output of layer i), as TextBrewer declares its matches.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from bertx.config import DistillLossConfig
from bertx.errors import BertxError
from bertx.training.distill_losses import attention_loss, cosine_hidden_loss, hidden_loss, patient_loss, soft_target_loss, value_relation_loss

OUTPUT_KEYS = {"span": ("start_logits", "end_logits")}  # other kinds: ("logits",)
TARGET_KEYS = ("labels", "start_positions", "end_positions")


def output_keys(label_kind: str) -> tuple[str, ...]:
    return OUTPUT_KEYS.get(label_kind, ("logits",))


def default_layer_map(student_layers: int, teacher_layers: int, kept: list[int] | None) -> list[tuple[int, int]]:
    """Each student layer to the teacher layer it was copied from, or evenly spread (top to top)."""
    if kept:
        return [(i + 1, t + 1) for i, t in enumerate(kept)]
    return [(i + 1, round((i + 1) * teacher_layers / student_layers)) for i in range(student_layers)]


def check_layer_map(layer_map: list[tuple[int, int]], student_layers: int, teacher_layers: int) -> None:
    for s, t in layer_map:
        if not (1 <= s <= student_layers and 1 <= t <= teacher_layers):
            raise BertxError(
                f"loss.layer_map pair ({s}, {t}) is out of range: student layers are 1..{student_layers}, "
                f"teacher layers 1..{teacher_layers} (0, the embeddings, belongs to loss.embedding)"
            )


@contextmanager
def captured_values(model: nn.Module):
    """Capture the value projections (B, T, H) of the model's last layer during a forward pass."""
    store: dict[str, torch.Tensor] = {}
    layer = model.base_model.encoder.layer[-1]
    handle = layer.attention.self.value.register_forward_hook(lambda module, args, out: store.__setitem__("values", out))
    try:
        yield store
    finally:
        handle.remove()


def model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in TARGET_KEYS}


class Distiller(nn.Module):
    def __init__(self, student: nn.Module, teacher_config, loss: DistillLossConfig, label_kind: str, layer_map: list[tuple[int, int]]):
        super().__init__()
        self.student = student
        self.loss, self.label_kind, self.layer_map = loss, label_kind, layer_map
        s_width, t_width = student.config.hidden_size, teacher_config.hidden_size
        # One projection shared by every matched layer (TinyBERT's W_h); trained, never saved with the student.
        uses_hidden = loss.reads_hidden_states
        self.projection = nn.Linear(s_width, t_width) if uses_hidden and s_width != t_width else None
        self.relation_heads = loss.relation_heads or teacher_config.num_attention_heads
        self.fraction = 0.0  # of training done, set by the recipe before each step: where the schedules stand
        if loss.value_relation and (s_width % self.relation_heads or t_width % self.relation_heads):
            raise BertxError(f"loss.relation_heads {self.relation_heads} must divide both hidden sizes ({s_width}, {t_width})")

    @property
    def config(self):
        """The student's config (layer counts for layer-wise learning rates)."""
        return self.student.config

    def teacher_request(self) -> dict:
        """What the teacher's forward must return for the enabled losses."""
        return {"output_hidden_states": self.loss.reads_hidden_states, "output_attentions": bool(self.loss.attention)}

    def scheduled(self, start: float, end: float | None) -> float:
        """A weight or temperature moved linearly from `start` to `end` as training goes (constant without `end`)."""
        return start if end is None else start + (end - start) * min(1.0, self.fraction)

    def forward(self, batch: dict, teacher: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted loss and its parts for one batch; `teacher` holds the teacher's outputs for it."""
        w = self.loss
        weights = {"hard": self.scheduled(w.hard, w.hard_end)}
        inputs = batch if w.uses_hard else model_inputs(batch)
        request = self.teacher_request()
        if w.value_relation:
            with captured_values(self.student) as store:
                out = self.student(**inputs, **request)
        else:
            out = self.student(**inputs, **request)
        mask = batch["attention_mask"]
        parts: dict[str, torch.Tensor] = {}
        if w.uses_hard:
            parts["hard"] = out.loss
        if w.soft:
            student_out = {key: getattr(out, key) for key in output_keys(self.label_kind)}
            parts["soft"] = soft_target_loss(self.label_kind, student_out, teacher, self.scheduled(w.temperature, w.temperature_end), mask)
        if w.embedding:
            parts["embedding"] = hidden_loss(out.hidden_states[0], teacher["hidden_states"][0], mask, self.projection)
        if w.hidden:
            parts["hidden"] = sum(
                hidden_loss(out.hidden_states[s], teacher["hidden_states"][t], mask, self.projection) for s, t in self.layer_map
            ) / len(self.layer_map)
        if w.cosine:
            parts["cosine"] = sum(
                cosine_hidden_loss(out.hidden_states[s], teacher["hidden_states"][t], mask, self.projection) for s, t in self.layer_map
            ) / len(self.layer_map)
        if w.patient:
            parts["patient"] = sum(patient_loss(out.hidden_states[s], teacher["hidden_states"][t], self.projection) for s, t in self.layer_map) / len(
                self.layer_map
            )
        if w.attention:
            parts["attention"] = sum(attention_loss(out.attentions[s - 1], teacher["attentions"][t - 1], mask) for s, t in self.layer_map) / len(
                self.layer_map
            )
        if w.value_relation:
            parts["value_relation"] = value_relation_loss(store["values"], teacher["values"], mask, self.relation_heads)
        total = sum(weights.get(name, getattr(w, name)) * value for name, value in parts.items())
        return total, parts


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, batch: dict, label_kind: str, request: dict, values: bool) -> dict:
    """The teacher's outputs for a batch: logits, plus the internals the losses read."""
    inputs = model_inputs(batch)
    if values:
        with captured_values(teacher) as store:
            out = teacher(**inputs, **request)
    else:
        out = teacher(**inputs, **request)
    result = {key: getattr(out, key) for key in output_keys(label_kind)}
    if request.get("output_hidden_states"):
        result["hidden_states"] = out.hidden_states
    if request.get("output_attentions"):
        result["attentions"] = out.attentions
    if values:
        result["values"] = store["values"]
    return result
