"""Linear-probe head initialisation ("LP-FT": fit the head on frozen features, then fine-tune all).

Why: a freshly initialised head sends noise into the encoder for the first hundreds of steps, which
is most of a short run on little data. Fitting the head first, as a logistic (or ridge) regression on
the frozen encoder's features of a few thousand training examples, costs one forward pass over them
and starts fine-tuning from a head that is already right most of the time. On 8,000 SST-2 sentences
and one epoch it measured +0.6 points of dev accuracy (README).

The features are whatever the head's last linear layer receives, captured with a forward hook, so the
same code serves BERT (pooler -> classifier), RoBERTa (dense -> out_proj) and DistilBERT heads.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bertx.data.batching import collate, sorted_batches
from bertx.data.features import Features


def output_layer(model: nn.Module, num_outputs: int) -> nn.Linear:
    """The head's last linear layer: the last `nn.Linear` with `num_outputs` outputs."""
    found = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_outputs]
    if not found:
        raise ValueError(f"no linear layer with {num_outputs} outputs in {type(model).__name__}")
    return found[-1]


@torch.inference_mode()
def head_features(model: nn.Module, layer: nn.Linear, features: Features, indices: list[int], pad_id: int) -> np.ndarray:
    """Inputs of `layer` for the chosen examples, shape (N, in_features), in the order of `indices`."""
    captured: dict[int, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda module, args, out: captured.__setitem__(0, args[0]))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    subset = Features(
        [features.input_ids[i] for i in indices],
        [features.token_type_ids[i] for i in indices] if features.token_type_ids else None,
        lengths=[features.lengths[i] for i in indices],
    )
    out = np.zeros((len(indices), layer.in_features), dtype=np.float32)
    try:
        for batch_indices in sorted_batches(subset.lengths, 128):
            batch = {k: v.to(device) for k, v in collate(subset, batch_indices, pad_id).items()}
            model(**batch)
            x = captured[0]
            out[batch_indices] = x[:, 0].float().cpu().numpy() if x.dim() == 3 else x.float().cpu().numpy()
    finally:
        handle.remove()
        model.train(was_training)
    return out


def probe_init_head(model: nn.Module, features: Features, label_kind: str, pad_id: int, max_examples: int, seed: int) -> dict:
    """Set the head's output layer to a linear probe fitted on frozen features.

    Args:
        model: an `*ForSequenceClassification` model with a fresh head.
        features: training features with `labels` (class ids, scores or multi-hot vectors).
        label_kind: "class", "score" or "classes".
        pad_id: the tokenizer's padding id.
        max_examples: fit on at most this many training examples (a seeded random subset).
        seed: picks the subset.

    Returns:
        What was done, for the run log: examples used and the probe's training score.
    """
    from sklearn.linear_model import LogisticRegression, Ridge

    num_outputs = model.config.num_labels
    layer = output_layer(model, num_outputs)
    n = len(features.lengths)
    rng = np.random.default_rng(seed)
    indices = sorted(rng.choice(n, size=min(n, max_examples), replace=False).tolist())
    x = head_features(model, layer, features, indices, pad_id)
    y = np.asarray([features.labels[i] for i in indices])
    weight = layer.weight.detach().cpu().numpy().copy()  # (num_outputs, in_features)
    bias = layer.bias.detach().cpu().numpy().copy() if layer.bias is not None else np.zeros(num_outputs)
    if label_kind == "score":
        fit = Ridge(alpha=1.0).fit(x, y)
        weight[0], bias[0], score = fit.coef_, fit.intercept_, fit.score(x, y)
    elif label_kind == "class":
        if len(np.unique(y)) < 2:
            return {"head_init": "random", "reason": "probe subset has one class"}
        fit = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
        if num_outputs == 2 and fit.coef_.shape[0] == 1:  # binary: one direction, split over two logits
            weight[0], weight[1] = -fit.coef_[0] / 2, fit.coef_[0] / 2
            bias[0], bias[1] = -fit.intercept_[0] / 2, fit.intercept_[0] / 2
        else:
            for row, cls in enumerate(fit.classes_):  # classes absent from the subset keep random rows
                weight[cls], bias[cls] = fit.coef_[row], fit.intercept_[row]
        score = fit.score(x, y)
    else:  # multi-label: one logistic regression per label that has both outcomes in the subset
        scores = []
        for j in range(num_outputs):
            if len(np.unique(y[:, j])) == 2:
                fit = LogisticRegression(C=1.0, max_iter=1000).fit(x, y[:, j])
                weight[j], bias[j] = fit.coef_[0], fit.intercept_[0]
                scores.append(fit.score(x, y[:, j]))
        score = float(np.mean(scores)) if scores else 0.0
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        if layer.bias is not None:
            layer.bias.copy_(torch.from_numpy(bias))
    return {"head_init": "probe", "probe_examples": len(indices), "probe_train_score": round(float(score), 4)}


@torch.inference_mode()
def token_probe_init_head(model: nn.Module, features: Features, pad_id: int, max_examples: int, seed: int) -> dict:
    """LP-FT for token heads: fit the output layer as a logistic regression over the frozen encoder's
    vectors of the labelled word pieces of up to `max_examples` training windows.

    Returns:
        What was done, for the run log: windows and tokens used, the probe's training accuracy.
    """
    from sklearn.linear_model import LogisticRegression

    num_outputs = model.config.num_labels
    layer = output_layer(model, num_outputs)
    rng = np.random.default_rng(seed)
    n = len(features.lengths)
    indices = sorted(rng.choice(n, size=min(n, max_examples), replace=False).tolist())
    captured: dict[int, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda module, args, out: captured.__setitem__(0, args[0]))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    xs, ys = [], []
    try:
        for start in range(0, len(indices), 64):
            chosen = indices[start : start + 64]
            batch = collate(features, chosen, pad_id, torch.long)
            labels = batch.pop("labels")  # (B, T)
            model(**{k: v.to(device) for k, v in batch.items()})
            keep = labels != features.label_pad  # (B, T)
            xs.append(captured[0].float().cpu()[keep].numpy())  # (N_kept, H)
            ys.append(labels[keep].numpy())
    finally:
        handle.remove()
        model.train(was_training)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(np.unique(y)) < 2:
        return {"head_init": "random", "reason": "probe subset has one tag"}
    fit = LogisticRegression(C=1.0, max_iter=500).fit(x, y)
    weight = layer.weight.detach().cpu().numpy().copy()  # (num_outputs, H)
    bias = layer.bias.detach().cpu().numpy().copy() if layer.bias is not None else np.zeros(num_outputs)
    rows = fit.coef_ if len(fit.classes_) > 2 else np.stack([-fit.coef_[0] / 2, fit.coef_[0] / 2])
    intercepts = fit.intercept_ if len(fit.classes_) > 2 else np.array([-fit.intercept_[0] / 2, fit.intercept_[0] / 2])
    for row, cls in enumerate(fit.classes_):  # tags absent from the subset keep their random rows
        weight[cls], bias[cls] = rows[row], intercepts[row]
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        if layer.bias is not None:
            layer.bias.copy_(torch.from_numpy(bias))
    return {"head_init": "probe", "probe_examples": len(indices), "probe_tokens": int(len(y)), "probe_train_score": round(float(fit.score(x, y)), 4)}
