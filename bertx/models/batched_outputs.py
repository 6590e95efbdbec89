"""Run a model over token features in length-sorted batches and return outputs in input order.

`model_outputs` returns one row per example (sequence heads); `token_outputs` one array per example
and output name, trimmed to the example's length (token classification, QA start/end logits).
"""

from __future__ import annotations

import numpy as np
import torch

from bertx.data.batching import collate, sorted_batches
from bertx.data.features import Features


@torch.inference_mode()
def model_outputs(
    model, features: Features, pad_id: int, batch_size: int = 128, device=None, autocast_dtype: torch.dtype | None = None
) -> np.ndarray:
    """Head outputs (logits or scores) for every example, shape (N, num_labels).

    `autocast_dtype=torch.bfloat16` runs matrix products in bf16 (fast on CPUs with AVX512-BF16 or
    AMX, and on GPUs); outputs come back as float32.
    """
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    out: np.ndarray | None = None
    for indices in sorted_batches(features.lengths, batch_size):
        batch = {k: v.to(device) for k, v in collate(features, indices, pad_id).items()}
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(**batch).logits.float().cpu().numpy()  # (B, C)
        if out is None:
            out = np.empty((len(features.lengths), logits.shape[-1]), dtype=np.float32)
        out[indices] = logits
    model.train(was_training)
    return out if out is not None else np.zeros((0, 1), dtype=np.float32)


@torch.inference_mode()
def token_outputs(
    model,
    features: Features,
    pad_id: int,
    keys: tuple[str, ...] = ("logits",),
    batch_size: int = 64,
    device=None,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, list[np.ndarray]]:
    """Per-token head outputs: for each name in `keys`, a list with one (T_i, ...) array per example."""
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    out: dict[str, list] = {key: [None] * len(features.lengths) for key in keys}
    for indices in sorted_batches(features.lengths, batch_size):
        batch = {k: v.to(device) for k, v in collate(features, indices, pad_id).items()}
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            result = model(**batch)
        for key in keys:
            values = getattr(result, key).float().cpu().numpy()  # (B, T, ...)
            for row, i in enumerate(indices):
                out[key][i] = values[row, : features.lengths[i]]
    model.train(was_training)
    return out
