"""Distillation losses against hand-computed values, and zero when the student matches the teacher."""

import math

import pytest
import torch

from bertx.models.bert_students import default_kept_layers
from bertx.training.distill_losses import attention_loss, hidden_loss, kl_soft, soft_target_loss, value_relation_loss
from bertx.training.distiller import default_layer_map


def test_soft_target_kl_by_hand():
    student, teacher = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])  # teacher p = (0.75, 0.25)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kl_soft(student, teacher, 1.0).item() == pytest.approx(expected, rel=1e-5)
    # T = 2 softens the teacher to softmax(log3/2, 0) and multiplies by T^2 = 4.
    p = torch.softmax(torch.tensor([math.log(3.0) / 2, 0.0]), 0)
    expected_t2 = 4 * float((p * (p / 0.5).log()).sum())
    assert kl_soft(student, teacher, 2.0).item() == pytest.approx(expected_t2, rel=1e-5)


@pytest.mark.parametrize("kind", ["class", "classes", "score", "tags", "span"])
def test_soft_target_loss_is_zero_for_a_perfect_student(kind):
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    if kind == "span":
        out = {"start_logits": torch.randn(2, 4), "end_logits": torch.randn(2, 4)}
    elif kind == "tags":
        out = {"logits": torch.randn(2, 4, 5)}
    else:
        out = {"logits": torch.randn(2, 3 if kind != "score" else 1)}
    assert soft_target_loss(kind, out, out, 2.0, mask).item() == pytest.approx(0.0, abs=1e-5)
    moved = {k: v + torch.randn_like(v) for k, v in out.items()}
    assert soft_target_loss(kind, moved, out, 2.0, mask).item() > 1e-3


def test_padding_never_counts():
    mask = torch.tensor([[1, 1, 0]])
    teacher = torch.zeros(1, 3, 4)
    student = teacher.clone()
    student[0, 2] = 100.0  # garbage at the padded position only
    assert hidden_loss(student, teacher, mask).item() == 0.0
    tags_s, tags_t = torch.zeros(1, 3, 5), torch.zeros(1, 3, 5)
    tags_s[0, 2, 0] = 50.0
    assert kl_soft(tags_s, tags_t, 1.0, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_hidden_loss_projects_a_narrower_student():
    projection = torch.nn.Linear(4, 8, bias=False)
    student, mask = torch.randn(2, 3, 4), torch.ones(2, 3)
    assert hidden_loss(student, projection(student), mask, projection).item() == pytest.approx(0.0, abs=1e-6)


def test_attention_and_value_relation_losses():
    torch.manual_seed(1)
    mask = torch.tensor([[1, 1, 1, 0]])
    attention = torch.softmax(torch.randn(1, 2, 4, 4), -1)
    assert attention_loss(attention, attention, mask).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.softmax(torch.randn(1, 2, 4, 4), -1)
    assert attention_loss(other, attention, mask).item() > 0
    # Different head counts: compared after averaging the heads.
    assert attention_loss(attention.mean(1, keepdim=True), attention, mask).item() == pytest.approx(0.0, abs=1e-6)
    values = torch.randn(1, 4, 8)
    assert value_relation_loss(values, values, mask, heads=2).item() == pytest.approx(0.0, abs=1e-5)
    # Widths may differ: relations are T x T whatever the width (here 4 vs 8, 2 relation heads).
    assert value_relation_loss(torch.randn(1, 4, 4), values, mask, heads=2).item() > 0


def test_layer_choices():
    assert default_kept_layers(6, 3) == [1, 3, 5] and default_kept_layers(6, 2) == [2, 5] and default_kept_layers(12, 6)[-1] == 11
    assert default_layer_map(3, 6, [1, 3, 5]) == [(1, 2), (2, 4), (3, 6)]
    assert default_layer_map(2, 6, None) == [(1, 3), (2, 6)]


def test_cosine_and_patient_losses_by_hand():
    from bertx.training.distill_losses import cosine_hidden_loss, patient_loss

    teacher = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])  # (1, 3, 2): the last position is padding
    student = torch.tensor([[[3.0, 0.0], [2.0, 0.0], [-1.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # Same direction at position 0 (loss 0, whatever the size), orthogonal at 1 (loss 1); the padding never counts.
    assert cosine_hidden_loss(student, teacher, mask).item() == pytest.approx(0.5)
    # [CLS] states only: normalised, they coincide here (3, 0) ~ (1, 0).
    assert patient_loss(student, teacher).item() == pytest.approx(0.0)
    opposite = torch.tensor([[[-2.0, 0.0]]])
    assert patient_loss(opposite, teacher[:, :1]).item() == pytest.approx(4.0)  # |(-1, 0) - (1, 0)|^2


def test_the_temperature_and_hard_weight_move_as_training_goes():
    """A schedule moves linearly from the start value to the end one; without an end, the value stays."""
    from types import SimpleNamespace

    from bertx.config.distill import DistillLossConfig
    from bertx.training.distiller import Distiller

    student = torch.nn.Linear(2, 2)
    student.config = SimpleNamespace(hidden_size=2)
    teacher_config = SimpleNamespace(hidden_size=2, num_attention_heads=1)
    distiller = Distiller(student, teacher_config, DistillLossConfig(temperature=4.0, temperature_end=1.0, hard=0.0, hard_end=1.0), "class", [])
    seen = []
    for fraction in (0.0, 0.5, 1.0):
        distiller.fraction = fraction
        seen.append((distiller.scheduled(4.0, 1.0), distiller.scheduled(0.0, 1.0), distiller.scheduled(0.5, None)))
    assert seen == [(4.0, 0.0, 0.5), (2.5, 0.5, 0.5), (1.0, 1.0, 0.5)]
    assert DistillLossConfig(hard=0.0, hard_end=1.0).uses_hard and not DistillLossConfig(hard=0.0).uses_hard
