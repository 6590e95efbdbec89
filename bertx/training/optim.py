"""AdamW with weight-decay groups and a linear warm-up / linear decay schedule."""

from __future__ import annotations

import re

import torch
from torch import nn

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias", "norm.weight")
LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")


def layer_depth(name: str, num_layers: int) -> int:
    """0 for embeddings, i + 1 for transformer layer i, num_layers + 1 for pooler and head."""
    match = LAYER_INDEX.search(name)
    if match:
        return int(match.group(1)) + 1
    return 0 if "embeddings" in name else num_layers + 1


def parameter_groups(
    model: nn.Module,
    weight_decay: float,
    lr: float,
    head_lr: float | None = None,
    layer_decay: float = 1.0,
    head_prefixes=("classifier", "pre_classifier", "score"),
    lr_scales: dict[str, float] | None = None,
):
    """Split trainable parameters into groups by (weight decay or not, learning rate).

    Biases and LayerNorm weights get no weight decay: decaying them toward zero only hurts.
    The new head may use its own learning rate (it starts from random weights). With
    `layer_decay < 1`, layer-wise learning-rate decay: the top layer trains at `lr`, each layer below
    at `layer_decay` times the one above, so general low-level features move least.
    """
    num_layers = getattr(getattr(model, "config", None), "num_hidden_layers", 0) or 0
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = not any(key in name for key in NO_DECAY) and param.ndim > 1
        if any(name.startswith(prefix + ".") for prefix in head_prefixes):
            group_lr = head_lr or lr
        else:
            group_lr = lr * layer_decay ** max(0, num_layers - layer_depth(name, num_layers))
        group_lr *= next((scale for key, scale in (lr_scales or {}).items() if key in name), 1.0)
        groups.setdefault((decay, group_lr), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decay else 0.0, "lr": group_lr} for (decay, group_lr), params in sorted(groups.items())
    ]


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    head_lr: float | None = None,
    layer_decay: float = 1.0,
    head_prefixes=("classifier", "pre_classifier", "score"),
    lr_scales: dict[str, float] | None = None,
) -> torch.optim.Optimizer:
    groups = parameter_groups(model, weight_decay, lr, head_lr, layer_decay, head_prefixes, lr_scales)
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


def optimizer_step(accelerator, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, max_grad_norm: float | None) -> None:
    """End one step of any training loop: clip the accumulated gradients, update, advance the schedule, clear."""
    if max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
