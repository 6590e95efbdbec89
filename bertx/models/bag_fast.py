"""A bag-of-embeddings student's outputs computed straight from the unpadded token ids.

    every input's ids, concatenated, and where each starts -> one fused gather-and-mean (`embedding_bag`)
        -> + its segment embeddings' mean -> the head's two layers -> logits (N, C)

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
    with torch.inference_mode():
        # one fused gather-and-mean over the unpadded ids (no (N, T, E) intermediate)
        mean = torch.nn.functional.embedding_bag(torch.from_numpy(flat), table, torch.from_numpy(starts), mode="mean")  # (N, E)
        if features.token_type_ids:  # the model adds segment 0 or 1 (types clamped at 1) to every token it is given
            segments = model.body.segments.weight  # (2, E)
            types = np.fromiter(chain.from_iterable(features.token_type_ids), dtype=np.int64, count=len(flat))
            second = torch.from_numpy((np.add.reduceat(np.minimum(types, 1), starts) / lengths).astype(np.float32))[:, None]  # (N, 1)
            mean = mean + (1 - second) * segments[0] + second * segments[1]
        return model.classifier(mean).numpy()  # Linear, ReLU, Dropout (off in eval), Linear
