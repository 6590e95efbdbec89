"""Optimiser groups and the warm-up / decay schedule."""

import pytest
import torch
from torch import nn

from bertx.training.optim import build_optimizer, linear_schedule, parameter_groups


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(4, 4)
        self.LayerNorm = nn.LayerNorm(4)
        self.classifier = nn.Linear(4, 2)


def test_no_decay_on_bias_and_layernorm_and_head_lr():
    model = Tiny()
    groups = parameter_groups(model, weight_decay=0.1, lr=1e-4, head_lr=1e-3)
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert by_id[id(model.dense.weight)]["weight_decay"] == 0.1
    assert by_id[id(model.dense.bias)]["weight_decay"] == 0.0
    assert by_id[id(model.LayerNorm.weight)]["weight_decay"] == 0.0
    assert by_id[id(model.classifier.weight)]["lr"] == 1e-3
    assert by_id[id(model.dense.weight)]["lr"] == 1e-4


def test_frozen_parameters_are_left_out():
    model = Tiny()
    model.dense.weight.requires_grad_(False)
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.0)
    params = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert id(model.dense.weight) not in params and len(params) == 5


def test_linear_warmup_then_decay():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_schedule(opt, warmup_steps=4, total_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert lrs[5:] == pytest.approx([7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])


def test_layer_wise_lr_decay_on_a_bert(tiny_bert):
    from bertx.models.heads import build_classifier
    from bertx.tasks import TASKS

    model = build_classifier(tiny_bert, TASKS["classification"], ["a", "b"])  # 2 layers
    groups = parameter_groups(model, weight_decay=0.0, lr=1.0, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["classifier.weight"])] == 1.0
    assert lr_of[id(named["bert.pooler.dense.weight"])] == 1.0
    assert lr_of[id(named["bert.encoder.layer.1.output.dense.weight"])] == 1.0
    assert lr_of[id(named["bert.encoder.layer.0.output.dense.weight"])] == 0.5
    assert lr_of[id(named["bert.embeddings.position_embeddings.weight"])] == 0.25
