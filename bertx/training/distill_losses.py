"""Knowledge-distillation losses: pure functions of student and teacher outputs.

    soft_target_loss   KL(teacher || student) of temperature-softened distributions, x T^2 (Hinton et
                       al.), over classes (sequence), over tags per token (NER) or over positions
                       (QA start / end); MSE for regression; binary KL per label for multi-label
    hidden_loss        MSE between mapped hidden states (through a learned projection when widths differ)
    attention_loss     KL between mapped layers' attention distributions, per head and query
    value_relation_loss  MiniLM: KL between the softmax(V V^T / sqrt(d)) relations of the last layers

Masks keep padding out of every mean: `mask` is (B, T) with 1 on real tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B, T, ...) values over positions where mask (B, T) is 1 (over all positions without a mask)."""
    if mask is None:
        return values.mean()
    weight = mask.to(values.dtype)
    while weight.dim() < values.dim():
        weight = weight.unsqueeze(-1)
    weight = weight.expand_as(values)
    return (values * weight).sum() / weight.sum().clamp(min=1)


def kl_soft(student: torch.Tensor, teacher: torch.Tensor, temperature: float, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """T^2 x KL(softmax(teacher/T) || softmax(student/T)) along `dim`, averaged over the other positions.

    The T^2 keeps the gradient's size independent of T (Hinton et al., 2015).
    """
    log_p_student = F.log_softmax(student.float() / temperature, dim=dim)
    log_p_teacher = F.log_softmax(teacher.float() / temperature, dim=dim)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=dim)  # summed over the distribution
    return temperature**2 * _masked_mean(kl, mask)


def soft_target_loss(kind: str, student: dict, teacher: dict, temperature: float, mask: torch.Tensor | None) -> torch.Tensor:
    """The logit-distillation loss of one task kind.

    Args:
        kind: the task's label kind: "class", "score", "classes", "tags" or "span".
        student, teacher: model outputs ("logits", or "start_logits"/"end_logits" for spans).
        temperature: softening temperature (classes, tags, spans).
        mask: (B, T) real-token mask (tags and spans).
    """
    if kind == "score":  # regression: match the teacher's prediction
        return F.mse_loss(student["logits"].float(), teacher["logits"].float())
    if kind == "classes":  # independent labels: binary KL per label on softened sigmoids
        s, t = student["logits"].float() / temperature, teacher["logits"].float() / temperature
        target = torch.sigmoid(t)
        return temperature**2 * F.binary_cross_entropy_with_logits(s, target) - temperature**2 * F.binary_cross_entropy_with_logits(t, target)
    if kind == "tags":  # a distribution over tags at every real token
        return kl_soft(student["logits"], teacher["logits"], temperature, mask)
    if kind == "span":  # distributions over positions; padding gets no probability
        losses = []
        for key in ("start_logits", "end_logits"):
            s, t = student[key].float(), teacher[key].float()
            if mask is not None:
                s, t = s.masked_fill(mask == 0, -1e4), t.masked_fill(mask == 0, -1e4)
            losses.append(kl_soft(s, t, temperature))
        return sum(losses) / 2
    return kl_soft(student["logits"], teacher["logits"], temperature)


def hidden_loss(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor, projection: torch.nn.Module | None = None
) -> torch.Tensor:
    """MSE between (B, T, Hs) student and (B, T, Ht) teacher hidden states over real tokens."""
    s = projection(student_hidden) if projection is not None else student_hidden
    return _masked_mean((s.float() - teacher_hidden.float()) ** 2, mask)


def attention_loss(student_attention: torch.Tensor, teacher_attention: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of (B, nh, T, T) attention distributions, per head and real query.

    With different head counts, each side is averaged over its heads first.
    """
    s, t = student_attention.float(), teacher_attention.float()
    if s.shape[1] != t.shape[1]:
        s, t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    eps = 1e-8
    kl = (t * ((t + eps).log() - (s + eps).log())).sum(-1)  # (B, nh, T): over keys
    return _masked_mean(kl.transpose(1, 2), mask)  # mean over heads and real queries


def value_relation(values: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, T, H) value vectors -> (B, heads, T, T) relation scores V V^T / sqrt(d) per relation head
    (the logits of MiniLM's value relation; the loss takes their softmax over keys)."""
    B, T, H = values.shape
    d = H // heads
    v = values.float().view(B, T, heads, d).transpose(1, 2)  # (B, heads, T, d)
    return v @ v.transpose(-1, -2) / d**0.5  # (B, heads, T, T)


def value_relation_loss(student_values: torch.Tensor, teacher_values: torch.Tensor, mask: torch.Tensor, heads: int) -> torch.Tensor:
    """MiniLM's value-relation transfer: KL between teacher and student V-V relations (same `heads` on both
    sides, so different widths are fine)."""
    keys = mask[:, None, None, :] == 0  # (B, 1, 1, T): padded keys get no weight
    s = value_relation(student_values, heads).masked_fill(keys, -1e4)
    t = value_relation(teacher_values, heads).masked_fill(keys, -1e4)
    log_s, log_t = F.log_softmax(s, -1), F.log_softmax(t, -1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # (B, heads, T)
    return _masked_mean(kl.transpose(1, 2), mask)


def cosine_hidden_loss(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor, projection: torch.nn.Module | None = None
) -> torch.Tensor:
    """1 - cosine between (B, T, Hs) student and (B, T, Ht) teacher hidden states, over real tokens: the
    direction of each state and not its size (DistilBERT's cosine embedding loss)."""
    s = projection(student_hidden) if projection is not None else student_hidden
    return _masked_mean(1 - F.cosine_similarity(s.float(), teacher_hidden.float(), dim=-1), mask)


def patient_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, projection: torch.nn.Module | None = None) -> torch.Tensor:
    """Patient KD (Sun et al., 2019): squared distance between the L2-normalised [CLS] states of a student and a
    teacher layer, summed over the width and averaged over the batch."""
    s = projection(student_hidden[:, 0]) if projection is not None else student_hidden[:, 0]
    s, t = F.normalize(s.float(), dim=-1), F.normalize(teacher_hidden[:, 0].float(), dim=-1)
    return ((s - t) ** 2).sum(-1).mean()
