"""AdamW with weight-decay groups and a linear warm-up / linear decay schedule."""

from __future__ import annotations

import torch
from torch import nn

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias", "norm.weight")


def parameter_groups(model: nn.Module, weight_decay: float, lr: float, head_lr: float | None, head_prefixes=("classifier", "pre_classifier", "score")):
    """Split trainable parameters into (decay, no decay) x (encoder, head) groups.

    Biases and LayerNorm weights get no weight decay: decaying them toward zero only hurts.
    The new head may use its own learning rate (it starts from random weights).
    """
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = not any(key in name for key in NO_DECAY) and param.ndim > 1
        head = name.split(".")[0] in head_prefixes
        groups.setdefault((decay, head), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decay else 0.0, "lr": (head_lr or lr) if head else lr}
        for (decay, head), params in sorted(groups.items())
    ]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, head_lr: float | None = None) -> torch.optim.Optimizer:
    groups = parameter_groups(model, weight_decay, lr, head_lr)
    on_cpu = next(model.parameters()).device.type == "cpu"
    # The fused kernel updates all tensors in one pass (CPU and CUDA); fall back where unsupported.
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, foreach=not on_cpu)


def linear_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up to each group's lr, then linear decay to zero at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
