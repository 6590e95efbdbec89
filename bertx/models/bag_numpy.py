"""A bag-of-embeddings student's outputs computed in numpy, straight from the unpadded token ids.

    every input's ids, concatenated -> one gather from the embedding table -> a sum per input (reduceat)
        -> / its length, + its segment embeddings' mean -> the head's two layers -> logits (N, C)

The same arithmetic as `SequenceStudent.forward` in eval mode (the tests compare them to 1e-5), without what a
batch for torch costs: a padded tensor built row by row, a mask, and a model call per batch. A bag's own
arithmetic is a few microseconds per input, so that overhead was most of its time end to end (model2vec, the
peer at this corner, also averages unpadded ids).
"""

from __future__ import annotations

from itertools import chain

import numpy as np
import torch


def bag_logits(model, features) -> np.ndarray | None:
    """Logits of a bag student on CPU in fp32 for `features`, or None when `model` is anything else (the caller
    then runs it through torch)."""
    from bertx.models.small_students import SequenceStudent

    if not isinstance(model, SequenceStudent) or model.config.kind != "bag" or model.config.per_token or model.training:
        return None
    table = model.body.embeddings.weight
    if table.device.type != "cpu" or table.dtype != torch.float32 or not features.input_ids:
        return None
    lengths = np.fromiter(map(len, features.input_ids), dtype=np.int64, count=len(features.input_ids))
    if lengths.min() == 0:
        return None
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    flat = np.fromiter(chain.from_iterable(features.input_ids), dtype=np.int64, count=int(lengths.sum()))
    with torch.no_grad():
        weights = table.detach().numpy()
        mean = np.add.reduceat(weights[flat], starts, axis=0) / lengths[:, None]  # (N, E)
        if features.token_type_ids:  # the model adds segment 0 or 1 (types clamped at 1) to every token it is given
            segments = model.body.segments.weight.detach().numpy()  # (2, E)
            types = np.fromiter(chain.from_iterable(features.token_type_ids), dtype=np.int64, count=len(flat))
            second = np.add.reduceat(np.minimum(types, 1), starts) / lengths  # share of second-segment tokens, (N,)
            mean = mean + (1 - second)[:, None] * segments[0] + second[:, None] * segments[1]
        first, last = model.classifier[0], model.classifier[3]  # Linear, ReLU, Dropout, Linear
        hidden = np.maximum(mean @ first.weight.detach().numpy().T + first.bias.detach().numpy(), 0.0)
        return (hidden @ last.weight.detach().numpy().T + last.bias.detach().numpy()).astype(np.float32)
